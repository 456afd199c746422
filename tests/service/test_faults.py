"""Abuse over real HTTP: clients that vanish mid-upload or abandon heavy requests, a slow
trickling client, a stalled body, more work than the budget admits, 64 concurrent 20 MB uploads.
The service answers each with a 4xx or a 503 with Retry-After (or nothing, when the client left),
drops the work of clients that left, and keeps serving everyone else."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time

import httpx
import numpy as np
import pytest

from tests.conftest import assert_problem, fixture_clips, live_server, wav_bytes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tiny_weights):
    with live_server(*tiny_weights, log_level="WARNING") as port_and_base:
        yield port_and_base


def _still_serving(base: str) -> None:
    clip = fixture_clips()["happy"].read_bytes()
    assert httpx.get(base + "/health").status_code == 200
    assert httpx.post(base + "/emotion", files={"file": ("c.flac", clip)}, timeout=30).status_code == 200


def _headers(port: int, length: int) -> bytes:
    return (f"POST /emotion HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: audio/wav\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def test_clients_disconnecting_mid_upload(server):
    port, base = server
    body = wav_bytes(np.random.default_rng(0).standard_normal(16_000 * 20).astype(np.float32) * 0.1)
    for i in range(20):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(_headers(port, len(body)))
            s.sendall(body[: len(body) * (i + 1) // 40])  # a part of it, then vanish
    _still_serving(base)


def test_slow_trickling_client_does_not_block_others(server):
    port, base = server
    body = wav_bytes(np.random.default_rng(1).standard_normal(16_000).astype(np.float32) * 0.1)
    result: dict = {}

    def trickle() -> None:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(_headers(port, len(body)))
            for i in range(0, len(body), len(body) // 20):
                s.sendall(body[i:i + len(body) // 20])
                time.sleep(0.1)
            s.settimeout(30)
            result["reply"] = s.recv(100)

    worker = threading.Thread(target=trickle)
    worker.start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    _still_serving(base)  # answered while the trickle is still going
    assert time.perf_counter() - t0 < 1.5
    worker.join(30)
    assert result["reply"].startswith(b"HTTP/1.1 200")


def test_64_concurrent_20mb_uploads(server):
    _, base = server
    big = wav_bytes(np.zeros(10 * 1024 * 1024, np.float32) + 0.01, subtype="PCM_16")  # 20 MB, 11 minutes

    async def run() -> list[int]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
            replies = await asyncio.gather(*(client.post("/emotion", content=big, headers={"Content-Type": "audio/wav"})
                                             for _ in range(64)))
        return [r.status_code for r in replies]

    statuses = asyncio.run(run())
    assert statuses == [422] * 64  # too long, every one, with no 5xx
    _still_serving(base)


def _server_errors(base: str) -> list[str]:
    """The error counters of 5xx and 499 (client left), but /ready's 503s before the models were ready."""
    lines = re.findall(r"emoface_errors_total\{.*", httpx.get(base + "/metrics").text)
    return [e for e in lines if ('status="5' in e or 'status="499"' in e) and 'route="/ready"' not in e]


def _metric(base: str, pattern: str) -> float:
    found = re.findall(pattern + r" (\S+)", httpx.get(base + "/metrics").text)
    return sum(float(v) for v in found)


def test_abandoned_heavy_requests_are_dropped_before_they_run(tiny_weights):
    """200 clients ask for 16-face grids at 1024 px and leave after 0.3 s, with the budget opened so
    that all are admitted: the work of those gone is never started, nothing counts as an error,
    and a normal request right after is answered."""
    with live_server(*tiny_weights, log_level="WARNING", max_queue_faces=10**6) as (_, base):
        drawn_before = _metric(base, r'emoface_batch_size_sum\{model="generator"\}')

        async def abandon() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=0.3, limits=httpx.Limits(max_connections=200)) as c:
                async def one(seed: int) -> None:
                    with contextlib.suppress(httpx.TimeoutException):
                        await c.get("/generate", params={"emotion": "sad", "seed": seed, "count": 16, "size": 1024})
                await asyncio.gather(*(one(i) for i in range(200)))

        asyncio.run(abandon())
        time.sleep(1.0)  # let the server notice the disconnects and drop their queued work
        assert httpx.get(base + "/generate", params={"emotion": "happy"}, timeout=5).status_code == 200
        drawn = _metric(base, r'emoface_batch_size_sum\{model="generator"\}') - drawn_before
        assert drawn < 200 * 16 / 2, f"{drawn:.0f} of 3200 abandoned faces were drawn"
        assert not _server_errors(base)


def test_over_capacity_is_refused_at_once_with_retry_after(tiny_weights):
    with live_server(*tiny_weights, log_level="WARNING", max_queue_faces=250) as (_, base):
        async def flood() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=40)) as c:
                return await asyncio.gather(*(c.get("/generate", params={"emotion": "sad", "seed": i, "count": 16,
                                                                          "size": 1024}) for i in range(40)))

        replies = asyncio.run(flood())
        refused = [r for r in replies if r.status_code == 503]
        assert refused and all(r.status_code in (200, 503) for r in replies)
        for r in refused:
            assert_problem(r, 503, "overloaded", "at capacity")
            assert r.headers["retry-after"] == "1"
        assert httpx.get(base + "/generate", params={"emotion": "happy"}, timeout=5).status_code == 200


def test_a_stalled_body_gets_408_and_frees_its_slot(tiny_weights):
    with live_server(*tiny_weights, log_level="WARNING", body_timeout_s=1.0) as (port, base), \
            socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(_headers(port, 100_000) + b"RIFF")  # then nothing, for longer than the body timeout
        s.settimeout(10)
        reply = b""
        while chunk := s.recv(4096):  # the server closes the connection after its answer
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert b"application/problem+json" in reply and b"request-timeout" in reply
        _still_serving(base)


def test_a_client_leaving_is_not_a_server_error(server):
    port, base = server
    body = wav_bytes(np.random.default_rng(0).standard_normal(16_000 * 5).astype(np.float32) * 0.1)
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(_headers(port, len(body)) + body[:1000])
    time.sleep(0.5)
    assert not _server_errors(base)
    _still_serving(base)


def test_a_huge_header_gets_431_without_stalling_others(server):
    port, base = server
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Big: ".encode())
        s.settimeout(10)
        try:
            for _ in range(64):  # up to 4 MB of one header; the server hangs up long before
                s.sendall(b"a" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]
    assert b"headers-too-large" in reply
    _still_serving(base)
