"""Abuse benchmark: decode bombs, abandoned heavy requests and a 2000-connection flood against
the real server (shipped weights) in its own process.

    apt-get install wrk
    python tests/perf/bench_abuse.py [--out tests/perf/results] [--flood-s 10]

Prints (and writes as JSON and Markdown under --out):
  * decode bombs: for each hostile upload, its size, the answer, and the server's peak resident
    memory above idle while it was handled (the kernel's high-water mark, reset before each one:
    ``/proc/PID/clear_refs``), one at a time, two bombs at once, and ``--uploads`` valid 22 MB
    uploads at once;
  * bad photos: each of tests.hostile's bad photos, and the largest photo accepted, to /edit: the
    answer, the peak resident memory above idle, and the next request's answer;
  * abandon: 200 clients ask for 16-face grids at 1024 px and leave after 10 s; then how long
    one normal /speech-to-face request takes;
  * flood: wrk holds 2000 connections on /speech-to-face for ``--flood-s`` while probes measure
    their own /speech-to-face answers (status, latency) and /health's latency (a connection
    kept alive, every 20 ms, from a process of its own), through the proxy and on the service
    itself; resident memory before, at the peak, 5 s and 15 s after. Through HAProxy with
    docker/haproxy/haproxy.cfg (the compose deployment) when haproxy is installed, and on
    uvicorn alone.

As root, the service and the proxy each run in a CPU cgroup of their own with the weight
docker-compose.yml gives its container, as Docker runs them; wrk runs at nice 19 in a cgroup of
the least weight: it shares this machine's two cores with the service, where a real flood's
senders have machines of their own. ``cpu_groups`` in the results says whether this held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import io
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[2]))  # the repository: tests.hostile
from bench_service import ROOT, Server, free_port, rss_mb, wait_ready  # noqa: E402


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def tone(seconds: float, sr: int, channels: int, peak: float = 0.3, voiced_s: float | None = None) -> np.ndarray:
    """A wobbling tone on every channel; with ``voiced_s``, only its first seconds, then digital
    silence (what makes a compressed file tiny and its decoded form huge)."""
    t = np.arange(int(seconds * sr)) / sr
    x = (peak * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) / 1.5).astype(np.float32)
    if voiced_s is not None:
        x[int(voiced_s * sr):] = 0
    return np.repeat(x[:, None], channels, axis=1) if channels > 1 else x


def encoded(x: np.ndarray, sr: int, fmt: str, subtype: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def lying_wav(channels: int, sr: int, real_s: float = 0.01) -> bytes:
    """A 16-bit WAV whose header claims 4 GB of ``channels`` channels, holding ``real_s`` seconds."""
    head = bytearray(encoded(tone(real_s, sr, channels), sr, "WAV", "PCM_16"))
    head[4:8] = (2**32 - 8).to_bytes(4, "little")
    head[40:44] = (2**32 - 48).to_bytes(4, "little")
    return bytes(head)


def bombs(cache: Path) -> dict[str, bytes]:
    """The hostile uploads, built once (the Vorbis encoder is slow on 255 channels) and cached."""
    cache.mkdir(parents=True, exist_ok=True)
    recipes = {
        "ogg-vorbis-255ch-192k-1.3s": lambda: encoded(tone(1.3, 192_000, 255, voiced_s=0.5), 192_000, "OGG", "VORBIS"),
        "ogg-vorbis-64ch-192k-5s": lambda: encoded(tone(5, 192_000, 64, voiced_s=1), 192_000, "OGG", "VORBIS"),
        "flac-8ch-384k-20s": lambda: encoded(tone(20, 384_000, 8, voiced_s=2), 384_000, "FLAC", "PCM_16"),
        "flac-8ch-384k-59s": lambda: encoded(tone(59, 384_000, 8, voiced_s=2), 384_000, "FLAC", "PCM_16"),
        "wav-8ch-384k-header-claims-4GB": lambda: lying_wav(8, 384_000),
        "wav-float-peak-1e19": lambda: encoded(tone(2, 16_000, 1) * 3e19, 16_000, "WAV", "FLOAT"),
        "wav-pcm16-96k-stereo-59s-22MB": lambda: encoded(tone(59, 96_000, 2), 96_000, "WAV", "PCM_16"),
    }
    out = {}
    for name, make in recipes.items():
        path = cache / f"{name}.bin"
        if not path.exists():
            path.write_bytes(make())
        out[name] = path.read_bytes()
    return out


def post(base: str, data: bytes, timeout: float = 120) -> httpx.Response:
    return httpx.post(base + "/emotion", content=data, headers={"Content-Type": "audio/wav"}, timeout=timeout)


def measure_bombs(server: Server, cache: Path, uploads: int) -> dict:
    pid = server.proc.pid
    out: dict = {"single": {}, "together": {}}
    for name, data in bombs(cache).items():
        time.sleep(0.5)
        idle = rss_mb(pid)
        reset_peak(pid)
        t0 = time.perf_counter()
        r = post(server.base, data)
        out["single"][name] = {"bytes": len(data), "status": r.status_code,
                               "problem": r.json().get("type", "").rsplit("/", 1)[-1] if r.status_code >= 400 else None,
                               "seconds": round(time.perf_counter() - t0, 2),
                               "idle_mb": round(idle, 1), "peak_over_idle_mb": round(peak_mb(pid) - idle, 1)}
        print(f"  {name}: {len(data) / 1e6:.2f} MB -> {r.status_code}, peak +{out['single'][name]['peak_over_idle_mb']} MB "
              f"over idle, {out['single'][name]['seconds']} s", flush=True)
    every = bombs(cache)

    def together(label: str, uploads: list[bytes]) -> None:
        time.sleep(0.5)
        idle = rss_mb(pid)
        reset_peak(pid)
        statuses: list[int] = []

        def one(data: bytes) -> None:
            statuses.append(post(server.base, data, timeout=300).status_code)

        threads = [threading.Thread(target=one, args=(d,)) for d in uploads]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out["together"][label] = {"uploads": len(uploads), "statuses": {str(s): statuses.count(s) for s in set(statuses)},
                                  "peak_over_idle_mb": round(peak_mb(pid) - idle, 1)}
        print(f"  {label}: {out['together'][label]}", flush=True)

    together("two Vorbis 64-channel 192 kHz at once", [every["ogg-vorbis-64ch-192k-5s"]] * 2)
    together("two FLAC 8-channel 384 kHz at once", [every["flac-8ch-384k-20s"]] * 2)
    together(f"{uploads} valid 22 MB uploads at once", [every["wav-pcm16-96k-stereo-59s-22MB"]] * uploads)
    out["worst_single_peak_over_idle_mb"] = max(b["peak_over_idle_mb"] for b in out["single"].values())
    return out


def measure_photos(server: Server) -> dict:
    """Each bad photo of tests.hostile (and the largest accepted photo, 4096x4096) to /edit, one at a
    time: the answer, the server's peak RSS over idle while it was handled, and whether the next
    request (a good 512 px photo) was served."""
    from tests import hostile

    pid = server.proc.pid
    face = hostile.face_photo()
    good = hostile.encoded_image(face, "JPEG", quality=92)
    big = hostile.encoded_image(hostile.face_photo(size=(4096, 4096), face_px=2048), "JPEG", quality=95)
    uploads = {**{k: v[0] for k, v in hostile.bad_photos().items()}, "valid 4096x4096 JPEG": big}
    out: dict = {"single": {}}
    for name, data in uploads.items():
        time.sleep(0.3)
        idle = rss_mb(pid)
        reset_peak(pid)
        t0 = time.perf_counter()
        r = httpx.post(server.base + "/edit?emotion=happy", files={"photo": ("photo.png", data)}, timeout=120)
        seconds = time.perf_counter() - t0
        peak = peak_mb(pid) - idle
        after = httpx.post(server.base + "/edit?emotion=happy", files={"photo": ("me.jpg", good)}, timeout=60)
        out["single"][name] = {"bytes": len(data), "status": r.status_code,
                               "problem": r.json().get("type", "").rsplit("/", 1)[-1] if r.status_code >= 400 else None,
                               "seconds": round(seconds, 2), "peak_over_idle_mb": round(peak, 1),
                               "next_status": after.status_code}
        print(f"  {name}: {len(data) / 1e6:.2f} MB -> {r.status_code} {out['single'][name]['problem'] or ''}, "
              f"peak +{round(peak, 1)} MB over idle, {seconds:.2f} s; next request {after.status_code}", flush=True)
    out["worst_peak_over_idle_mb"] = max(b["peak_over_idle_mb"] for b in out["single"].values())
    return out


def measure_abandon(server: Server, clip: bytes) -> dict:
    async def run() -> dict:
        counts = {"200": 0, "503": 0, "left": 0, "other": 0}
        async with httpx.AsyncClient(base_url=server.base, timeout=10, limits=httpx.Limits(max_connections=200)) as c:
            async def one(seed: int) -> None:
                try:
                    r = await c.get("/generate", params={"emotion": "sad", "seed": seed, "count": 16, "size": 1024})
                    counts[str(r.status_code) if r.status_code in (200, 503) else "other"] += 1
                except httpx.TimeoutException:
                    counts["left"] += 1
            await asyncio.gather(*(one(i) for i in range(200)))
        return counts

    t0 = time.perf_counter()
    counts = asyncio.run(run())
    spent = time.perf_counter() - t0
    t1 = time.perf_counter()
    r = httpx.post(server.base + "/speech-to-face", content=clip, headers={"Content-Type": "audio/wav"}, timeout=120)
    after = time.perf_counter() - t1
    out = {"clients": 200, "answers": counts, "seconds": round(spent, 2), "next_status": r.status_code,
           "next_request_s": round(after, 3)}
    print(f"  abandon: {out}", flush=True)
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and every process under it (the FFmpeg forkserver and its decoder children)."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it exited meanwhile
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    out, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, ppid in parent.items() if ppid in frontier]
        out += frontier
    return out


def decoder_children(pids: list[int]) -> list[int]:
    """Which of ``pids`` are FFmpeg decoder children: those whose parent is the forkserver."""
    def cmdline(p: int) -> str:
        try:
            return Path(f"/proc/{p}/cmdline").read_text()
        except OSError:
            return ""

    def ppid(p: int) -> int:
        try:
            return int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return -1

    servers = {p for p in pids if "forkserver" in cmdline(p)}
    return [p for p in pids if ppid(p) in servers]


def tree_rss_mb(pid: int) -> tuple[float, int, float]:
    """The resident memory of ``pid``'s whole process tree (MB: the service, multiprocessing's
    forkserver and resource tracker, the decoder children), how many decoder children it has, and
    the largest child's resident memory (MB)."""
    pids = tree(pid)
    children = set(decoder_children(pids))
    total, child_mb = 0.0, 0.0
    for p in pids:
        try:
            mb = rss_mb(p)
        except (OSError, ValueError):  # it exited meanwhile
            continue
        mb = 0.0 if np.isnan(mb) else mb
        total += mb
        child_mb = max(child_mb, mb) if p in children else child_mb
    return total, len(children), child_mb


