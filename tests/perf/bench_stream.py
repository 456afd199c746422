"""Live-stream latency: N WebSocket streams at once, each sending a voice in real time.

    python tests/perf/bench_stream.py [--seconds 10] [--streams 8 16 32 48 64] [--out tests/perf/results]

Starts ``python -m service`` (shipped weights) in its own process. Each stream sends a 16 kHz
clip as 0.1 s messages paced at real time; a hop is due with the message that completes each
second of audio, and its latency is from sending that message to receiving the answer for it
(answers carry ``t``, the seconds of audio they cover). Prints p50/p90 latency, answers and
dropped hops per level, and the most streams held with p50 under 500 ms; writes ``stream.json``.
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
from bench_service import ROOT, Server  # noqa: E402


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
    p.add_argument("--out", default=str(ROOT / "tests" / "perf" / "results"))
    args = p.parse_args()
    from ml import audio

    clip = sorted((ROOT / "tests" / "fixtures" / "audio").glob("*.flac"))[4]
    pcm = (np.clip(audio.decode(clip).samples, -1, 1) * 32767).astype("<i2").tobytes()
    server = Server(EMOFACE_MAX_STREAMS=str(max(args.streams)))
    try:
        url = server.base.replace("http://", "ws://")
        levels = []
        for n in args.streams:
            levels.append(asyncio.run(level(url, pcm, n, args.seconds)))
            print(f"  {levels[-1]}", flush=True)
    finally:
        server.stop()
    held = [lv["streams"] for lv in levels if lv["p50_ms"] is not None and lv["p50_ms"] < 500]
    result = {"seconds_per_stream": args.seconds, "levels": levels, "most_streams_p50_under_500ms": max(held, default=0)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stream.json").write_text(json.dumps(result, indent=1))
    print(f"most streams with p50 under 500 ms: {result['most_streams_p50_under_500ms']} (of {args.streams})")
    return result


if __name__ == "__main__":
    main()
