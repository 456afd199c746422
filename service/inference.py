"""Model engines and the micro-batcher. No FastAPI here: this is plain asyncio + torch."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np
from PIL import Image

from ml.labels import EMOTIONS

if TYPE_CHECKING:  # the FFmpeg child imports this module and must not import torch
    import torch

    from ml.enlarge import Enlarger

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class Overloaded(Exception):
    """The model's queue is full: the request is refused before it costs anything."""


class DeadlineExceeded(Exception):
    """The request waited in the queue past its deadline; its work was never started."""


class InvalidOutput(Exception):
    """The model's output for one item is not a number (NaN or infinite)."""


#: The fewest items per part when a batch is shared among idle workers: parts this large still
#: amortise a pass's fixed cost (a face alone draws well below a batch's per-face rate on a CPU;
#: ``tests/perf/bench_models.py`` measures both).
MIN_SPLIT = 8


class MicroBatcher(Generic[T, R]):
    """Collects requests that arrive within ``max_wait_s`` into one call of ``fn`` (at most
    ``max_batch`` items), run on a worker thread of its own so the event loop never blocks.
    With ``workers > 1`` up to that many passes run at once, each on its own thread (``fn``
    must allow it); a batch formed while other workers are idle is shared among them.

    ``fn`` maps a list of items to a list of results of the same length; a result that is an
    ``Exception`` fails its own item only. With ``max_batch=1`` every request runs alone (the
    baseline the benchmarks compare against).

    Each item succeeds or fails alone: when ``fn`` raises for a batch, its items are run again
    one by one, so only the item that raises fails. The queue holds at most ``max_queue`` items
    (:class:`Overloaded` beyond it); an item whose request was cancelled (its client left) is
    dropped before its work starts, and one that waited past ``timeout_s`` fails with
    :class:`DeadlineExceeded` instead of running.
    """

    def __init__(self, fn: Callable[[list[T]], list[R]], *, name: str, max_batch: int, max_wait_s: float,
                 on_batch: Callable[[str, int], None] | None = None, max_queue: int = 4096,
                 timeout_s: float | None = None, workers: int = 1) -> None:
        self.fn, self.name, self.max_batch, self.max_wait_s = fn, name, max_batch, max_wait_s
        self.on_batch = on_batch
        self.max_queue, self.timeout_s = max_queue, timeout_s
        self.workers = workers
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R], float]] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"batch-{name}")
        self._free: asyncio.Queue[int] = asyncio.Queue()  # idle workers' tokens
        for token in range(workers):
            self._free.put_nowait(token)
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._running:
            await asyncio.wait(self._running)
        self._executor.shutdown(wait=True)

    async def submit(self, item: T) -> R:
        if self._queue.qsize() >= self.max_queue:
            raise Overloaded(f"the {self.name} queue is full ({self.max_queue} items)")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        deadline = math.inf if self.timeout_s is None else loop.time() + self.timeout_s
        self._queue.put_nowait((item, future, deadline))
        return await future

    async def run_direct(self, items: list[T]) -> list[R]:
        """Run ``fn`` on the worker thread without batching (warm-up, benchmarks)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.fn, items)

    def _work(self, items: list[T]) -> list[R | Exception]:
        """``fn`` on the batch; if it raises, on each item alone, so the failure stays with its item."""
        try:
            results = list(self.fn(items))
            if len(results) != len(items):  # a bug in fn: never leave a request hanging on it
                raise RuntimeError(f"{self.name}: {len(results)} results for {len(items)} items")
            return results
        except Exception as exc:
            if len(items) == 1:
                return [exc]
            log.warning("%s: a batch of %d failed (%r); running its items one by one", self.name, len(items), exc)
            return [self._work([item])[0] for item in items]

    async def _collect(self) -> list[tuple[T, asyncio.Future[R]]]:
        """The next batch: the first item to arrive, and whatever joins it within ``max_wait_s``,
        less the items whose clients left or whose deadline passed while they waited."""
        loop = asyncio.get_running_loop()
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
        now = loop.time()
        live = []
        for item, fut, item_deadline in batch:
            if fut.done():  # its request was cancelled: the client left, or the service is draining
                continue
            if now > item_deadline:
                fut.set_exception(DeadlineExceeded(f"waited over {self.timeout_s:g} s for the {self.name} model"))
                continue
            live.append((item, fut))
        return live

    async def _run(self) -> None:
        """Forms a batch whenever a worker is idle. A batch found with other workers idle too is
        shared among them (in parts of at least :data:`MIN_SPLIT` items), so that with several
        workers the next batch runs while the last one's answers are being written."""
        while True:
            tokens = [await self._free.get()]
            live = await self._collect()
            if not live:
                self._free.put_nowait(tokens[0])
                continue
            while len(tokens) < math.ceil(len(live) / MIN_SPLIT) and not self._free.empty():
                tokens.append(self._free.get_nowait())
            size = math.ceil(len(live) / len(tokens))
            for i, token in enumerate(tokens):
                task = asyncio.create_task(self._dispatch(live[i * size:(i + 1) * size], token))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _dispatch(self, live: list[tuple[T, asyncio.Future[R]]], token: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self.on_batch:
                self.on_batch(self.name, len(live))
            try:
                results = await loop.run_in_executor(self._executor, self._work, [item for item, _ in live])
            except Exception as exc:  # the executor itself failed: nothing ran
                results = [exc] * len(live)
            for (_, fut), result in zip(live, results, strict=True):
                if fut.done():
                    continue
                if isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
        finally:
            self._free.put_nowait(token)


def emotion_fields(probs: np.ndarray) -> dict:
    """The answer's emotion fields, for /emotion, /speech-to-face and the live stream alike:
    ``probabilities`` over the 8 emotions rounded to 1e-6, the most probable, and its probability."""
    probabilities = {e: round(float(p), 6) for e, p in zip(EMOTIONS, probs, strict=True)}
    best = max(probabilities, key=probabilities.get)
    return {"emotion": best, "confidence": probabilities[best], "probabilities": probabilities}


def face_fields(png: bytes, seed: int | None, face: str) -> dict:
    """A face in a JSON answer (/speech-to-face with ``Accept: application/json``, the live stream):
    ``face`` says whose it is, "seed", "voice" or "photo"; ``seed`` is null unless it is "seed"."""
    return {"seed": seed, "face": face, "image_png_base64": base64.b64encode(png).decode()}


def encode_png(enlarger: Enlarger, faces: np.ndarray, size: int) -> bytes:
    """(N, 48, 48) uint8 faces -> PNG bytes: one face, or a near-square grid of N faces.

    Each face is enlarged to ``size`` pixels by ``ml.enlarge``'s rule (the learned 2x, then
    Lanczos). Deterministic: the same pixels give the same bytes, alone or in a grid.
    """
    return grid_png(enlarger.enlarge(faces, size))


def grid_png(faces: np.ndarray | list[np.ndarray]) -> bytes:
    """(N, size, size) uint8 faces, already at their size -> PNG bytes of a near-square grid."""
    cols = math.ceil(math.sqrt(len(faces)))
    rows = math.ceil(len(faces) / cols)
    size = faces[0].shape[-1]
    canvas = Image.new("L", (cols * size, rows * size), 0)
    for i, face in enumerate(faces):
        canvas.paste(Image.fromarray(face, mode="L"), ((i % cols) * size, (i // cols) * size))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def encode_photo(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes, zlib level 1: a 12-megapixel portrait (4000x3000, enlarged
    from a London-set photo) encoded in 0.74 s and 4.4 MB, against 1.63 s and 3.4 MB at Pillow's
    default level 6 (2026-12-06, this project's 2-core machine, beside a training job).
    Deterministic like :func:`encode_png`."""
    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def render_items(generator, enlarger: Enlarger,
                 items: list[tuple[int, int | torch.Tensor, int | None]]) -> list[np.ndarray | bytes]:
    """The generator batcher's work: one forward pass for every (class, seed or latent, size) item.

    An item with a size comes back as finished PNG bytes, encoded here on the worker thread, so a
    single-face request makes one thread hop instead of two; an item without one comes back as
    the raw (48, 48) face, for grids that are assembled from several items.
    """
    faces = generator.render([c for c, _, _ in items], [s for _, s, _ in items])
    sized = [i for i, (_, _, size) in enumerate(items) if size is not None]
    out: list[np.ndarray | bytes] = list(faces)
    if sized:  # one upsampler pass for every face of the batch that is asked above 48 px
        for i, face in zip(sized, enlarger.enlarge_each(faces[sized], [items[i][2] for i in sized]), strict=True):
            out[i] = grid_png([face])
    return out


def timed(fn: Callable[[], R]) -> tuple[R, float]:
    t0 = time.perf_counter()
    return fn(), time.perf_counter() - t0
