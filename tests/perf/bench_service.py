"""Service load benchmark: the real server in its own process, driven by wrk from another.

    apt-get install wrk   # Debian's HTTP load generator (C, little CPU of its own)
    python tests/perf/bench_service.py [--duration 5] [--out tests/perf/results]

Prints (and writes as JSON and Markdown under --out):
  * start-up time to /ready, resident memory after warm-up;
  * requests/s and p50/p99 latency for /health (the HTTP ceiling), /generate, /emotion and
    /speech-to-face (4 s clip) at concurrency 1, 8, 32, 64, and each as a ratio of /health;
  * the ideal throughput 1/(1/R_http + 1/R_model) with R_model measured in this process at the
    service's batch size (one pass at a time; the median call over 2 s), and the achieved
    fraction of it at concurrency 32; and the same with R_model on every core at once (the
    service draws one batch per core);
  * micro-batching on versus off (max batch 1) for /generate at concurrency 32;
  * a soak of >= 10,000 /generate requests at concurrency 64: errors, p99/p50, and resident
    memory over the run (first vs last tenth, the peak in each half) and 10 s after it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_model() -> str:
    """The CPU's model name (results from two machines of one kind can differ by it)."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_ready(base: str, proc: subprocess.Popen, what: str) -> None:
    """Until ``base``/ready answers 200; raises if ``proc`` exits first."""
    while True:
        try:
            if httpx.get(base + "/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited during start-up")
        time.sleep(0.02)


