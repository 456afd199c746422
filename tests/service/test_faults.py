"""Abuse over real HTTP: clients that vanish mid-upload, a slow trickling client, 64 concurrent
20 MB uploads. The service answers each with a 4xx (or nothing, when the client left) and keeps
serving everyone else."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import numpy as np
import pytest

from tests.conftest import fixture_clips, live_server, wav_bytes

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
