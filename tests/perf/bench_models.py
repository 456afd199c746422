"""Model speed on one CPU core (run as a script, not collected by pytest).

    python tests/perf/bench_models.py [--threads 1] [--device cpu] [--json out.json]

Prints, for the shipped weights: the CPU kernels in use; file sizes; SER decode + features +
model for a 4 s clip (16 kHz FLAC, and 48 kHz stereo WAV, which adds resampling); generator latency
for one face and for a batch of 64, and faces per second at batch 1024 where a GPU is present; the
upsampler's 48 -> 96 px for one face, and a 16-face 96 px grid as ``/generate?count=16&size=96``
makes it (draw, enlarge, PNG).
``ONEDNN_MAX_CPU_ISA=ALL ATEN_CPU_CAPABILITY=avx512`` lifts ml's AVX2 cap, to see what it costs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere, installed or not


def timeit(fn, repeat: int, warmup: int = 3) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"median_ms": round(statistics.median(times), 3), "p90_ms": round(times[int(0.9 * (len(times) - 1))], 3),
            "min_ms": round(times[0], 3)}


def four_second_clip(sr: int, channels: int, fmt: str) -> bytes:
    from ml import audio

    clip = sorted((ROOT / "tests" / "fixtures" / "audio").glob("*.flac"))[4]  # angry, 4.2 s
    x = audio.decode(clip).samples
    x = np.resize(x, 4 * audio.SAMPLE_RATE)
    if sr != audio.SAMPLE_RATE:
        x = audio.resample(x, audio.SAMPLE_RATE, sr)
    if channels > 1:
        x = np.repeat(x[:, None], channels, axis=1)
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt)
    return buf.getvalue()


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--ser", default=str(ROOT / "weights" / "ser.pt"))
    p.add_argument("--generator", default=str(ROOT / "weights" / "generator.pt"))
    p.add_argument("--upsampler", default=str(ROOT / "weights" / "upsampler.pt"))
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from ml import audio
    from ml.enlarge import Enlarger
    from ml.generate import FaceGenerator
    from ml.recognize import EmotionRecognizer

    device = torch.device(args.device)
    rec, ser_loaded = EmotionRecognizer.from_checkpoint(args.ser)  # the SER runs on the CPU whatever the device
    gen, gen_loaded = FaceGenerator.from_checkpoint(args.generator, device)
    from bench_service import cpu_model  # a sibling script

    out: dict = {"device": str(device), "threads": args.threads, "torch": torch.__version__, "cpu": cpu_model(),
                 # the CPU kernels in use: capped at AVX2 by ml/__init__.py unless the environment lifts it
                 "cpu_kernels": {"aten": torch.backends.cpu.get_cpu_capability(),
                                 "onednn_max_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL")},
                 "ser_file_mb": round(Path(args.ser).stat().st_size / 1e6, 3),
                 "generator_file_mb": round(Path(args.generator).stat().st_size / 1e6, 3),
                 "ser_parameters": sum(p.numel() for p in ser_loaded.model.parameters()),
                 "generator_parameters": sum(p.numel() for p in gen.model.parameters())}
    for name, data in (("ser_4s_flac_16k", four_second_clip(16_000, 1, "FLAC")),
                       ("ser_4s_wav_48k_stereo", four_second_clip(48_000, 2, "WAV"))):
        out[name] = timeit(lambda data=data: rec.predict([audio.decode(data).samples]), repeat=50)
    clip = audio.decode(four_second_clip(16_000, 1, "FLAC")).samples
    out["ser_model_only_4s"] = timeit(lambda: rec.predict([clip]), repeat=50)
    if device.type == "cuda":
        out["ser_batch64_4s"] = timeit(lambda: rec.predict([clip] * 64), repeat=20)
    out["generator_1_face"] = timeit(lambda: gen.render([3], [7]), repeat=100)
    b64 = timeit(lambda: gen.render([i % 7 for i in range(64)], list(range(64))), repeat=20)
    out["generator_batch64"] = {**b64, "faces_per_s": round(64 / (b64["median_ms"] / 1000), 1)}
    enlarger, _ = Enlarger.from_checkpoint(args.upsampler)
    face = gen.render([3], [7])
    out["upsampler_1_face_96px"] = timeit(lambda: enlarger.enlarge(face, 96), repeat=100)
    from service.inference import encode_png  # what the service runs for a grid
    out["grid_16_faces_96px"] = timeit(lambda: encode_png(enlarger, gen.render([4] * 16, list(range(16))), 96), repeat=30)
    if device.type == "cuda":
        b1024 = timeit(lambda: gen.render([i % 7 for i in range(1024)], list(range(1024))), repeat=10)
        out["generator_batch1024"] = {**b1024, "faces_per_s": round(1024 / (b1024["median_ms"] / 1000), 1)}
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
