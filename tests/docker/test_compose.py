"""End to end: build the CPU image and the proxy's, `docker compose up`, call the three endpoints
through the proxy, stop it while a request is in flight. Needs root, for a local Docker engine
(the ``engine`` fixture, tests/docker/conftest.py)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import threading
import time

import httpx
import pytest
from PIL import Image

from ml import audio
from tests.conftest import ROOT, container_bytes, fixture_clips, free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]
PROJECT = "emoface-e2e"
IMAGE_LIMIT = 1.5e9


def _run(*args: str, env: dict | None = None, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, check=check)


@pytest.fixture(scope="module")
def compose(engine):
    port = free_port()
    env = {"COMPOSE_FILE": "docker-compose.yml:docker/compose.cpu.yml", "COMPOSE_PROJECT_NAME": PROJECT,
           "EMOFACE_PORT": str(port)}
    t0 = time.time()
    build = _run("docker", "compose", "up", "-d", "--build", env=env, check=False, timeout=1500)
    print(f"\ndocker compose up --build: {time.time() - t0:.0f} s")
    try:
        if build.returncode != 0:
            pytest.fail(f"docker compose up failed:\n{build.stdout[-3000:]}\n{build.stderr[-5000:]}")
        yield {"env": env, "base": f"http://127.0.0.1:{port}"}
    finally:
        logs = _run("docker", "compose", "logs", "--no-color", env=env, check=False)
        print("---- container logs ----\n" + logs.stdout[-8000:])
        _run("docker", "compose", "down", "--timeout", "10", env=env, check=False)


def _health(env: dict) -> str:
    cid = _run("docker", "compose", "ps", "-q", "emoface", env=env).stdout.strip()
    out = _run("docker", "inspect", "--format", "{{json .State.Health.Status}}", cid, check=False).stdout.strip()
    return json.loads(out) if out else "none"


def test_compose_serves_and_stops_cleanly(compose):
    env, base = compose["env"], compose["base"]
    deadline = time.time() + 300
    while (status := _health(env)) != "healthy":
        assert time.time() < deadline, f"container not healthy after 5 min (status {status})"
        time.sleep(2)

    uid = _run("docker", "compose", "exec", "-T", "emoface", "id", "-u", env=env).stdout.strip()
    assert uid != "0", "the container must not run as root"

    clip = fixture_clips()["happy"].read_bytes()
    with httpx.Client(base_url=base, timeout=30) as client:
        face = client.post("/speech-to-face", files={"file": ("clip.flac", clip)})
        assert face.status_code == 200 and face.headers["x-emotion"]
        assert Image.open(io.BytesIO(face.content)).size == (48, 48)
        emotion = client.post("/emotion", files={"file": ("clip.flac", clip)}).json()
        assert emotion["emotion"] in emotion["probabilities"] and emotion["sample_rate"] == 16000
        happy = client.get("/generate", params={"emotion": "happy", "seed": 1})
        assert happy.status_code == 200 and Image.open(io.BytesIO(happy.content)).size == (48, 48)
        # a user's photo, edited: OpenCV's cascades from the wheel, inside the image
        from tests import hostile

        photo = hostile.encoded_image(hostile.face_photo(), "JPEG", quality=92)
        edited = client.post("/edit", params={"emotion": "happy"}, files={"photo": ("me.jpg", photo)})
        assert edited.status_code == 200 and edited.headers["x-emotion"] == "happy", edited.text
        assert Image.open(io.BytesIO(edited.content)).size == hostile.face_photo().size
        # HAProxy is in front: a 20 KB header, which uvicorn's own 64 KiB bound would let through
        assert client.get("/health", headers={"X-Filler": "a" * 20_000}).status_code == 400
        bad = client.post("/emotion", content=b"junk", headers={"Content-Type": "audio/wav"})
        assert bad.status_code == 415 and bad.headers["content-type"].startswith("application/problem+json")
        # a phone's M4A: FFmpeg, in the container's decoder child
        wave = audio.decode(fixture_clips()["happy"]).samples
        memo = client.post("/emotion", files={"file": ("memo.m4a", container_bytes(wave, audio.SAMPLE_RATE, "m4a"))})
        assert memo.status_code == 200 and memo.json()["emotion"] == emotion["emotion"], memo.text
    assert _one_live_answer(base, wave)["type"] == "face"

    # stop while a slow request (a 16-face grid at 1024 px) is in flight: it must complete
    result: dict = {}

    def slow_request() -> None:
        r = httpx.get(base + "/generate", params={"emotion": "sad", "seed": 3, "count": 16, "size": 1024}, timeout=60)
        result["status"], result["bytes"] = r.status_code, len(r.content)

    worker = threading.Thread(target=slow_request)
    worker.start()
    time.sleep(0.3)
    t0 = time.time()
    _run("docker", "compose", "stop", "--timeout", "10", env=env)
    stop_s = time.time() - t0
    worker.join(60)
    print(f"docker compose stop with a request in flight: {stop_s:.1f} s; request -> {result}")
    assert result.get("status") == 200 and result["bytes"] > 0, result
    assert stop_s < 10, f"stopping took {stop_s:.1f} s"


def _one_live_answer(base: str, wave) -> dict:
    """Open the live WebSocket route on the container, send 1.2 s of speech, read one answer."""
    import asyncio

    import numpy as np
    import websockets

    async def run() -> dict:
        async with websockets.connect(base.replace("http://", "ws://") + "/ws/speech-to-face?seed=3") as ws:
            pcm = (np.clip(wave[:int(1.2 * audio.SAMPLE_RATE)], -1, 1) * 32767).astype("<i2").tobytes()
            for i in range(0, len(pcm), 3200):
                await ws.send(pcm[i:i + 3200])
            return json.loads(await asyncio.wait_for(ws.recv(), 30))

    return asyncio.run(run())


def test_image_size(compose):
    size = int(_run("docker", "image", "inspect", "emoface:cpu", "--format", "{{.Size}}").stdout.strip())
    print(f"\nemoface:cpu image size: {size / 1e9:.2f} GB")
    assert size <= IMAGE_LIMIT


def _layers(image: str) -> list[str]:
    return json.loads(_run("docker", "image", "inspect", image, "--format", "{{json .RootFS.Layers}}").stdout)


def test_code_change_reuses_the_dependency_layers(compose, tmp_path):
    """``docker compose up --build`` after a change under service/ rebuilds only the last layer:
    torch, the dependencies, the weights and ml/ come from the cache, so a code change costs
    seconds, not a torch download. Built the way a user rebuilds: compose, on a copy of the tree."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for item in ("pyproject.toml", "constraints.txt", "ml", "service", "weights", "docker", ".dockerignore",
                 "docker-compose.yml"):
        src = ROOT / item
        (shutil.copytree(src, ctx / item, ignore=shutil.ignore_patterns("__pycache__")) if src.is_dir()
         else shutil.copy(src, ctx / item))
    with open(ctx / "service" / "__init__.py", "a") as fh:
        fh.write(f"# rebuild check {time.time()}\n")
    before = _layers("emoface:cpu")
    t0 = time.time()
    subprocess.run(["docker", "compose", "build", "emoface"], cwd=ctx, env={**os.environ, **compose["env"]},
                   capture_output=True, text=True, timeout=900, check=True)
    print(f"\nrebuild after a code change: {time.time() - t0:.1f} s")
    after = _layers("emoface:cpu")
    assert len(after) == len(before) and after[:-1] == before[:-1], "a service/ change must not rebuild earlier layers"
    assert after[-1] != before[-1], "the service/ layer must hold the change"
