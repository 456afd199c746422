"""ASGI middlewares: the body-size limit and the access log with per-route metrics."""

from __future__ import annotations

import asyncio
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
    while streaming (chunked uploads) so an oversized body is never buffered whole. 408 when no
    part of the body arrives for ``timeout_s``: a client trickling its body cannot hold a
    connection, its memory and an admission slot for ever."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float = 10.0) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

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
        received, complete = 0, False

        async def limited() -> dict:
            nonlocal received, complete
            if complete:  # after the body only the disconnect comes, whenever it comes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except asyncio.TimeoutError:
                raise errors.RequestTimeout(self.timeout_s) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise errors.BodyTooLarge(self.max_bytes)
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, limited, send)


class ShedMiddleware:
    """Refuses a model route's request at once, before FastAPI's routing, dependencies or body,
    while that model's budget is already full: under a flood the refusals must cost next to
    nothing, or they starve the requests being served and /health. The route's own admission
    (:class:`service.admission.Budget`) stays the rule; this is its cheap early form."""

    def __init__(self, app: ASGIApp, budgets: dict[str, str]) -> None:
        self.app, self.budgets = app, budgets  # route path -> the Engines attribute holding its Budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = self.budgets.get(scope["path"]) if scope["type"] == "http" else None
        engines = scope["app"].state.engines if name is not None else None
        if engines is not None:
            budget = getattr(engines, name)
            if budget.full:
                await errors.overloaded_response(f"the {budget.name} model is at capacity", scope["path"])(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)


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
            if status >= 400 and status != errors.CLIENT_CLOSED:  # a client leaving is not our error
                self.metrics.errors.labels(route, str(status)).inc()
            self.log.info("%s %s %d %.1fms", scope.get("method"), path, status, elapsed * 1000,
                          extra={"route": route, "status": status, "latency_ms": round(elapsed * 1000, 2)})


class PagePolicyMiddleware:
    """A Content-Security-Policy on the API docs pages (/docs, /redoc): everything from this
    server, nothing from another. ReDoc's bundle shows Redocly's logo from a CDN; under the policy
    the browser never asks for it (the logo hides itself when it fails to load), so the pages work,
    and leak nothing, where the server has no internet. Inline scripts and styles stay allowed:
    Swagger UI and ReDoc start from an inline script."""

    POLICY = (b"default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
              b"script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self'; "
              b"frame-ancestors 'self'; base-uri 'self'")

    def __init__(self, app: ASGIApp, paths: set[str]) -> None:
        self.app, self.paths = app, paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") not in self.paths:
            await self.app(scope, receive, send)
            return

        async def with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"content-security-policy", self.POLICY)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_policy)
