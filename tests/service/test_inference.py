"""The micro-batcher on its own: a batch that fails, or answers with the wrong count, fails
every request in it at once and leaves the batcher serving the next."""

from __future__ import annotations

import asyncio

import pytest

from service.inference import MicroBatcher


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


def test_a_wrong_result_count_fails_the_batch_instead_of_hanging():
    calls = {"n": 0}

    def fn(xs):
        calls["n"] += 1
        return xs[:-1] if calls["n"] == 1 else xs  # the first batch loses one result

    first, second = _run(fn, [[1, 2, 3], [4]])
    assert all(isinstance(r, ValueError) for r in first), first  # none hangs, none gets a neighbour's result
    assert second == [4], "the batcher must keep serving after a bad batch"


def test_an_exception_fails_its_batch_and_the_next_one_is_served():
    def fn(xs):
        if 0 in xs:
            raise ZeroDivisionError("boom")
        return xs

    first, second = _run(fn, [[0, 1], [2]])
    assert all(isinstance(r, ZeroDivisionError) for r in first) and second == [2]


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