class TreeSampler:
    """Samples the process tree's RSS and its decoder children every 5 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_mb, self.most_children, self.child_peak_mb = pid, 0.0, 0, 0.0
        self.idle_mb = tree_rss_mb(pid)[0]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            mb, children, child_mb = tree_rss_mb(self.pid)
            self.peak_mb, self.most_children = max(self.peak_mb, mb), max(self.most_children, children)
            self.child_peak_mb = max(self.child_peak_mb, child_mb)
            time.sleep(0.005)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def over_idle_mb(self) -> float:
        return round(max(0.0, self.peak_mb - self.idle_mb), 1)


def ffmpeg_probes() -> dict[str, bytes]:
    from tests import hostile

    fixture = "tests/fixtures/audio/03-01-05-02-01-01-03.flac"
    return {"concat naming a server file": hostile.concat(fixture), "hls naming a server file": hostile.hls(fixture),
            "sdp: RTP on UDP 20000": hostile.SDP, "png 16000 x 16000": hostile.huge_png(),
            "m4a declaring 40 M samples": hostile.m4a_sample_table_bomb(40_000_000),
            "m4a declaring 85 M samples": hostile.m4a_sample_table_bomb(85_000_000),
            "matroska flac, 60 M samples (slow)": hostile.matroska_flac_bomb()}


def measure_ffmpeg(server: Server, clip: bytes, flac: bytes) -> dict:
    """Each hostile FFmpeg upload alone (answer, time, the process tree's peak RSS over idle, decoder
    children at most); ten of them in flight while 20 FLAC /emotion requests and /health are timed;
    eight abandoned mid-decode."""
    pid, base = server.proc.pid, server.base
    mp4 = {"Content-Type": "audio/mp4"}
    out: dict = {"single": {}}
    httpx.post(base + "/emotion", content=clip, headers={"Content-Type": "audio/mp4"}, timeout=60)  # forkserver up
    for name, data in ffmpeg_probes().items():
        time.sleep(0.5)
        with TreeSampler(pid) as sampler:
            t0 = time.perf_counter()
            r = httpx.post(base + "/emotion", content=data, headers=mp4, timeout=120)
            took = time.perf_counter() - t0
            time.sleep(0.2)
        left = tree_rss_mb(pid)[1]
        out["single"][name] = {"bytes": len(data), "status": r.status_code,
                               "problem": r.json().get("type", "").rsplit("/", 1)[-1] if r.status_code >= 400 else None,
                               "seconds": round(took, 2), "tree_peak_over_idle_mb": sampler.over_idle_mb,
                               "children_at_most": sampler.most_children, "children_left": left,
                               "child_peak_rss_mb": round(sampler.child_peak_mb, 1)}
        print(f"  {name}: {out['single'][name]}", flush=True)
    out["worst_tree_peak_over_idle_mb"] = max(v["tree_peak_over_idle_mb"] for v in out["single"].values())
    out["largest_child_rss_mb"] = max(v["child_peak_rss_mb"] for v in out["single"].values())

    slow = ffmpeg_probes()["matroska flac, 60 M samples (slow)"]
    stop = threading.Event()
    hostile_answers: list[int] = []

    def attacker() -> None:
        while not stop.is_set():
            try:
                hostile_answers.append(httpx.post(base + "/emotion", content=slow, headers=mp4, timeout=60).status_code)
            except httpx.HTTPError:
                hostile_answers.append(0)

    health: list[float] = []

    def prober() -> None:
        with httpx.Client(base_url=base, timeout=10) as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                c.get("/health")
                health.append(1000 * (time.perf_counter() - t0))
                time.sleep(0.02)

    with TreeSampler(pid) as sampler:
        threads = [threading.Thread(target=attacker) for _ in range(10)] + [threading.Thread(target=prober)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        flac_ms, statuses = [], []
        with httpx.Client(base_url=base, timeout=60) as c:
            for _ in range(20):
                t0 = time.perf_counter()
                statuses.append(c.post("/emotion", content=flac, headers={"Content-Type": "audio/flac"}).status_code)
                flac_ms.append(1000 * (time.perf_counter() - t0))
                time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join()
    out["ten_hostile_in_flight"] = {
        "flac_statuses": {str(s): statuses.count(s) for s in set(statuses)},
        "flac_p50_ms": round(float(np.percentile(flac_ms, 50)), 1), "flac_p99_ms": round(float(np.percentile(flac_ms, 99)), 1),
        "health_p50_ms": round(float(np.percentile(health, 50)), 1), "health_p99_ms": round(float(np.percentile(health, 99)), 1),
        "hostile_answers": {str(s): hostile_answers.count(s) for s in set(hostile_answers)},
        "tree_peak_over_idle_mb": sampler.over_idle_mb, "children_at_most": sampler.most_children,
        "child_peak_rss_mb": round(sampler.child_peak_mb, 1)}
    print(f"  ten hostile FFmpeg uploads in flight: {out['ten_hostile_in_flight']}", flush=True)

    def leave() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(base + "/emotion", content=slow, headers=mp4, timeout=0.5)

    time.sleep(2)
    with TreeSampler(pid) as sampler:
        threads = [threading.Thread(target=leave) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(3)
    out["eight_abandoned"] = {"children_at_most": sampler.most_children, "children_left_3s_after": tree_rss_mb(pid)[1],
                              "tree_peak_over_idle_mb": sampler.over_idle_mb}
    print(f"  eight abandoned mid-decode: {out['eight_abandoned']}", flush=True)
    return out


def measure_websocket(pcm: bytes) -> dict:
    """The live route's abuse, on a service of its own with an API key and the default slots: no key
    (or one in the URL), a foreign Origin, a Unicode digit as the rate, and 16 connections that
    send 2 bytes every 8 s while a real stream asks for a slot."""
    import websockets

    key = "bench-key"
    server = Server(EMOFACE_API_KEY=key)
    url = server.base.replace("http://", "ws://") + "/ws/speech-to-face"
    auth = {"X-API-Key": key}

    async def handshake(target: str, headers: dict) -> int | str:
        try:
            async with websockets.connect(target, additional_headers=headers, open_timeout=10):
                return "opened"
        except websockets.InvalidStatus as refused:
            return refused.response.status_code

    async def close_code(target: str) -> int | None:
        async with websockets.connect(target, additional_headers=auth) as ws:
            with contextlib.suppress(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            return ws.close_code

    async def squat(ws, stop: asyncio.Event) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while not stop.is_set():
                await ws.send(b"\x00\x00")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), 8)

    async def squatters() -> dict:
        stop, codes, conns = asyncio.Event(), [], []
        for _ in range(16):
            ws = await websockets.connect(url, additional_headers=auth)
            conns.append(ws)
        tasks = [asyncio.ensure_future(squat(ws, stop)) for ws in conns]
        await asyncio.sleep(6.0)  # past the 5 s in which a stream's rate does not count
        t0, answered = time.perf_counter(), None
        async with websockets.connect(url, additional_headers=auth) as real:
            for i in range(0, 2 * 16_000 * 2, 3200):
                await real.send(pcm[i:i + 3200])
            with contextlib.suppress(websockets.ConnectionClosed, asyncio.TimeoutError):
                answered = json.loads(await asyncio.wait_for(real.recv(), 10))["type"]
        first_answer_s = time.perf_counter() - t0
        stop.set()
        await asyncio.gather(*tasks)
        for ws in conns:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ws.wait_closed(), 1)
            codes.append(ws.close_code)
            await ws.close()
        return {"real_stream_answer": answered, "real_stream_first_answer_s": round(first_answer_s, 2),
                "squatter_close_codes": {str(c): codes.count(c) for c in set(codes)}}

    def ping_flood(seconds: float = 10.0) -> dict:
        """A client that opens a stream (with the key), then only sends pings and never reads: what
        the server holds for the pongs it cannot send (the socket's buffers fill, then it stops reading)."""
        import base64
        import socket

        def masked(opcode: int, payload: bytes) -> bytes:
            mask = os.urandom(4)
            return (bytes([0x80 | opcode, 0x80 | len(payload)]) + mask
                    + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall((f"GET /ws/speech-to-face HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                      f"Sec-WebSocket-Version: 13\r\nX-API-Key: {key}\r\n\r\n").encode())
        upgraded = sock.recv(4096).startswith(b"HTTP/1.1 101")
        before = rss_mb(server.proc.pid)
        burst, sent, peak = masked(0x9, b"p" * 125) * 64, 0, before
        sock.setblocking(False)
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            try:
                sent += sock.send(burst)
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:  # the server closed it
                break
            peak = max(peak, rss_mb(server.proc.pid))
        sock.close()
        return {"upgraded": upgraded, "sent_mb": round(sent / 1e6, 1), "rss_over_before_mb": round(peak - before, 1)}

    try:
        out = {"no_key": asyncio.run(handshake(url, {})),
               "ping_flood_never_reading": ping_flood(),
               "key_in_url": asyncio.run(handshake(url + "?api_key=" + key, {})),
               "foreign_origin": asyncio.run(handshake(url, {**auth, "Origin": "https://evil.example"})),
               "rate_unicode_digit_close": asyncio.run(close_code(url + "?rate=%C2%B2")),
               **asyncio.run(squatters())}
    finally:
        server.stop()
    print(f"  websocket: {out}", flush=True)
    return out


CPU_GROUPS = Path("/sys/fs/cgroup/cpu")  # cgroup v1's cpu controller, as Docker uses it


def compose_cpu_shares(service: str) -> int:
    """The CPU weight docker-compose.yml gives ``service`` (Docker's default, 1024, if none)."""
    import yaml  # PyYAML, installed with the test extras (schemathesis)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return int(compose["services"][service].get("cpu_shares", 1024))


def cpu_group(pid: int, name: str, shares: int) -> bool:
    """Put process ``pid`` (all its threads) in a CPU cgroup of its own with weight ``shares``,
    as Docker puts each compose service in one: the proxy and the service then share the cores
    as two containers do, not as threads of one pool. False where cgroups cannot be made
    (not root, cgroup v2 only): the processes then compete thread against thread."""
    group = CPU_GROUPS / f"emoface-bench-{name}"
    try:
        group.mkdir(exist_ok=True)
        (group / "cpu.shares").write_text(str(shares))
        (group / "cgroup.procs").write_text(str(pid))
    except OSError:
        return False
    return True


class Proxy:
    """HAProxy with the compose file's configuration (``docker/haproxy/haproxy.cfg``) in front of
    ``server``, on a free port: the topology ``docker compose up`` deploys."""

    def __init__(self, server: Server) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "EMOFACE_PROXY_BIND": f"127.0.0.1:{self.port}", "EMOFACE_UPSTREAM": f"127.0.0.1:{server.port}"}
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(ROOT / "docker" / "haproxy" / "haproxy.cfg")], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(self.base, self.proc, "haproxy")
        cpu_group(self.proc.pid, "proxy", shares=compose_cpu_shares("proxy"))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def probe_health(base: str, until: float, wrk_pid: int, send) -> None:
    """/health every 20 ms on one kept-alive connection until ``until`` (time.monotonic()) or until
    wrk ends; sends back the latencies in ms and the statuses other than 200 (a kubelet that sees
    those restarts the pod)."""
    host, port = base.removeprefix("http://").split(":")
    conn, out, not_ok = http.client.HTTPConnection(host, int(port), timeout=30), [], []
    while time.monotonic() < until and Path(f"/proc/{wrk_pid}").exists():
        t0 = time.perf_counter()
        conn.request("GET", "/health")
        response = conn.getresponse()
        response.read()
        out.append(1000 * (time.perf_counter() - t0))
        if response.status != 200:
            not_ok.append(response.status)
        time.sleep(0.02)
    conn.close()
    send.send((out, not_ok))


def measure_flood(server: Server, base: str, clip_path: Path, seconds: float, tmp: Path,
                  proxy: Proxy | None = None) -> dict:
    """The flood against ``base``: the server itself, or the proxy in front of it."""
    script = tmp / "post.lua"
    script.write_text(f"""
local f = io.open("{clip_path}", "rb"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body; wrk.headers["Content-Type"] = "audio/wav"
""")
    pid = server.proc.pid
    time.sleep(1)
    before = rss_mb(pid)
    proxy_before = rss_mb(proxy.proc.pid) if proxy else None
    reset_peak(pid)
    wrk = subprocess.Popen(["nice", "-n", "19", "wrk", "-t2", "-c2000", f"-d{round(seconds)}s", "--timeout", "30s", "-s", str(script),
                            base + "/speech-to-face"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cpu_group(wrk.pid, "flood", shares=2)  # the least weight there is: the senders' own machines
    start = time.monotonic()
    time.sleep(2.0)  # let wrk open its connections
    refused, served = [], []
    clip = clip_path.read_bytes()
    end = start + seconds - 0.5

    # /health, probed from processes of their own: in this one, the model-request probe below
    # would hold the GIL and add its own delays to what they measure
    ctx = multiprocessing.get_context("fork")
    targets = [base, server.base] if proxy else [base]  # with a proxy: the service itself, past it, too
    pipes = [ctx.Pipe(duplex=False) for _ in targets]
    probers = [ctx.Process(target=probe_health, args=(at, end, wrk.pid, send)) for at, (_, send) in zip(targets, pipes)]
    for prober in probers:
        prober.start()
    with httpx.Client(base_url=base, timeout=30) as probe:  # a model request of its own, every 20 ms
        while time.monotonic() < end and wrk.poll() is None:
            t0 = time.perf_counter()
            r = probe.post("/speech-to-face", content=clip, headers={"Content-Type": "audio/wav"})
            ms = 1000 * (time.perf_counter() - t0)
            if r.status_code == 503:
                assert r.headers.get("retry-after"), "a 503 without Retry-After"
                refused.append(ms)
            elif r.status_code == 200:
                served.append(ms)
            time.sleep(0.02)
    (health, health_not_ok), *rest = [recv.recv() for recv, _ in pipes]
    upstream = rest[0][0] if rest else []
    for prober in probers:
        prober.join()
    text = wrk.communicate()[0]
    peak = peak_mb(pid)
    time.sleep(5)
    after = rss_mb(pid)
    time.sleep(10)
    later = rss_mb(pid)
    proxy_later = rss_mb(proxy.proc.pid) if proxy else None

    def pct(values: list[float], q: float) -> float | None:
        return round(float(np.percentile(values, q)), 1) if values else None

    non2xx = next((int(line.split()[-1]) for line in text.splitlines() if "Non-2xx" in line), 0)
    total = next((int(line.split()[0]) for line in text.splitlines() if "requests in" in line), 0)
    out = {"connections": 2000, "seconds": seconds, "wrk_requests": total, "wrk_non_2xx": non2xx,
           "probe_503": len(refused), "probe_503_p50_ms": pct(refused, 50), "probe_503_p99_ms": pct(refused, 99),
           "probe_200": len(served), "probe_200_p50_ms": pct(served, 50),
           "health_requests": len(health), "health_not_200": len(health_not_ok), "health_p50_ms": pct(health, 50), "health_p99_ms": pct(health, 99),
           "rss_before_mb": round(before, 1), "rss_peak_mb": round(peak, 1), "rss_5s_after_mb": round(after, 1),
           "rss_after_vs_before_pct": round(100 * (after / before - 1), 1), "rss_15s_after_mb": round(later, 1),
           "rss_15s_after_vs_before_pct": round(100 * (later / before - 1), 1)}
    if proxy:
        out |= {"health_upstream_p50_ms": pct(upstream, 50), "health_upstream_p99_ms": pct(upstream, 99),
                "proxy_rss_before_mb": round(proxy_before, 1), "proxy_rss_15s_after_mb": round(proxy_later, 1)}
    print(f"  flood: {out}", flush=True)
    return out


FLOODS = (("flood", "Flood through HAProxy (docker/haproxy/haproxy.cfg, as compose deploys it)"),
          ("flood_direct", "Flood on uvicorn alone (python -m service)"))


def flood_line(label: str, f: dict) -> str:
    upstream = (f" (on the service itself, past the proxy: p50 {f['health_upstream_p50_ms']} ms, p99 "
                f"{f['health_upstream_p99_ms']} ms)") if "health_upstream_p99_ms" in f else ""
    return (f"{label}: {f['connections']} connections for {f['seconds']:g} s ({f['wrk_requests']} requests, "
            f"{f['wrk_non_2xx']} refused). The probe's refused requests: 503 in p50 {f['probe_503_p50_ms']} ms, "
            f"p99 {f['probe_503_p99_ms']} ms ({f['probe_503']} of them; {f['probe_200']} served). /health "
            f"({f['health_requests']} probes, {f['health_not_200']} not 200) p50 "
            f"{f['health_p50_ms']} ms, p99 {f['health_p99_ms']} ms{upstream}. RSS {f['rss_before_mb']} MB before, "
            f"{f['rss_peak_mb']} MB at the peak, {f['rss_5s_after_mb']} MB 5 s after "
            f"({f['rss_after_vs_before_pct']:+.1f}%), {f['rss_15s_after_mb']} MB 15 s after "
            f"({f['rss_15s_after_vs_before_pct']:+.1f}%).\n")


def photos_lines(photos: dict) -> list[str]:
    lines = ["| photo to /edit | size | answer | seconds | peak RSS over idle | next request |", "|---|---|---|---|---|---|"]
    for name, b in photos["single"].items():
        answer = f"{b['status']} {b['problem'] or ''}".strip()
        lines.append(f"| {name} | {b['bytes'] / 1e6:.2f} MB | {answer} | {b['seconds']} | {b['peak_over_idle_mb']} MB "
                     f"| {b['next_status']} |")
    return lines


def markdown(r: dict) -> str:
    lines = ["| upload | size | answer | peak RSS over idle |", "|---|---|---|---|"]
    for name, b in r["bombs"]["single"].items():
        answer = f"{b['status']} {b['problem'] or ''}".strip()
        lines.append(f"| {name} | {b['bytes'] / 1e6:.2f} MB | {answer} | {b['peak_over_idle_mb']} MB |")
    for label, t in r["bombs"]["together"].items():
        answers = ", ".join(f"{n}x {s}" for s, n in sorted(t["statuses"].items()))
        lines.append(f"| {label} | | {answers} | {t['peak_over_idle_mb']} MB |")
    if "photos" in r:
        lines += ["", *photos_lines(r["photos"])]
    if "ffmpeg" in r:
        f = r["ffmpeg"]
        lines += ["", "| hostile FFmpeg upload (audio/mp4) | size | answer | seconds | process tree's peak RSS over idle | "
                      "decoder children at most | largest child's RSS |", "|---|---|---|---|---|---|---|"]
        for name, b in f["single"].items():
            answer = f"{b['status']} {b['problem'] or ''}".strip()
            lines.append(f"| {name} | {b['bytes'] / 1e6:.3f} MB | {answer} | {b['seconds']} | {b['tree_peak_over_idle_mb']} MB "
                         f"| {b['children_at_most']} | {b['child_peak_rss_mb']} MB |")
        t, a8 = f["ten_hostile_in_flight"], f["eight_abandoned"]
        lines += ["", f"Ten hostile FFmpeg uploads in flight (answers {t['hostile_answers']}): 20 FLAC /emotion "
                      f"p50 {t['flac_p50_ms']} ms, p99 {t['flac_p99_ms']} ms ({t['flac_statuses']}); /health p50 "
                      f"{t['health_p50_ms']} ms, p99 {t['health_p99_ms']} ms; process tree +{t['tree_peak_over_idle_mb']} MB "
                      f"at the peak, {t['children_at_most']} decoder children at most. Eight abandoned mid-decode: "
                      f"{a8['children_at_most']} children at most, {a8['children_left_3s_after']} left 3 s after."]
    if "websocket" in r:
        w = r["websocket"]
        lines += ["", f"Live stream, with a key set: no key {w['no_key']}, the key in the URL {w['key_in_url']}, a foreign "
                      f"Origin {w['foreign_origin']} (HTTP answers to the handshake); rate=\u00b2 closed with "
                      f"{w['rate_unicode_digit_close']}. 16 squatters sending 2 bytes every 8 s: a real stream's first "
                      f"answer '{w['real_stream_answer']}' in {w['real_stream_first_answer_s']} s; the squatters closed with "
                      f"{w['squatter_close_codes']}. A client that sends pings and never reads: "
                      f"{w['ping_flood_never_reading']['sent_mb']} MB sent before the server stopped reading, its RSS "
                      f"+{w['ping_flood_never_reading']['rss_over_before_mb']} MB."]
    a = r["abandon"]
    lines += ["", f"Abandon: 200 clients asked for 16-face 1024 px grids (answers {a['answers']}); the next "
                  f"/speech-to-face took {1000 * a['next_request_s']:.0f} ms ({a['next_status']}).", "",
              *(flood_line(label, r[key]) for key, label in FLOODS if key in r),
              "The service and the proxy in CPU cgroups weighted as docker-compose.yml weighs their containers: "
              f"{'yes' if r.get('cpu_groups') else 'no (not root, or no cgroup v1 cpu controller)'}."]
    return "\n".join(lines) + "\n"


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "tests" / "perf" / "results"))
    p.add_argument("--cache", default=str(ROOT / "runs" / "bombs"), help="where the built bombs are kept")
    p.add_argument("--flood-s", type=float, default=10.0, help="seconds of the 2000-connection flood")
    p.add_argument("--uploads", type=int, default=100, help="valid 22 MB uploads sent at once")
    p.add_argument("--proxy-only", action="store_true", help="skip the flood on uvicorn alone")
    p.add_argument("--only", choices=["bombs", "photos", "ffmpeg", "websocket", "abandon", "flood"],
                   help="one part alone: a quick look that writes nothing, except 'photos', which writes "
                        "abuse_photos.json and .md")
    args = p.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp())
    clip_path = tmp / "clip.wav"
    from ml import audio
    x = np.resize(audio.decode(sorted((ROOT / "tests" / "fixtures" / "audio").glob("*.flac"))[4]).samples, 4 * 16_000)
    clip_path.write_bytes(encoded(x, 16_000, "WAV", "PCM_16"))
    result: dict = {}
    wanted = {args.only} if args.only else {"bombs", "photos", "ffmpeg", "websocket", "abandon", "flood"}
    server = Server()
    result["cpu_groups"] = cpu_group(server.proc.pid, "service", compose_cpu_shares("emoface"))
    try:
        if "bombs" in wanted:
            print("decode bombs:", flush=True)
            result["bombs"] = measure_bombs(server, Path(args.cache), args.uploads)
        if "photos" in wanted:
            print("bad photos to /edit:", flush=True)
            result["photos"] = measure_photos(server)
        if "ffmpeg" in wanted:
            print("hostile FFmpeg uploads:", flush=True)
            from ml import codecs
            flac = encoded(x, 16_000, "FLAC", "PCM_16")
            result["ffmpeg"] = measure_ffmpeg(server, codecs.encode(x, 16_000, "m4a"), flac)
        if "websocket" in wanted:
            print("live stream abuse:", flush=True)
            result["websocket"] = measure_websocket((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
        if "abandon" in wanted:
            print("abandoned requests:", flush=True)
            result["abandon"] = measure_abandon(server, clip_path.read_bytes())
        if "flood" in wanted and shutil.which("haproxy"):
            print("flood through the proxy:", flush=True)
            proxy = Proxy(server)
            try:
                result["flood"] = measure_flood(server, proxy.base, clip_path, args.flood_s, tmp, proxy)
            finally:
                proxy.stop()
        elif "flood" in wanted:
            print("haproxy not found (apt-get install haproxy): no flood through the proxy", flush=True)
        if "flood" in wanted and not args.proxy_only:
            print("flood on uvicorn alone:", flush=True)
            result["flood_direct"] = measure_flood(server, server.base, clip_path, args.flood_s, tmp)
    finally:
        server.stop() if server.proc.poll() is None else None
        for group in CPU_GROUPS.glob("emoface-bench-*"):
            try:  # a process still in the group (wrk, a probe) goes back to the root group first
                for pid in (group / "tasks").read_text().split():
                    with contextlib.suppress(ProcessLookupError):  # it may exit in between
                        (CPU_GROUPS / "tasks").write_text(pid)
                group.rmdir()
            except OSError as exc:  # never hide what failed the benchmark behind a cleanup error
                print(f"could not remove the cgroup {group}: {exc}", flush=True)
    if args.only == "photos":
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "abuse_photos.json").write_text(json.dumps(result["photos"], indent=1))
        (out / "abuse_photos.md").write_text("\n".join(photos_lines(result["photos"])) + "\n")
    if args.only:
        return result
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "abuse.json").write_text(json.dumps(result, indent=1))
    (out / "abuse.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
