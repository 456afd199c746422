"""Probe (docs/experiments/ser.md, 2026-12-03): the shipped SER's answer for each fixture clip,
as it is, through AMR-WB, and each band-limited (6.4 kHz, 4 kHz) with an FFT brick wall.

    python docs/experiments/scripts/amr_band_probe.py   # from the repository root
"""
from pathlib import Path

import numpy as np
import torch

from ml import audio, codecs
from ml.augment import band_limit
from ml.labels import EMOTIONS
from ml.recognize import EmotionRecognizer
rec = EmotionRecognizer.from_checkpoint(Path("weights/ser.pt"))[0]
clips = sorted(Path("tests/fixtures/audio").glob("*.flac"))
waves = [audio.decode(c).samples for c in clips]


def lowpass(x: np.ndarray, hz: float) -> np.ndarray:
    return band_limit(torch.from_numpy(x), 0.0, hz).numpy()


amr = [codecs.round_trip(w, "awb") for w in waves]
for name, ws in [("wav", waves), ("awb", amr), ("wav lp6.4k", [lowpass(w, 6400) for w in waves]),
                 ("awb lp6.4k", [lowpass(w, 6400) for w in amr]), ("wav lp4k", [lowpass(w, 4000) for w in waves]),
                 ("awb lp4k", [lowpass(w, 4000) for w in amr])]:
    p = rec.predict(ws)
    print(f"{name:12s}", [f"{EMOTIONS[i][:5]}:{p[j, i]:.2f}" for j, i in enumerate(p.argmax(1))])
