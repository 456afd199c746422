"""Prometheus metrics, one registry per app so several apps (tests) never collide."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("emoface_requests", "HTTP requests", ["route", "method", "status"], registry=self.registry)
        self.errors = Counter("emoface_errors", "HTTP responses with status >= 400", ["route", "status"], registry=self.registry)
        self.latency = Histogram("emoface_request_seconds", "Request latency", ["route"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.batch_size = Histogram("emoface_batch_size", "Items per model forward pass", ["model"],
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=self.registry)

    def observe_batch(self, model: str, size: int) -> None:
        self.batch_size.labels(model).observe(size)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class AccessMiddleware:
    """Counts and times every request per route template, and logs route, status and latency."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: set[str], logger) -> None:
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
