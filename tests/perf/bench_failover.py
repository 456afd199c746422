"""Failover: two replicas behind the compose proxy under steady load, one stopped mid-load.

    python tests/perf/bench_failover.py [--seconds 20] [--stop-at 5] [--concurrency 16] [--repeat 1] [--out DIR]

Needs root, for a local Docker engine (../shared/tools/docker-engine.sh). Builds and starts the CPU
compose deployment with two service replicas (``docker compose up --scale emoface=2``, project
``emoface-failover``), waits until both are healthy, then for ``--seconds``:

* ``--concurrency`` clients send requests back to back through the proxy, half ``/generate`` (one
  face, a new seed each time), half ``/speech-to-face`` with a 4 s FLAC (63 KB, more than the
  proxy buffers, so the proxy cannot resend it);
* four live streams send speech in real time through the proxy;
* at ``--stop-at`` one replica gets SIGTERM (``docker stop``, compose's 10 s grace).

Prints and writes (failover.json, failover.md under --out): the answers by kind (200; 503 with
Retry-After, which the drain promises; anything else, or no answer, is a failure), p50/p99 before
the stop, during the drain and after the stopped replica exited, whether every request begun after
it exited was served, and each live stream's fate (closed with 1012 by the stopped replica, or
still answering on the other). ``tests/docker/test_replicas.py`` runs the same measurement, shorter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere, installed or not

PROJECT = "emoface-failover"
COMPOSE_ENV = {"COMPOSE_FILE": "docker-compose.yml:docker/compose.cpu.yml"}
STREAMS = 4


def compose(*args: str, env: dict, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "compose", *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=timeout, check=check)


def replicas(env: dict) -> list[str]:
    return compose("ps", "-q", "emoface", env=env).stdout.split()


def wait_healthy(env: dict, count: int, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while True:
        ids = replicas(env)
        states = [subprocess.run(["docker", "inspect", "--format", "{{.State.Health.Status}}", cid],
                                 capture_output=True, text=True).stdout.strip() for cid in ids]
        if len(ids) == count and states.count("healthy") == count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"replicas not healthy after {seconds:.0f} s: {states}")
        time.sleep(1)


def wait_balanced(base: str, env: dict, seconds: float = 30) -> None:
    """Until the proxy sends requests to every replica (its health checks need two passes)."""
    deadline = time.monotonic() + seconds
    ids = replicas(env)
    while time.monotonic() < deadline:
        before = [served(env, i) for i in range(1, len(ids) + 1)]
        for seed in range(8):
            httpx.get(base + "/generate", params={"emotion": "happy", "seed": seed}, timeout=30)
        after = [served(env, i) for i in range(1, len(ids) + 1)]
        if all(a > b for a, b in zip(after, before)):
            return
    raise RuntimeError("the proxy did not reach every replica")


def in_replica(env: dict, index: int, path: str) -> bytes:
    """GET ``path`` on one replica itself, from inside its container (not through the proxy)."""
    code = ("import sys, urllib.request; "
            f"sys.stdout.buffer.write(urllib.request.urlopen('http://127.0.0.1:8000{path}', timeout=30).read())")
    out = subprocess.run(["docker", "compose", "exec", "-T", "--index", str(index), "emoface", "python", "-c", code],
                         cwd=ROOT, env={**os.environ, **env}, capture_output=True, timeout=120, check=True)
    return out.stdout


def served(env: dict, index: int) -> float:
    """How many /generate requests one replica has answered (its own /metrics)."""
    text = in_replica(env, index, "/metrics").decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith('emoface_requests_total{method="GET",route="/generate"'))


def four_second_flac() -> bytes:
    import io

    import soundfile as sf

    from ml import audio
    clip = sorted((ROOT / "tests" / "fixtures" / "audio").glob("*.flac"))[4]
    x = np.resize(audio.decode(clip).samples, 4 * audio.SAMPLE_RATE)
    buf = io.BytesIO()
    sf.write(buf, x, audio.SAMPLE_RATE, format="FLAC")
    return buf.getvalue()


def speech_pcm() -> bytes:
    from ml import audio
    clip = sorted((ROOT / "tests" / "fixtures" / "audio").glob("*.flac"))[2]
    return (np.clip(audio.decode(clip).samples, -1, 1) * 32767).astype("<i2").tobytes()


def quantiles(ms: list[float]) -> dict:
    if not ms:
        return {"n": 0}
    ms = sorted(ms)
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 1), "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 1)}


async def measure(base: str, stop: Callable[[], None], seconds: float = 20, stop_at: float = 5,
                  concurrency: int = 16) -> dict:
    """Steady load through ``base`` for ``seconds``; ``stop()`` (blocking: SIGTERM to one replica,
    returning once it has exited) is called at ``stop_at``. Returns the figures the module names."""
    import websockets

    flac, pcm = four_second_flac(), speech_pcm()
    t0 = time.monotonic()
    end = t0 + seconds
    records: list[dict] = []
    marks: dict[str, float] = {}
    streams: list[dict] = [{"answers_before": 0, "answers_after": 0, "close": None} for _ in range(STREAMS)]

    async def client(worker: int, http: httpx.AsyncClient) -> None:
        n = 0
        while time.monotonic() < end:
            n += 1
            started = time.monotonic()
            try:
                if worker % 2:
                    r = await http.post("/speech-to-face", files={"file": ("clip.flac", flac)},
                                        params={"seed": worker * 100_000 + n})
                else:
                    r = await http.get("/generate", params={"emotion": "happy", "seed": worker * 100_000 + n})
                outcome = ("200" if r.status_code == 200 else
                           "503 with Retry-After" if r.status_code == 503 and r.headers.get("retry-after") else
                           f"failure: {r.status_code}")
            except httpx.HTTPError as exc:
                outcome = f"failure: {type(exc).__name__}"
            records.append({"start": started - t0, "end": time.monotonic() - t0, "outcome": outcome,
                            "route": "/speech-to-face" if worker % 2 else "/generate"})

    async def stream(i: int) -> None:
        url = base.replace("http://", "ws://") + f"/ws/speech-to-face?rate=16000&seed={i}"
        hop = 3200  # 0.1 s of 16 kHz 16-bit PCM
        ws = None
        try:
            async with websockets.connect(url) as ws:
                async def read() -> None:
                    with contextlib.suppress(websockets.ConnectionClosed):
                        async for _ in ws:
                            streams[i]["answers_after" if "stop" in marks else "answers_before"] += 1
                reader = asyncio.ensure_future(read())
                k = 0
                while time.monotonic() < end and not reader.done():
                    await ws.send(pcm[(k * hop) % (len(pcm) - hop):][:hop])
                    k += 1
                    await asyncio.sleep(0.1)
                if not reader.done():
                    await ws.close()
                await asyncio.wait({reader}, timeout=5)
        except (OSError, websockets.WebSocketException) as exc:
            streams[i]["error"] = type(exc).__name__
        streams[i]["close"] = ws.close_code if ws is not None else None

    async def stopper() -> None:
        await asyncio.sleep(max(0.0, t0 + stop_at - time.monotonic()))
        marks["stop"] = time.monotonic() - t0
        await asyncio.to_thread(stop)
        marks["exited"] = time.monotonic() - t0

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        await asyncio.gather(stopper(), *(stream(i) for i in range(STREAMS)),
                             *(client(w, http) for w in range(concurrency)))

    stop_t, exited_t = marks["stop"], marks["exited"]
    outcomes: dict[str, int] = {}
    for r in records:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    ok = [r for r in records if r["outcome"] == "200"]
    after = [r for r in records if r["start"] >= exited_t]
    return {
        "seconds": seconds, "stop_at_s": round(stop_t, 2), "replica_exited_s": round(exited_t, 2),
        "concurrency": concurrency, "requests": len(records), "outcomes": outcomes,
        "failures": sum(n for k, n in outcomes.items() if k.startswith("failure")),
        "retry_after_503": outcomes.get("503 with Retry-After", 0),
        "latency_before_stop": quantiles([(r["end"] - r["start"]) * 1000 for r in ok if r["end"] < stop_t]),
        "latency_during_drain": quantiles([(r["end"] - r["start"]) * 1000 for r in ok
                                           if r["start"] >= stop_t and r["start"] < exited_t]),
        "latency_after_exit": quantiles([(r["end"] - r["start"]) * 1000 for r in ok if r["start"] >= exited_t]),
        "after_exit_all_served": bool(after) and all(r["outcome"] == "200" for r in after),
        "after_exit_requests": len(after),
        "streams": streams,
    }


def markdown(r: dict) -> str:
    lat = lambda q: f"p50 {q.get('p50_ms', '-')} ms, p99 {q.get('p99_ms', '-')} ms ({q['n']} requests)"  # noqa: E731
    lines = [
        f"Two replicas behind docker/haproxy/haproxy.cfg, {r['concurrency']} clients for {r['seconds']:g} s "
        f"(half /generate, half /speech-to-face with a 4 s FLAC); one replica sent SIGTERM at {r['stop_at_s']} s, "
        f"exited at {r['replica_exited_s']} s.",
        "",
        f"- {r['requests']} requests: {json.dumps(r['outcomes'])}; failures {r['failures']}, "
        f"503 with Retry-After {r['retry_after_503']}.",
        f"- before the stop: {lat(r['latency_before_stop'])}",
        f"- during the drain: {lat(r['latency_during_drain'])}",
        f"- after the replica exited: {lat(r['latency_after_exit'])}; every one served: {r['after_exit_all_served']}",
        "- live streams (answers before / after the stop, close code): "
        + "; ".join(f"{s['answers_before']} / {s['answers_after']}, {s['close']}" for s in r["streams"]),
    ]
    return "\n".join(lines) + "\n"


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--stop-at", type=float, default=5)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--repeat", type=int, default=1,
                   help="measure this many times, restarting the stopped replica between (a rare race needs "
                        "many stops); one line per run, the last run's figures written")
    p.add_argument("--out", type=Path, help="write failover.json and failover.md here")
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root, to start a local Docker engine (../shared/tools/docker-engine.sh)")
    engine = ROOT.parent / "shared" / "tools" / "docker-engine.sh"
    if engine.exists():
        subprocess.run(["bash", str(engine)], check=True, capture_output=True, timeout=1200)
    port = 18000 + os.getpid() % 1000
    env = {**COMPOSE_ENV, "COMPOSE_PROJECT_NAME": PROJECT, "EMOFACE_PORT": str(port)}
    base = f"http://127.0.0.1:{port}"
    try:
        compose("up", "-d", "--build", "--scale", "emoface=2", env=env, timeout=1500)
        for run in range(args.repeat):
            wait_healthy(env, 2)
            wait_balanced(base, env)
            victim = replicas(env)[0]
            result = asyncio.run(measure(base, lambda: subprocess.run(["docker", "stop", "--time", "10", victim],
                                                                       check=True, capture_output=True, timeout=60),
                                         args.seconds, args.stop_at, args.concurrency))
            print(f"run {run + 1}: {result['requests']} requests, {json.dumps(result['outcomes'])}", flush=True)
            if run + 1 < args.repeat:
                subprocess.run(["docker", "start", victim], check=True, capture_output=True, timeout=60)
    finally:
        compose("down", "--timeout", "10", env=env, check=False)
    print(json.dumps(result, indent=1))
    print(markdown(result))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "failover.json").write_text(json.dumps(result, indent=1))
        (args.out / "failover.md").write_text(markdown(result))
    return result


if __name__ == "__main__":
    main()
