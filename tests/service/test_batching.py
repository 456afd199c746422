"""Micro-batching: concurrent requests share forward passes and get the same bytes as one by one."""

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import fixture_clips, make_client, wait_ready


@pytest.fixture(scope="module")
def batching_client(tiny_weights):
    # A long wait makes batching certain in the test; production uses a few milliseconds.
    with make_client(*tiny_weights, max_batch_wait_ms=100, max_batch_size=16) as c:
        wait_ready(c)
        yield c


@pytest.fixture(scope="module")
def unbatched_client(tiny_weights):
    with make_client(*tiny_weights, max_batch_size=1) as c:
        wait_ready(c)
        yield c


def _largest_batch(client, model: str) -> float:
    text = client.get("/metrics").text
    buckets = re.findall(rf'emoface_batch_size_bucket{{le="([^"]+)",model="{model}"}} (\S+)', text)
    total = float(re.search(rf'emoface_batch_size_count{{model="{model}"}} (\S+)', text).group(1))
    # the smallest bucket bound that holds every batch
    return min(float(le) for le, n in buckets if float(n) == total)


def _concurrently(fn, args):
    with ThreadPoolExecutor(len(args)) as pool:
        return list(pool.map(fn, args))


def test_generate_batched_equals_one_by_one(batching_client, unbatched_client):
    queries = [f"/generate?emotion={e}&seed={s}&size=64" for s in range(4) for e in ("happy", "sad", "angry", "fear")]
    batched = _concurrently(lambda q: batching_client.get(q).content, queries)
    single = [unbatched_client.get(q).content for q in queries]
    assert batched == single
    assert _largest_batch(batching_client, "generator") > 1
    assert _largest_batch(unbatched_client, "generator") == 1


def test_emotion_batched_equals_one_by_one(batching_client, unbatched_client):
    clips = [p.read_bytes() for p in fixture_clips().values()]
    post = lambda c: lambda data: c.post("/emotion", files={"file": ("c.flac", data)}).content  # noqa: E731
    batched = _concurrently(post(batching_client), clips)
    single = [post(unbatched_client)(d) for d in clips]
    assert batched == single
    assert _largest_batch(batching_client, "ser") > 1


def test_speech_to_face_batched_equals_one_by_one(batching_client, unbatched_client):
    clips = [p.read_bytes() for p in fixture_clips().values()]
    post = lambda c: lambda data: c.post("/speech-to-face", files={"file": ("c.flac", data)}).content  # noqa: E731
    assert _concurrently(post(batching_client), clips) == [post(unbatched_client)(d) for d in clips]