class Server:
    """``python -m service`` from the checkout at ``root`` (this one by default), on a free port."""

    def __init__(self, root: Path = ROOT, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        full = {**os.environ, "EMOFACE_PORT": str(self.port), "EMOFACE_LOG_LEVEL": "WARNING", "PYTHONPATH": str(root), **env}
        t0 = time.perf_counter()
        self.log = tempfile.NamedTemporaryFile(prefix="emoface-bench-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=root, env=full, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_ready(self.base, self.proc, "server")
        self.startup_s = time.perf_counter() - t0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def wrk(url: str, concurrency: int, duration: float, script: str | None = None) -> dict:
    threads = min(2, concurrency)
    cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--latency", "--timeout", "30s"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return {"concurrency": concurrency, "requests": requests, "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": ms("50%"), "p99_ms": ms("99%"), "errors": errors}


def lua_scripts(tmp: Path) -> dict[str, str]:
    from ml import audio

    clip = sorted((ROOT / "tests" / "fixtures" / "audio").glob("*.flac"))[4]
    import io

    import numpy as np
    import soundfile as sf

    x = np.resize(audio.decode(clip).samples, 4 * audio.SAMPLE_RATE)  # a 4 s clip
    buf = io.BytesIO()
    sf.write(buf, x, audio.SAMPLE_RATE, format="WAV", subtype="PCM_16")
    (tmp / "clip.wav").write_bytes(buf.getvalue())
    post = f"""
local f = io.open("{tmp / 'clip.wav'}", "rb"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body; wrk.headers["Content-Type"] = "audio/wav"
"""
    generate = """
math.randomseed(os.time())
local emotions = {"neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"}
request = function()
  return wrk.format("GET", "/generate?emotion=" .. emotions[math.random(1, 8)] .. "&seed=" .. math.random(0, 2147483647))
end
"""
    paths = {}
    for name, text in (("post", post), ("generate", generate)):
        p = tmp / f"{name}.lua"
        p.write_text(text)
        paths[name] = str(p)
    return paths


def model_rates(batch: int, tmp: Path) -> dict[str, float]:
    """R_model: items/s of the raw models in this process, at the given batch size."""
    import numpy as np
    import torch

    from ml import audio
    from ml.generate import FaceGenerator
    from ml.recognize import EmotionRecognizer

    gen = FaceGenerator.from_checkpoint(ROOT / "weights" / "generator.pt")[0]
    rec = EmotionRecognizer.from_checkpoint(ROOT / "weights" / "ser.pt")[0]
    data = (tmp / "clip.wav").read_bytes()

    def rate(fn, n_items: int, min_s: float = 2.0, min_calls: int = 5) -> float:
        """Items/s of the median call, over at least ``min_s`` and ``min_calls`` calls: a handful of
        50 ms calls moved by a quarter from run to run on this machine."""
        fn()
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < min_calls or time.perf_counter() - start < min_s:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return n_items / float(np.median(times))

    gen_rate = rate(lambda: gen.render([3] * batch, list(range(batch))), batch)
    # the service draws one batch per CPU core at once (EMOFACE_GENERATOR_WORKERS): the model's
    # rate with as many threads drawing their share of a batch side by side
    workers = os.cpu_count() or 1
    part = max(1, batch // workers)

    def side_by_side() -> None:
        threads = [threading.Thread(target=gen.render, args=([3] * part, list(range(part)))) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    gen_rate_all = rate(side_by_side, part * workers)

    def speech_to_face() -> None:
        waves = [audio.decode(data).samples for _ in range(batch)]
        probs = rec.predict(waves)
        gen.render([int(np.argmax(p)) % 7 for p in probs], list(range(batch)))

    s2f_rate = rate(speech_to_face, batch)
    del torch
    return {"generator_faces_per_s": gen_rate, "generator_faces_per_s_all_workers": gen_rate_all, "workers": workers,
            "speech_to_face_per_s": s2f_rate, "batch": batch}


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    p.add_argument("--concurrency", default="1,8,32,64")
    p.add_argument("--soak-requests", type=int, default=10_000)
    p.add_argument("--out", default=str(ROOT / "tests" / "perf" / "results"))
    args = p.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp())
    scripts = lua_scripts(tmp)
    levels = [int(c) for c in args.concurrency.split(",")]
    result: dict = {"machine": {"cpus": os.cpu_count(), "cpu": cpu_model()}}

    server = Server()
    try:
        return _measure(server, args, scripts, levels, tmp, result)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()


def _measure(server: Server, args: argparse.Namespace, scripts: dict, levels: list[int], tmp: Path, result: dict) -> dict:
    result["startup_to_ready_s"] = round(server.startup_s, 2)
    result["rss_after_warmup_mb"] = round(rss_mb(server.proc.pid), 1)
    targets = {
        "/health": (server.base + "/health", None),
        "/generate": (server.base, scripts["generate"]),
        "/emotion": (server.base + "/emotion", scripts["post"]),
        "/speech-to-face": (server.base + "/speech-to-face", scripts["post"]),
    }
    table = {}
    for route, (url, script) in targets.items():
        table[route] = [wrk(url, c, args.duration, script) for c in levels]
        for row in table[route]:
            print(route, row, flush=True)
    result["table"] = table

    # soak: >= N requests at concurrency 64, sampling RSS
    rate64 = next(r["rps"] for r in table["/generate"] if r["concurrency"] == 64) if 64 in levels else 200
    seconds = max(10.0, 1.15 * args.soak_requests / max(rate64, 1))
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        t0 = time.perf_counter()
        while not done.is_set():
            samples.append((time.perf_counter() - t0, rss_mb(server.proc.pid)))
            time.sleep(0.25)

    sampler = threading.Thread(target=sample)
    sampler.start()
    soak = wrk(server.base, 64, seconds, scripts["generate"])
    done.set()
    sampler.join()
    tenth = max(1, len(samples) // 10)
    first = sum(m for _, m in samples[:tenth]) / tenth
    last = sum(m for _, m in samples[-tenth:]) / tenth
    # growth from the first tenth to the last includes the ramp while glibc's arenas fill; a leak
    # shows as a second half whose peak is above the first half's
    half = len(samples) // 2
    result["soak"] = {**soak, "seconds": round(seconds, 1), "rss_first_tenth_mb": round(first, 1),
                      "rss_last_tenth_mb": round(last, 1), "rss_growth_pct": round(100 * (last / first - 1), 2),
                      "rss_peak_first_half_mb": round(max(m for _, m in samples[:half]), 1),
                      "rss_peak_second_half_mb": round(max(m for _, m in samples[half:]), 1),
                      "p99_over_p50": round(soak["p99_ms"] / soak["p50_ms"], 2)}
    result["rss_after_soak_mb"] = round(rss_mb(server.proc.pid), 1)
    time.sleep(10)  # the service hands freed memory back every 5 s (service.main.return_freed_memory)
    result["rss_10s_after_soak_mb"] = round(rss_mb(server.proc.pid), 1)
    server.stop()

    unbatched = Server(EMOFACE_MAX_BATCH_SIZE="1")
    result["generate_c32_unbatched"] = wrk(unbatched.base, 32, args.duration, scripts["generate"])
    unbatched.stop()

    rates = model_rates(32, tmp)
    r_http = next(r["rps"] for r in table["/health"] if r["concurrency"] == 32)
    result["model_rates"] = {k: round(v, 1) for k, v in rates.items()}
    ideal = {"/generate": 1 / (1 / r_http + 1 / rates["generator_faces_per_s"]),
             "/speech-to-face": 1 / (1 / r_http + 1 / rates["speech_to_face_per_s"])}
    # the same with the generator's rate on every core: an upper bound that also counts the
    # HTTP work as if it had a core of its own, so no CPU-bound service on this machine reaches it
    all_workers = 1 / (1 / r_http + 1 / rates["generator_faces_per_s_all_workers"])
    achieved = next(r["rps"] for r in table["/generate"] if r["concurrency"] == 32)
    result["ideal_c32_all_workers"] = {"/generate": {"ideal_rps": round(all_workers, 1), "achieved_rps": achieved,
                                                     "fraction": round(achieved / all_workers, 3)}}
    result["ideal_c32"] = {route: {"ideal_rps": round(v, 1),
                                   "achieved_rps": next(r["rps"] for r in table[route] if r["concurrency"] == 32),
                                   "fraction": round(next(r["rps"] for r in table[route] if r["concurrency"] == 32) / v, 3)}
                           for route, v in ideal.items()}
    batched32 = next(r["rps"] for r in table["/generate"] if r["concurrency"] == 32)
    result["batching_speedup_c32"] = round(batched32 / result["generate_c32_unbatched"]["rps"], 2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "service.json").write_text(json.dumps(result, indent=1))
    md = markdown(result, r_http)
    (out / "service.md").write_text(md)
    print(md)
    return result


def markdown(r: dict, r_http: float) -> str:
    lines = [f"Start-up to ready: {r['startup_to_ready_s']} s; RSS after warm-up {r['rss_after_warmup_mb']} MB, "
             f"after the soak {r['rss_after_soak_mb']} MB.", "",
             "| route | concurrency | req/s | p50 ms | p99 ms | errors | vs /health |", "|---|---|---|---|---|---|---|"]
    for route, rows in r["table"].items():
        base = {row["concurrency"]: row["rps"] for row in r["table"]["/health"]}
        for row in rows:
            lines.append(f"| {route} | {row['concurrency']} | {row['rps']:.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
                         f"{row['errors']} | {row['rps'] / base[row['concurrency']]:.2f} |")
    s = r["soak"]
    lines += ["", f"Ideal throughput at concurrency 32 (R_http {r_http:.0f}/s, models at batch {r['model_rates']['batch']}: "
                  f"generator {r['model_rates']['generator_faces_per_s']:.0f} faces/s, speech-to-face "
                  f"{r['model_rates']['speech_to_face_per_s']:.0f}/s):"]
    for route, v in r["ideal_c32"].items():
        lines.append(f"- {route}: {v['achieved_rps']:.0f} of ideal {v['ideal_rps']:.0f} req/s = {100 * v['fraction']:.0f}%")
    w = r["ideal_c32_all_workers"]["/generate"]
    lines.append(f"- /generate against the generator on all {r['model_rates']['workers']} cores at once "
                 f"({r['model_rates']['generator_faces_per_s_all_workers']:.0f} faces/s): {w['achieved_rps']:.0f} of "
                 f"{w['ideal_rps']:.0f} req/s = {100 * w['fraction']:.0f}%")
    u = r["generate_c32_unbatched"]
    lines += [f"- micro-batching at concurrency 32 on /generate: {r['batching_speedup_c32']}x "
              f"(max batch 1: {u['rps']:.0f} req/s, p50 {u['p50_ms']:.1f} ms)",
              f"- soak: {s['requests']} /generate requests at concurrency 64 in {s['seconds']} s: {s['errors']} errors, "
              f"p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms (p99/p50 {s['p99_over_p50']}), RSS {s['rss_first_tenth_mb']} -> "
              f"{s['rss_last_tenth_mb']} MB ({s['rss_growth_pct']:+.1f}%); peak {s['rss_peak_first_half_mb']} MB in the first half, "
              f"{s['rss_peak_second_half_mb']} MB in the second; {r['rss_10s_after_soak_mb']} MB 10 s after"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
