"""The service as a process: bad weight files stop start-up with a clear message and a non-zero
exit; on SIGTERM in-flight requests finish within the drain, what cannot finish gets a
problem+json 503 (never uvicorn's plain-text 500), and the process exits within compose's grace."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from service.routes import face_cost
from tests.conftest import ROOT, SHIPPED_GENERATOR, SHIPPED_SER, free_port, wait_http_ready


def _start(tmp_path, **env: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    full = {**os.environ, "EMOFACE_PORT": str(port), **env}
    return subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=full, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True), port


@pytest.mark.parametrize("problem, expected", [("missing", "weight file not found"), ("corrupt", "is corrupt")])
def test_bad_weights_stop_startup(tmp_path, problem, expected):
    path = tmp_path / "ser.pt"
    if problem == "corrupt":
        path.write_bytes(SHIPPED_SER.read_bytes()[:1000])  # a truncated download
    proc, _ = _start(tmp_path, EMOFACE_SER_WEIGHTS=str(path))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert expected in out and str(path) in out


def test_sigterm_lets_in_flight_requests_finish(tmp_path):
    """Every request in flight at SIGTERM finishes. The drain is long (30 s) and the requests have a
    second to arrive: on a loaded 2-core machine 8 grids take several seconds, and what this test
    asks is that they finish, not how fast (the drain's deadline is the next test's)."""
    proc, port = _start(tmp_path, EMOFACE_SER_WEIGHTS=str(SHIPPED_SER), EMOFACE_GENERATOR_WEIGHTS=str(SHIPPED_GENERATOR),
                        EMOFACE_DRAIN_S="30")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http_ready(base, proc)
        statuses: list[int] = []

        def slow(seed: int) -> None:  # a 16-face grid at 1024 px (16 megapixels) takes a second or more
            r = httpx.get(base + "/generate", params={"emotion": "sad", "seed": seed, "count": 16, "size": 1024},
                          timeout=90)
            statuses.append(r.status_code)

        workers = [threading.Thread(target=slow, args=(i,)) for i in range(8)]  # 8 in flight at once
        for w in workers:
            w.start()
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        assert httpx.get(base + "/ready", timeout=5).status_code == 503  # out of rotation at once
        for w in workers:
            w.join(90)
        assert statuses == [200] * 8
        # uvicorn drains, then re-raises the signal it caught: exiting "by SIGTERM" is its clean stop
        assert proc.wait(40) in (0, -signal.SIGTERM)
        assert "Finished server process" in proc.stdout.read()
        with pytest.raises(httpx.TransportError):  # new connections are refused once it has stopped
            httpx.get(base + "/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigterm_with_50_slow_requests_answers_each_and_exits_within_the_grace(tmp_path):
    """25 grids of 16 faces at 512 px and 25 22 MB uploads trickled in, all in flight at SIGTERM (budgets opened so
    that none is refused up front): each gets a 200 or a problem+json 503, never uvicorn's
    plain-text 500, and the process is gone within compose's 10 s grace."""
    proc, port = _start(tmp_path, EMOFACE_SER_WEIGHTS=str(SHIPPED_SER), EMOFACE_GENERATOR_WEIGHTS=str(SHIPPED_GENERATOR),
                        EMOFACE_MAX_QUEUE_FACES="100000", EMOFACE_MAX_QUEUE_CLIPS="1000", EMOFACE_DRAIN_S="5")
    base = f"http://127.0.0.1:{port}"
    answers: list[tuple[int, str]] = []
    errors: list[str] = []
    try:
        wait_http_ready(base, proc)

        def grid(seed: int) -> None:
            r = httpx.get(base + "/generate", params={"emotion": "sad", "seed": seed, "count": 16, "size": 512},
                          timeout=60)
            answers.append((r.status_code, r.headers.get("content-type", "")))

        def upload() -> None:
            def body():
                for _ in range(88):  # 22 MB in 256 KB pieces, 0.1 s apart: about 9 s
                    yield b"\0" * (256 << 10)
                    time.sleep(0.1)
            try:
                r = httpx.post(base + "/emotion", content=body(), headers={"Content-Type": "audio/wav"}, timeout=60)
                answers.append((r.status_code, r.headers.get("content-type", "")))
            except httpx.TransportError as exc:  # the server answered 503 and closed while we still sent
                errors.append(type(exc).__name__)

        workers = [threading.Thread(target=grid, args=(i,)) for i in range(25)]
        workers += [threading.Thread(target=upload) for _ in range(25)]
        for w in workers:
            w.start()
        time.sleep(1.0)
        # SIGTERM only once every request is answered or admitted: one still in the listen backlog
        # when uvicorn closes its socket is refused by TCP (behind the proxy, retried elsewhere),
        # which is not what this test is about
        per_grid, deadline = face_cost(16, 512), time.monotonic() + 20
        while time.monotonic() < deadline:
            used = dict(re.findall(r'^emoface_admitted_work\{model="(\w+)"\} (\S+)$',
                                   httpx.get(base + "/metrics", timeout=5).text, re.M))
            if len(answers) + round(float(used.get("face", 0)) / per_grid + float(used.get("emotion", 0))) >= 50:
                break
            time.sleep(0.05)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) in (0, -signal.SIGTERM)
        exited = time.monotonic() - t0
        for w in workers:
            w.join(30)
        out = proc.stdout.read()
        assert exited < 10, f"exit took {exited:.1f} s"
        assert len(answers) + len(errors) == 50
        assert all(status in (200, 503) for status, _ in answers), answers
        assert all(ctype == "application/problem+json" for status, ctype in answers if status == 503), answers
        assert any(status == 200 for status, _ in answers), (answers, errors, exited)
        assert "Cancel" not in out and "Exception in ASGI application" not in out, out[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigterm_lingers_serving_new_work_while_ready_says_503_then_exits(tmp_path):
    """After SIGTERM the server still accepts connections and serves new work for EMOFACE_LINGER_S
    while /ready answers 503, so a proxy that has not yet seen /ready fail gets answers, not
    refusals or closed connections; then it exits, within the drain and its margin. SIGINT (Ctrl-C)
    does not linger, nor does a second SIGTERM."""
    for sig, linger, drain, twice in ((signal.SIGTERM, "3", "6", False), (signal.SIGINT, "20", "30", False),
                                      (signal.SIGTERM, "20", "30", True)):
        proc, port = _start(tmp_path, EMOFACE_SER_WEIGHTS=str(SHIPPED_SER),
                            EMOFACE_GENERATOR_WEIGHTS=str(SHIPPED_GENERATOR), EMOFACE_LINGER_S=linger,
                            EMOFACE_DRAIN_S=drain)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http_ready(base, proc)
            t0 = time.monotonic()
            proc.send_signal(sig)
            if twice:
                time.sleep(0.5)
                proc.send_signal(sig)
            elif sig == signal.SIGTERM:
                answers = []
                while time.monotonic() - t0 < 2.0:  # each on a new connection
                    ready = httpx.get(base + "/ready", timeout=5)
                    face = httpx.get(base + "/generate", params={"emotion": "happy"}, timeout=5)
                    answers.append((ready.status_code, face.status_code, face.headers.get("content-type"),
                                    "retry-after" in face.headers))
                    time.sleep(0.1)
                assert len(answers) >= 5
                assert set(answers) == {(503, 200, "image/png", False)}, answers
            assert proc.wait(20) in (0, -sig)
            exited = time.monotonic() - t0
            if sig == signal.SIGTERM and not twice:
                assert 2.5 <= exited < 6 + 2, exited
            else:
                assert exited < 5, exited
            with pytest.raises(httpx.TransportError):
                httpx.get(base + "/health", timeout=2)
        finally:
            if proc.poll() is None:
                proc.kill()
