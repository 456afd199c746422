"""Replicas end to end: the CPU compose deployment with two service replicas behind the proxy
(``docker compose up --scale emoface=2``). Both answer a seed with the same bytes and expose the
gauge the autoscaler reads; one replica sent SIGTERM under steady load fails no request beyond
the drain's 503s, the other then serves everything, and the live streams on the stopped one are
closed with 1012 (service restart). The measurement is tests/perf/bench_failover.py's, shorter."""

from __future__ import annotations

import asyncio
import subprocess

import httpx
import pytest
import yaml

from tests.conftest import ROOT, fixture_clips, free_port
from tests.perf import bench_failover as failover

pytestmark = [pytest.mark.docker, pytest.mark.slow]
PROJECT = "emoface-replicas"


@pytest.fixture(scope="module")
def replicated(engine):
    env = {**failover.COMPOSE_ENV, "COMPOSE_PROJECT_NAME": PROJECT, "EMOFACE_PORT": str(free_port())}
    try:
        up = failover.compose("up", "-d", "--build", "--scale", "emoface=2", env=env, timeout=1500, check=False)
        if up.returncode != 0:
            pytest.fail(f"docker compose up --scale emoface=2 failed:\n{up.stderr[-5000:]}")
        failover.wait_healthy(env, 2)
        base = f"http://127.0.0.1:{env['EMOFACE_PORT']}"
        failover.wait_balanced(base, env)
        yield env, base
    finally:
        logs = failover.compose("logs", "--no-color", "--tail", "60", env=env, check=False)
        print("---- container logs ----\n" + logs.stdout[-8000:])
        failover.compose("down", "--timeout", "10", env=env, check=False)


def _speech_to_face_in(env: dict, index: int, clip: bytes) -> bytes:
    """/speech-to-face without a seed on one replica itself: the person drawn comes from the upload."""
    code = ("import sys, urllib.request; req = urllib.request.Request('http://127.0.0.1:8000/speech-to-face', "
            "data=sys.stdin.buffer.read(), headers={'Content-Type': 'audio/flac'}); "
            "sys.stdout.buffer.write(urllib.request.urlopen(req, timeout=30).read())")
    out = subprocess.run(["docker", "compose", "exec", "-T", "--index", str(index), "emoface", "python", "-c", code],
                         cwd=ROOT, env={**__import__("os").environ, **env}, input=clip, capture_output=True,
                         timeout=120, check=True)
    return out.stdout


def test_both_replicas_answer_alike(replicated):
    env, _ = replicated
    for query in ("/generate?emotion=happy&seed=5", "/generate?emotion=sad&seed=77&count=4&size=96"):
        one, two = failover.in_replica(env, 1, query), failover.in_replica(env, 2, query)
        assert one.startswith(b"\x89PNG") and one == two, query
    clip = fixture_clips()["happy"].read_bytes()
    assert _speech_to_face_in(env, 1, clip) == _speech_to_face_in(env, 2, clip)


def test_each_replica_exposes_the_gauge_the_autoscaler_reads(replicated):
    env, _ = replicated
    rule = yaml.safe_load((ROOT / "deploy" / "k8s" / "prometheus-adapter" / "rules.yaml").read_text())
    series = rule["rules"]["custom"][0]["seriesQuery"].split("{")[0].strip("'")
    for index in (1, 2):
        text = failover.in_replica(env, index, "/metrics").decode()
        assert f'{series}{{model="emotion"}} 0.0' in text and f'{series}_capacity{{model="emotion"}}' in text


def test_sigterm_to_one_replica_under_load_fails_no_request(replicated):
    env, base = replicated
    victim = failover.replicas(env)[0]

    def stop() -> None:
        subprocess.run(["docker", "stop", "--time", "10", victim], check=True, capture_output=True, timeout=60)

    r = asyncio.run(failover.measure(base, stop, seconds=14, stop_at=4, concurrency=16))
    print("\n" + failover.markdown(r))
    assert r["failures"] == 0, r["outcomes"]
    assert r["after_exit_requests"] > 0 and r["after_exit_all_served"], r
    codes = [s["close"] for s in r["streams"]]
    assert 1012 in codes, r["streams"]  # the stopped replica's streams: "service restart"
    assert set(codes) <= {1000, 1012}, r["streams"]  # the others ran to the client's own close
    assert all(s["answers_after"] > 0 for s in r["streams"] if s["close"] == 1000), r["streams"]
    with httpx.Client(base_url=base, timeout=30) as client:  # the survivor serves on
        assert client.get("/generate", params={"emotion": "angry", "seed": 3}).status_code == 200
