"""Model engines and the micro-batcher. No FastAPI here: this is plain asyncio + torch."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Collects requests that arrive within ``max_wait_s`` into one call of ``fn`` (at most
    ``max_batch`` items), run on a dedicated worker thread so the event loop never blocks and
    one model never runs two passes at once.

    ``fn`` maps a list of items to a list of results of the same length. With ``max_batch=1``
    every request runs alone (the baseline the benchmarks compare against).
    """

    def __init__(self, fn: Callable[[list[T]], list[R]], *, name: str, max_batch: int, max_wait_s: float,
                 on_batch: Callable[[str, int], None] | None = None) -> None:
        self.fn, self.name, self.max_batch, self.max_wait_s = fn, name, max_batch, max_wait_s
        self.on_batch = on_batch
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{name}")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def run_direct(self, items: list[T]) -> list[R]:
        """Run ``fn`` on the worker thread without batching (warm-up, benchmarks)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.fn, items)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            live = [(item, fut) for item, fut in batch if not fut.done()]  # drop cancelled requests
            if not live:
                continue
            if self.on_batch:
                self.on_batch(self.name, len(live))
            try:
                results = await loop.run_in_executor(self._executor, self.fn, [item for item, _ in live])
                # A wrong result count is a bug in fn: fail the batch loudly, never leave a request hanging.
                answered = list(zip(live, results, strict=True))
            except Exception as exc:  # the failure belongs to every request of the batch
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in answered:
                if not fut.done():
                    fut.set_result(result)


def seed_from_bytes(data: bytes) -> int:
    """A seed derived from content, so the same recording always draws the same face."""
    return int.from_bytes(hashlib.sha256(data).digest()[:4], "big")


def encode_png(faces: np.ndarray, size: int) -> bytes:
    """(N, 48, 48) uint8 faces -> PNG bytes: one face, or a near-square grid of N faces.

    Each face is resized to ``size`` pixels with a Lanczos filter (sharp, no ringing to speak of
    on faces). Encoding is deterministic: the same pixels give the same bytes.
    """
    cols = math.ceil(math.sqrt(len(faces)))
    rows = math.ceil(len(faces) / cols)
    canvas = Image.new("L", (cols * size, rows * size), 0)
    for i, face in enumerate(faces):
        img = Image.fromarray(face, mode="L")
        if size != face.shape[-1]:
            img = img.resize((size, size), Image.Resampling.LANCZOS)
        canvas.paste(img, ((i % cols) * size, (i // cols) * size))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def render_items(generator, items: list[tuple[int, int, int | None]]) -> list[np.ndarray | bytes]:
    """The generator batcher's work: one forward pass for every (class, seed, size) item.

    An item with a size comes back as finished PNG bytes, encoded here on the worker thread, so a
    single-face request makes one thread hop instead of two; an item without one comes back as
    the raw (48, 48) face, for grids that are assembled from several items.
    """
    faces = generator.render([c for c, _, _ in items], [s for _, s, _ in items])
    return [face if size is None else encode_png(face[None], size) for face, (_, _, size) in zip(faces, items)]


def timed(fn: Callable[[], R]) -> tuple[R, float]:
    t0 = time.perf_counter()
    return fn(), time.perf_counter() - t0
