"""The application factory and the lifespan that loads the models once."""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from service import errors, live
from service.admission import Drain
from service.config import STATIC_DIR, Settings
from service.engines import load_engines, warm_up
from service.metrics import Metrics
from service.middleware import AccessMiddleware, BodyLimitMiddleware, PagePolicyMiddleware, ShedMiddleware, route_paths
from service.routes import router

log = logging.getLogger("service")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for key in ("route", "status", "latency_ms"):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.json_logs else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


async def return_freed_memory(every_s: float = 5.0) -> None:
    """Hand memory that bursts freed back to the OS, every few seconds. glibc keeps freed heap
    pages mapped: after a 2000-connection flood the process stayed a third larger until this."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return
    while True:
        await asyncio.sleep(every_s)
        await asyncio.to_thread(trim, 0)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    drain = Drain()  # begun by the server on SIGTERM (service.__main__)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings)
        t0 = time.perf_counter()
        drain.bind(asyncio.get_running_loop())
        engines = load_engines(settings, metrics, drain)  # a missing/corrupt file raises here: startup fails
        engines.ser.start()
        engines.faces.start()
        app.state.engines = engines
        warm = asyncio.create_task(warm_up(engines)) if settings.warmup else None
        if warm is None:
            engines.ready.set()
        log.info("models loaded in %.3fs", time.perf_counter() - t0)
        trim = asyncio.create_task(return_freed_memory())
        try:
            yield
        finally:
            trim.cancel()
            if warm is not None and not warm.done():
                warm.cancel()
            await engines.stop()

    # /docs and /redoc from files installed with fastapi-offline, not from a CDN: many deployments
    # have no internet access, and FastAPI's default pages are blank there.
    app = FastAPIOffline(
        static_url="/static/docs",
        favicon_url="/favicon.ico",
        title="Emoface",
        version="0.1.0",
        summary="Hear how someone speaks and draw a face that shows it.",
        description="Speech emotion recognition (8 RAVDESS emotions) and emotion-conditioned face generation "
                    "(48x48 FER-2013-style faces). Errors are RFC 9457 `application/problem+json`.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.engines = None
    app.state.drain = drain
    errors.install(app)
    app.include_router(router)
    app.include_router(live.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:  # browsers ask for it on every page; a PNG under the old name
        return FileResponse(STATIC_DIR / "favicon.png", media_type="image/png")
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["*"], expose_headers=["X-Emotion", "X-Emotion-Confidence", "X-Seed"])
    app.add_middleware(PagePolicyMiddleware, paths={"/docs", "/redoc"})
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    app.add_middleware(ShedMiddleware,
                       budgets={"/emotion": "clips", "/speech-to-face": "clips", "/generate": "face_work"})
    app.add_middleware(AccessMiddleware, metrics=metrics, routes=route_paths(app),
                       logger=logging.getLogger("service.access"))
    return app
