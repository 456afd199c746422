"""What the AVX2 kernel cap (``ml/__init__.py``, `4436b79`) did to the shipped SER head
(docs/experiments/ser.md, 2026-12-07).

``weights/ser.pt`` was trained at `a617918` on features computed before the cap, when oneDNN ran
Whisper's convolutions with its AVX-512 kernels on an AVX-512 machine. Since `4436b79` every
process runs the AVX2 kernels, which round differently, so the service computes slightly different
features from those the head was trained and scored on. This script builds the clean feature cache
with the cap lifted, in a cache folder of its own (the cache key does not name the kernels), and
compares the shipped head's answers on both:

    # the cap lifted, as the head's training features were computed (about 7 minutes per cache on one core)
    ONEDNN_MAX_CPU_ISA=ALL ATEN_CPU_CAPABILITY=avx512 PYTHONPATH=. python docs/experiments/scripts/ser_kernel_cap.py \
        cache ../shared/data runs/ser_cache_uncapped clean
    ONEDNN_MAX_CPU_ISA=ALL ATEN_CPU_CAPABILITY=avx512 PYTHONPATH=. python docs/experiments/scripts/ser_kernel_cap.py \
        cache ../shared/data runs/ser_cache_uncapped train_view
    # the shipped head on the capped (served) and lifted (trained) features of every clip
    PYTHONPATH=. python docs/experiments/scripts/ser_kernel_cap.py compare ../shared/data runs/ser_cache runs/ser_cache_uncapped
    # the nested criterion on the lifted caches (the recipe's figure at a617918 was 42.77)
    ONEDNN_MAX_CPU_ISA=ALL ATEN_CPU_CAPABILITY=avx512 python -m ml.evaluate_ser --data ../shared/data \
        --out runs/ser_nested_uncapped --cache runs/ser_cache_uncapped --weighting class --nested --threads 1
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np
import torch

from ml import checkpoint
from ml.data import speech
from ml.embed import SpeechEmbedder, cached_embeddings
from ml.labels import EMOTIONS

SHIPPED = Path(__file__).resolve().parents[3] / "weights" / "ser.pt"


def cache(data: str, folder: str, kind: str) -> None:
    assert os.environ.get("ONEDNN_MAX_CPU_ISA") == "ALL", "run with ONEDNN_MAX_CPU_ISA=ALL (the cap lifted)"
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(1)
    print("ATen kernels:", torch.backends.cpu.get_cpu_capability(), flush=True)
    clips = speech.load_all(data)
    cached_embeddings([c.path for c in clips], SpeechEmbedder("whisper-tiny-en"), Path(folder), perturbation=kind)


def probabilities(head: torch.nn.Module, features: np.ndarray) -> np.ndarray:
    """The shipped head's calibrated probabilities, clip by clip as ``ml.recognize`` runs it."""
    with torch.inference_mode():
        x = torch.from_numpy(features)  # float16, as cached and as served
        return torch.cat([torch.softmax(head(x[i:i + 1]), -1) for i in range(len(x))]).numpy()


def compare(data: str, capped: str, lifted: str) -> None:
    torch.set_num_threads(1)
    clips = speech.load_all(data)
    head = checkpoint.load(SHIPPED, arch=checkpoint.SER_MODELS, labels=EMOTIONS, device="cpu").model.eval()
    embedder = SpeechEmbedder("whisper-tiny-en")
    paths = [c.path for c in clips]
    a, b = (cached_embeddings(paths, embedder, Path(f)) for f in (capped, lifted))
    print(f"pooled features: max |capped - lifted| {np.abs(a.astype(np.float32) - b.astype(np.float32)).max():.4f}, "
          f"clips bit-identical {100 * np.mean([np.array_equal(x, y) for x, y in zip(a, b)]):.1f}%")
    pa, pb = probabilities(head, a), probabilities(head, b)
    gap = np.abs(pa - pb).max(1)
    same = pa.argmax(1) == pb.argmax(1)
    print(f"shipped head over {len(clips)} clips: {100 * same.mean():.2f}% equal answers; "
          f"probability gap max {gap.max():.3f}, p99 {np.quantile(gap, 0.99):.3f}, median {np.median(gap):.4f}")
    corpus = np.array([c.corpus for c in clips])
    print("equal answers by corpus:", ", ".join(f"{c} {100 * same[corpus == c].mean():.1f}%" for c in speech.CORPORA))


if __name__ == "__main__":
    if sys.argv[1] == "cache":
        cache(*sys.argv[2:5])
    else:
        compare(*sys.argv[2:5])
