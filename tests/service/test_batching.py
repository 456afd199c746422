"""Micro-batching: concurrent requests share forward passes and get the same bytes as one by one,
and one poisoned upload among them fails alone."""

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import (SHIPPED_GENERATOR, SHIPPED_SER, assert_problem, fixture_clips, make_client, speechlike,
                            wait_ready, wav_bytes)


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


def _poison(peak: float, fmt: str) -> bytes:
    """A float recording whose samples are finite but absurd: they pass a NaN check."""
    return wav_bytes(speechlike(1.0) / 0.4 * peak, subtype="FLOAT", fmt=fmt)


POISON = [(f"{fmt} peak {peak:g}", _poison(peak, fmt)) for fmt in ("WAV", "AU", "CAF", "W64", "AIFF")
          for peak in (1e18, 1e19)] + [("WAV peak 1e30", _poison(1e30, "WAV"))]


@pytest.fixture(scope="module")
def shipped_batching_client():
    with make_client(SHIPPED_SER, SHIPPED_GENERATOR, max_batch_wait_ms=100, max_batch_size=64) as c:
        wait_ready(c)
        yield c


@pytest.mark.parametrize("route, poison", [(("/emotion", "/speech-to-face")[i % 2], p) for i, (_, p) in enumerate(POISON)],
                         ids=[n for n, _ in POISON])
def test_a_poison_upload_among_40_fails_alone(shipped_batching_client, route, poison):
    """40 normal requests sent together with one poison: all 40 answer 200 with their one-by-one
    answers (the shipped SER, batched within a 100 ms window), the poison a precise 422."""
    c = shipped_batching_client
    clips = [p.read_bytes() for p in fixture_clips().values()] * 5  # 40
    post = lambda data: c.post(route, files={"file": ("c.wav", data)})  # noqa: E731
    alone = {data: post(data).content for data in set(clips)}
    results = _concurrently(post, clips[:20] + [poison] + clips[20:])
    bad = results.pop(20)
    assert_problem(bad, 422, "invalid-samples")
    assert "at most 1000" in bad.json()["detail"]
    assert [r.status_code for r in results] == [200] * 40
    assert [r.content for r in results] == [alone[d] for d in clips]
    assert _largest_batch(c, "ser") > 1
