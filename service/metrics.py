"""Prometheus metrics, one registry per app so several apps (tests) never collide."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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

    def watch(self, budgets: dict[str, Callable[[], tuple[float, float]]],
              streams: Callable[[], tuple[int, int]]) -> None:
        """Gauges read at scrape time, what an autoscaler acts on: for each model, the work its
        admission budget holds (``emoface_admitted_work``: decoding, queued, running or encoding)
        and the budget (``emoface_admitted_work_capacity``); the live streams open and their limit.
        ``budgets`` maps a model to a function giving (used, capacity); ``streams`` gives (open, limit)."""
        used = Gauge("emoface_admitted_work", "Units of work each model has admitted and not finished", ["model"],
                     registry=self.registry)
        capacity = Gauge("emoface_admitted_work_capacity", "Units of work each model admits at most", ["model"],
                         registry=self.registry)
        for model, read in budgets.items():
            used.labels(model).set_function(lambda read=read: read()[0])
            capacity.labels(model).set_function(lambda read=read: read()[1])
        Gauge("emoface_live_streams", "Live streams open", registry=self.registry).set_function(lambda: streams()[0])
        Gauge("emoface_live_streams_capacity", "Live streams the service holds at most",
              registry=self.registry).set_function(lambda: streams()[1])

    def observe_batch(self, model: str, size: int) -> None:
        self.batch_size.labels(model).observe(size)

    def render(self) -> bytes:
        return generate_latest(self.registry)
