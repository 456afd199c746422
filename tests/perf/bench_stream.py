"""Live-stream latency: N WebSocket streams at once, each sending a voice in real time.

    python tests/perf/bench_stream.py [--seconds 10] [--streams 8 16 32 48 64] [--no-abuse] [--out tests/perf/results]

Starts ``python -m service`` (shipped weights) in its own process. Each stream sends a 16 kHz
clip as 0.1 s messages paced at real time; a hop is due with the message that completes each
second of audio, and its latency is from sending that message to receiving the answer for it
(answers carry ``t``, the seconds of audio they cover). Prints p50/p90 latency, answers and
dropped hops per level, and the most streams held with p50 under 500 ms. Then the abuse of the
route, each refused by its limit, with the server's resident memory before and after: 200 idle
connections at once, 20 oversized messages, a stream that never ends (the server's limit is set
to 30 s here) and a client that sends fast and never reads. Writes ``stream.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service import ROOT, Server, rss_mb  # noqa: E402
STREAM_MAX_S, IDLE_S = 30, 3


async def one_stream(url: str, pcm: bytes, seconds: float, seed: int) -> tuple[list[float], int]:
    import websockets

    chunk = 3200  # 0.1 s of 16-bit samples at 16 kHz
    sent_at: dict[float, float] = {}
    latencies: list[float] = []
    dropped = 0
    async with websockets.connect(f"{url}/ws/speech-to-face?rate=16000&seed={seed}", max_size=2**20) as ws:
        async def receive() -> None:
            nonlocal dropped
            async for message in ws:
                answer = json.loads(message)
                dropped += answer.get("dropped", 0)
                t = round(answer["t"], 1)
                if t in sent_at:
                    latencies.append(time.perf_counter() - sent_at[t])

        reader = asyncio.create_task(receive())
        start = time.perf_counter()
        n = int(seconds * 10)
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i * 0.1 - time.perf_counter()))
            piece = pcm[(i * chunk) % len(pcm):][:chunk]
            piece = piece if len(piece) == chunk else pcm[:chunk]
            if (i + 1) % 10 == 0:
                sent_at[round((i + 1) / 10, 1)] = time.perf_counter()
            await ws.send(piece)
        await asyncio.sleep(1.5)  # the last answers
        reader.cancel()
    return latencies, dropped


async def _closed_code(ws) -> int:
    import websockets

    try:
        while True:
            await ws.recv()
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else 1006


async def abuse(url: str, pcm: bytes, pid: int) -> dict:
    """Each kind of abuse at once; how each ended, and memory before and after."""
    import collections

    import websockets

    await asyncio.sleep(3)  # the latency levels' streams are all closed
    before = rss_mb(pid)
    route = f"{url}/ws/speech-to-face"

    async def idle() -> int:
        async with websockets.connect(route, open_timeout=30) as ws:
            return await _closed_code(ws)

    async def oversized() -> int:
        async with websockets.connect(route, open_timeout=30) as ws:
            try:
                await ws.send(bytes(200_000))
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else 1006
            return await _closed_code(ws)

    async def endless() -> tuple[int, float]:
        t0 = time.perf_counter()
        async with websockets.connect(route, open_timeout=30, max_size=2**22) as ws:
            reader = asyncio.create_task(_closed_code(ws))
            try:
                for i in range(10 * (STREAM_MAX_S + 15)):
                    await ws.send(pcm[(i * 3200) % (len(pcm) - 3200):][:3200])
                    await asyncio.sleep(0.1)
            except websockets.ConnectionClosed:
                pass
            return await reader, time.perf_counter() - t0

    async def never_reads() -> tuple[int, float]:
        import socket
        from urllib.parse import urlsplit

        host = urlsplit(url)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window fills at once
        sock.connect((host.hostname, host.port))
        sock.setblocking(False)
        t0 = time.perf_counter()
        async with websockets.connect(route, sock=sock, open_timeout=30, max_queue=1) as ws:
            try:
                i = 0
                while time.perf_counter() - t0 < STREAM_MAX_S + 15:  # twice real time, never reading an answer
                    await ws.send(pcm[(i * 3200) % (len(pcm) - 3200):][:3200])
                    await asyncio.sleep(0.05)
                    i += 1
            except websockets.ConnectionClosed as closed:
                return (closed.rcvd.code if closed.rcvd else 1006), time.perf_counter() - t0
            return 0, time.perf_counter() - t0

    async def later(delay: float, make):
        await asyncio.sleep(delay)
        return await asyncio.gather(*make())

    t0 = time.perf_counter()  # the long-lived two take their slots first, then the oversized, then the idle crowd
    results = await asyncio.gather(later(1.0, lambda: [idle() for _ in range(200)]),
                                   later(0.5, lambda: [oversized() for _ in range(20)]), endless(), never_reads())
    peak_s = time.perf_counter() - t0
    await asyncio.sleep(5)
    after = rss_mb(pid)
    return {"idle_200": dict(collections.Counter(results[0])), "oversized_20": dict(collections.Counter(results[1])),
            "endless": {"code": results[2][0], "seconds": round(results[2][1], 1)},
            "never_reads": {"code": results[3][0], "seconds": round(results[3][1], 1)},
            "abuse_seconds": round(peak_s, 1), "rss_before_mb": round(before, 1), "rss_5s_after_mb": round(after, 1),
            "rss_after_vs_before_pct": round(100 * (after / before - 1), 1)}


async def level(url: str, pcm: bytes, streams: int, seconds: float) -> dict:
    results = await asyncio.gather(*(one_stream(url, pcm, seconds, seed) for seed in range(streams)))
    lat = [x for r, _ in results for x in r]
    hops = streams * int(seconds)
    return {"streams": streams, "hops": hops, "answers": len(lat), "dropped": sum(d for _, d in results),
            "p50_ms": round(1000 * float(np.percentile(lat, 50)), 1) if lat else None,
            "p90_ms": round(1000 * float(np.percentile(lat, 90)), 1) if lat else None}


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--streams", type=int, nargs="+", default=[8, 16, 32, 48, 64])
    p.add_argument("--no-abuse", action="store_true", help="latency only")
    p.add_argument("--out", default=str(ROOT / "tests" / "perf" / "results"))
    args = p.parse_args()
    from ml import audio

    clip = sorted((ROOT / "tests" / "fixtures" / "audio").glob("*.flac"))[4]
    pcm = (np.clip(audio.decode(clip).samples, -1, 1) * 32767).astype("<i2").tobytes()
    slots = max(32, *args.streams)  # room for every level, and for the abuse's 22 long-lived streams
    # every client here is 127.0.0.1: the per-client cap is the whole table
    server = Server(EMOFACE_MAX_STREAMS=str(slots), EMOFACE_STREAM_MAX_PER_CLIENT=str(slots),
                    EMOFACE_STREAM_MAX_S=str(STREAM_MAX_S), EMOFACE_STREAM_IDLE_S=str(IDLE_S))
    abused = None
    try:
        url = server.base.replace("http://", "ws://")
        levels = []
        for n in args.streams:
            levels.append(asyncio.run(level(url, pcm, n, args.seconds)))
            print(f"  {levels[-1]}", flush=True)
        if not args.no_abuse:
            abused = asyncio.run(abuse(url, pcm, server.proc.pid))
            print(f"  abuse: {abused}", flush=True)
    finally:
        server.stop()
    held = [lv["streams"] for lv in levels if lv["p50_ms"] is not None and lv["p50_ms"] < 500]
    result = {"seconds_per_stream": args.seconds, "levels": levels, "most_streams_p50_under_500ms": max(held, default=0),
              "server": {"max_streams": slots, "stream_max_s": STREAM_MAX_S, "stream_idle_s": IDLE_S},
              "abuse": abused}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stream.json").write_text(json.dumps(result, indent=1))
    print(f"most streams with p50 under 500 ms: {result['most_streams_p50_under_500ms']} (of {args.streams})")
    return result


if __name__ == "__main__":
    main()
