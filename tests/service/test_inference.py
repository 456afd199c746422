"""The micro-batcher on its own: each item succeeds or fails alone (a batch that raises, or
answers with the wrong count, is run again item by item), the queue is bounded, and work whose
request is gone or late is never started."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from service.inference import MIN_SPLIT, DeadlineExceeded, MicroBatcher, Overloaded


def _run(fn, batches: list[list[int]]) -> list[list[object]]:
    """Submit each list of items concurrently, one list after the other; collect results or errors."""

    async def main() -> list[list[object]]:
        b = MicroBatcher(fn, name="t", max_batch=8, max_wait_s=0.05)
        b.start()
        out = []
        try:
            for items in batches:
                res = await asyncio.wait_for(asyncio.gather(*(b.submit(i) for i in items), return_exceptions=True), 5)
                out.append(res)
        finally:
            await b.stop()
        return out

    return asyncio.run(main())


def test_requests_are_batched_and_answered_in_order():
    seen: list[int] = []
    (res,) = _run(lambda xs: seen.append(len(xs)) or [x * 10 for x in xs], [[1, 2, 3]])
    assert res == [10, 20, 30] and seen == [3]


def test_a_wrong_result_count_is_retried_item_by_item_instead_of_hanging():
    calls: list[int] = []

    def fn(xs):
        calls.append(len(xs))
        return xs[:-1] if len(calls) == 1 else xs  # the first batch loses one result

    first, second = _run(fn, [[1, 2, 3], [4]])
    assert first == [1, 2, 3], first  # none hangs, none gets a neighbour's result
    assert calls[:4] == [3, 1, 1, 1] and second == [4]


def test_an_item_that_raises_fails_alone_and_its_neighbours_are_answered():
    def fn(xs):
        if 0 in xs:
            raise ZeroDivisionError("boom")
        return [10 * x for x in xs]

    first, second = _run(fn, [[1, 0, 2], [3]])
    assert first[0] == 10 and first[2] == 20 and isinstance(first[1], ZeroDivisionError), first
    assert second == [30], "the batcher must keep serving after a bad batch"


def test_an_exception_as_a_result_fails_only_its_item():
    (res,) = _run(lambda xs: [ValueError("nan") if x < 0 else x for x in xs], [[1, -1, 2]])
    assert res[0] == 1 and res[2] == 2 and isinstance(res[1], ValueError)


def test_a_full_queue_refuses_at_once():
    async def main():
        b = MicroBatcher(lambda xs: xs, name="t", max_batch=1, max_wait_s=0, max_queue=2)
        b.start()  # not yet running a pass: the loop below fills the queue before it wakes
        try:
            first = [asyncio.ensure_future(b.submit(i)) for i in range(2)]
            await asyncio.sleep(0)
            with pytest.raises(Overloaded, match="queue is full"):
                await b.submit(99)
            return await asyncio.gather(*first)
        finally:
            await b.stop()

    assert asyncio.run(main()) == [0, 1]


def test_cancelled_and_late_items_never_run():
    ran: list[int] = []

    def slow(xs):
        ran.extend(xs)
        time.sleep(0.3)
        return xs

    async def main():
        b = MicroBatcher(slow, name="t", max_batch=1, max_wait_s=0, timeout_s=0.1)
        b.start()
        try:
            first = asyncio.ensure_future(b.submit(1))  # runs for 0.3 s
            await asyncio.sleep(0.05)
            gone = asyncio.ensure_future(b.submit(2))
            late = asyncio.ensure_future(b.submit(3))
            await asyncio.sleep(0.01)
            gone.cancel()  # its client left while it was queued
            assert await first == 1
            with pytest.raises(DeadlineExceeded):
                await late  # waited 0.25 s > 0.1 s behind the first
            assert await b.submit(4) == 4  # and the batcher still serves
        finally:
            await b.stop()

    asyncio.run(main())
    assert ran == [1, 4], ran


@pytest.mark.parametrize("max_batch", [1, 2])
def test_max_batch_bounds_every_pass(max_batch):
    sizes: list[int] = []

    async def main():
        b = MicroBatcher(lambda xs: sizes.append(len(xs)) or xs, name="t", max_batch=max_batch, max_wait_s=0.05)
        b.start()
        try:
            return await asyncio.gather(*(b.submit(i) for i in range(5)))
        finally:
            await b.stop()

    assert asyncio.run(main()) == list(range(5)) and max(sizes) == max_batch


def test_with_two_workers_a_large_batch_is_shared_and_both_halves_run_at_once():
    """Two idle workers share a batch of 16 (8 + 8) and run at the same time: each part waits
    at a barrier that only opens when the other part has arrived too."""
    barrier = threading.Barrier(2, timeout=5)
    sizes: list[int] = []

    def fn(xs):
        sizes.append(len(xs))
        barrier.wait()  # BrokenBarrierError (a failed test) unless both parts run concurrently
        return [x * 2 for x in xs]

    async def main():
        b = MicroBatcher(fn, name="t", max_batch=64, max_wait_s=0.05, workers=2)
        b.start()
        try:
            return await asyncio.wait_for(asyncio.gather(*(b.submit(i) for i in range(16))), 10)
        finally:
            await b.stop()

    assert asyncio.run(main()) == [2 * i for i in range(16)]
    assert sorted(sizes) == [8, 8], sizes


def test_a_small_batch_is_not_split_and_a_busy_worker_is_not_waited_for():
    """Below 2 x MIN_SPLIT items a batch stays whole; while one worker is busy, the other takes
    the next batch instead of waiting."""
    started: list[list[int]] = []
    release = threading.Event()

    def fn(xs):
        started.append(list(xs))
        if xs[0] == 0:
            release.wait(5)  # the first batch holds its worker
        return xs

    async def main():
        b = MicroBatcher(fn, name="t", max_batch=64, max_wait_s=0.02, workers=2)
        b.start()
        try:
            first = asyncio.gather(*(b.submit(i) for i in range(MIN_SPLIT)))
            await asyncio.sleep(0.1)
            second = await asyncio.wait_for(asyncio.gather(*(b.submit(i) for i in range(100, 103))), 5)
            release.set()
            return await first, second
        finally:
            release.set()
            await b.stop()

    first, second = asyncio.run(main())
    assert first == list(range(MIN_SPLIT)) and second == [100, 101, 102]
    assert started == [list(range(MIN_SPLIT)), [100, 101, 102]]


def test_the_app_stopping_ends_every_worker_thread_it_started(tiny_weights):
    """The lifespan's end stops the batchers and the pools under them (the SER's embedding
    workers, the voice's thread): nothing the app started keeps running after it stops."""
    from tests.conftest import make_client, speechlike, wait_ready, wav_bytes

    prefixes = ("batch-", "ser-embed", "voice")
    before = {t for t in threading.enumerate() if t.name.startswith(prefixes)}
    with make_client(*tiny_weights) as c:
        wait_ready(c)
        assert c.post("/speech-to-face", files={"file": ("a.wav", wav_bytes(speechlike()), "audio/wav")}).status_code == 200
        started = {t for t in threading.enumerate() if t.name.startswith(prefixes)} - before
        assert {t.name.split("_")[0] for t in started} >= {"batch-ser", "batch-generator", "ser-embed", "voice"}
    for t in started:
        t.join(timeout=5)
    assert not [t.name for t in started if t.is_alive()]


def test_a_generator_batch_of_mixed_sizes_gives_each_request_its_own_png(tiny_weights):
    """``render_items``: faces asked with a size come back as the PNG ``encode_png`` makes of that
    face alone (one upsampler pass for the batch changes no pixel); those without, as raw faces."""
    import numpy as np

    from ml.enlarge import Enlarger
    from ml.generate import FaceGenerator
    from service.inference import encode_png, render_items
    from tests.conftest import SHIPPED_UPSAMPLER

    generator = FaceGenerator.from_checkpoint(tiny_weights[1])[0]
    enlarger = Enlarger.from_checkpoint(SHIPPED_UPSAMPLER)[0]
    items = [(3, 1, 48), (3, 2, None), (5, 3, 96), (0, 4, 200), (1, 5, None), (6, 6, 64)]
    got = render_items(generator, enlarger, items)
    faces = generator.render([c for c, _, _ in items], [s for _, s, _ in items])
    for out, face, (_, _, size) in zip(got, faces, items, strict=True):
        if size is None:
            assert isinstance(out, np.ndarray) and np.array_equal(out, face)
        else:
            assert out == encode_png(enlarger, face[None], size)
