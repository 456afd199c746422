"""ASGI middlewares: the body-size limit and the access log with per-route metrics."""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import errors
from service.metrics import Metrics


def route_paths(app: FastAPI) -> set[str]:
    """Every path the app serves (routes and mounts), read off the app itself: the label set
    of the per-route metrics, so a path a client invents never becomes a new time series."""
    paths: set[str] = set()

    def walk(routes: list) -> None:
        for r in routes:
            if hasattr(r, "path"):
                paths.add(r.path)
            elif hasattr(r, "original_router"):  # FastAPI keeps an included router whole
                walk(r.original_router.routes)

    walk(app.routes)
    return paths


class BodyLimitMiddleware:
    """413 for bodies over the limit: refused from Content-Length before reading, and counted
    while streaming (chunked uploads) so an oversized body is never buffered whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await errors.problem_response(400, "bad-request", "Malformed request",
                                              "Content-Length is not a number")(scope, receive, send)
                return
            if int(declared) > self.max_bytes:
                exc = errors.BodyTooLarge(self.max_bytes)
                await errors.problem_response(exc.status, exc.slug, exc.title, exc.detail, scope["path"],
                                              {"Connection": "close"})(scope, receive, send)
                return
        received = 0

        async def limited() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise errors.BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)


class AccessMiddleware:
    """Counts and times every request per route template, and logs route, status and latency."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: set[str], logger: logging.Logger) -> None:
        self.app, self.metrics, self.routes, self.log = app, metrics, routes, logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = scope.get("path", "")
            route = path if path in self.routes else ("/static" if path.startswith("/static/") else "other")
            elapsed = time.perf_counter() - start
            self.metrics.requests.labels(route, scope.get("method", ""), str(status)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            if status >= 400:
                self.metrics.errors.labels(route, str(status)).inc()
            self.log.info("%s %s %d %.1fms", scope.get("method"), path, status, elapsed * 1000,
                          extra={"route": route, "status": status, "latency_ms": round(elapsed * 1000, 2)})
