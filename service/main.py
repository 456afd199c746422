"""The application factory and the lifespan that loads the models once."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ml.audio import SAMPLE_RATE, SPEED_FACTORS
from ml.generate import FaceGenerator
from ml.recognize import EmotionRecognizer
from ml.runtime import select_device
from service import errors
from service.config import Settings
from service.inference import MicroBatcher, render_items, timed
from service.schemas import ModelCard
from service.metrics import AccessMiddleware, Metrics

log = logging.getLogger("service")
STATIC_DIR = Path(__file__).parent / "static"


@dataclass
class Engines:
    """Everything the routes need once the app has started."""

    settings: Settings
    device: torch.device
    ser: MicroBatcher  # holds the EmotionRecognizer
    faces: MicroBatcher  # holds the FaceGenerator
    models: list[ModelCard]
    ready: asyncio.Event = field(default_factory=asyncio.Event)


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


def _info(name: str, path: Path, loaded, seconds: float) -> ModelCard:
    params = sum(p.numel() for p in loaded.model.parameters())
    return ModelCard(name=name, path=str(path), sha256=loaded.sha256, arch=loaded.meta["arch"], parameters=params,
                     load_seconds=round(seconds, 3), metrics=loaded.meta.get("metrics", {}), data=loaded.meta.get("data", {}))


def load_engines(settings: Settings, metrics: Metrics) -> Engines:
    """Load both checkpoints (raising ``CheckpointError`` with a clear message) and build batchers."""
    if settings.cpu_threads:
        torch.set_num_threads(settings.cpu_threads)
    device = select_device(settings.device)
    speeds = SPEED_FACTORS if settings.ser_views == 3 else (1.0,)
    (recognizer, ser_loaded), ser_s = timed(
        lambda: EmotionRecognizer.from_checkpoint(settings.ser_weights, device, speeds=speeds))
    (generator, gen_loaded), gen_s = timed(lambda: FaceGenerator.from_checkpoint(settings.generator_weights, device))
    models = [_info("ser", settings.ser_weights, ser_loaded, ser_s),
              _info("generator", settings.generator_weights, gen_loaded, gen_s)]
    for m in models:
        log.info("loaded %s from %s sha256=%s device=%s parameters=%d in %.3fs", m.name, m.path, m.sha256, device,
                 m.parameters, m.load_seconds)
    wait = settings.max_batch_wait_ms / 1000
    ser = MicroBatcher(lambda waves: list(recognizer.predict(waves)), name="ser",
                       max_batch=settings.max_batch_size, max_wait_s=wait, on_batch=metrics.observe_batch)
    faces = MicroBatcher(functools.partial(render_items, generator), name="generator",
                         max_batch=settings.max_batch_size, max_wait_s=wait, on_batch=metrics.observe_batch)
    return Engines(settings, device, ser, faces, models)


async def warm_up(engines: Engines) -> None:
    """One pass through each model (and the audio front-end) before reporting ready."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(4 * SAMPLE_RATE)).astype(np.float32)  # a 4 s clip
    await engines.ser.run_direct([wave])
    await engines.faces.run_direct([(0, 0, 48)])
    engines.ready.set()
    log.info("warm-up done in %.3fs; ready", time.perf_counter() - t0)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings)
        t0 = time.perf_counter()
        engines = load_engines(settings, metrics)  # a missing/corrupt file raises here: startup fails
        engines.ser.start()
        engines.faces.start()
        app.state.engines = engines
        warm = asyncio.create_task(warm_up(engines)) if settings.warmup else None
        if warm is None:
            engines.ready.set()
        log.info("models loaded in %.3fs", time.perf_counter() - t0)
        try:
            yield
        finally:
            if warm is not None and not warm.done():
                warm.cancel()
            await engines.ser.stop()
            await engines.faces.stop()

    from service.routes import ROUTES, router

    app = FastAPI(
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
    errors.install(app)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["*"], expose_headers=["X-Emotion", "X-Emotion-Confidence", "X-Seed"])
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AccessMiddleware, metrics=metrics, routes=ROUTES, logger=logging.getLogger("service.access"))
    return app
