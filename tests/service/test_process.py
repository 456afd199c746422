"""The service as a process: bad weight files stop start-up with a clear message and a non-zero
exit; SIGTERM under load lets every in-flight request finish, then refuses new connections."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

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
    proc, port = _start(tmp_path, EMOFACE_SER_WEIGHTS=str(SHIPPED_SER), EMOFACE_GENERATOR_WEIGHTS=str(SHIPPED_GENERATOR))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http_ready(base, proc)
        statuses: list[int] = []

        def slow(seed: int) -> None:  # a 16-face grid at 1024 px takes a good fraction of a second
            r = httpx.get(base + "/generate", params={"emotion": "sad", "seed": seed, "count": 16, "size": 1024},
                          timeout=60)
            statuses.append(r.status_code)

        workers = [threading.Thread(target=slow, args=(i,)) for i in range(8)]  # 8 in flight at once
        for w in workers:
            w.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        for w in workers:
            w.join(60)
        assert statuses == [200] * 8
        # uvicorn drains, then re-raises the signal it caught: exiting "by SIGTERM" is its clean stop
        assert proc.wait(15) in (0, -signal.SIGTERM)
        assert "Finished server process" in proc.stdout.read()
        with pytest.raises(httpx.TransportError):  # new connections are refused once it has stopped
            httpx.get(base + "/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
