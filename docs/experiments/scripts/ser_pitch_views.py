"""A pitch-shifted training view beside the recipe's random one (docs/experiments/ser.md, 2026-12-07).

Off its corpora the head meets voices it never heard, and a live stream's speaker normalisation
shows how much of its error is where a voice sits. The recipe's training view already changes
speed (0.9-1.1, which moves pitch and formants together with the tempo); this probe adds a view
that moves the voice alone: every clip pitch-shifted by 1 to 3 semitones up or down (uniform,
seeded by the clip; ``librosa.effects.pitch_shift``, a phase vocoder and soxr resampling, so the
tempo stays), heard by the frozen encoder once and cached as a third copy of every clip.

Candidate ``pitch``: the recipe's head trained on each clip clean, as its training view and
pitch-shifted (the class weights repeated for each copy), otherwise the shipped recipe. Compared
with ``recipe`` from ``ser_speaker_nap.py`` (same harness, same folder). Rule, written before any
figure: it replaces the recipe only if its nested UA is at least 0.5 points higher and its nested
ECE (``distance`` calibration) is not worse by more than 0.005. LOCO is read after the rule decides.

    PYTHONPATH=.:docs/experiments/scripts python docs/experiments/scripts/ser_pitch_views.py cache ../shared/data
    PYTHONPATH=.:docs/experiments/scripts python docs/experiments/scripts/ser_pitch_views.py heads ../shared/data runs/ser_spk 0 2
    PYTHONPATH=.:docs/experiments/scripts python docs/experiments/scripts/ser_pitch_views.py report ../shared/data runs/ser_spk [--loco]
"""

from __future__ import annotations

import sys
from pathlib import Path

import librosa
import numpy as np

from ml import audio, embed
from ml.data import speech
from ml.embed import SpeechEmbedder, cached_embeddings
from ml.models.ser import SERHeadConfig
from ml.ser_head import fit_head, head_raw
from ser_corpus_bag import run_heads
from ser_layer_mix import jobs, load_heads, print_candidates
from ser_speaker_nap import shares

NAME = "pitch_1_3"  # the perturbation's name, part of the cache's key
_perturb = embed.perturb


def perturb(wave: np.ndarray, kind: str, seed: int) -> np.ndarray:
    if kind != NAME:
        return _perturb(wave, kind, seed)
    rng = np.random.default_rng(seed)
    steps = rng.uniform(1.0, 3.0) * rng.choice([-1.0, 1.0])
    return librosa.effects.pitch_shift(np.asarray(wave, np.float32), sr=audio.SAMPLE_RATE, n_steps=steps).astype(np.float32)


embed.perturb = perturb  # cached_embeddings looks it up in ml.embed at call time


def pitch_views(clips) -> np.ndarray:
    return cached_embeddings([c.path for c in clips], SpeechEmbedder("whisper-tiny-en"), Path("runs/ser_cache"),
                             perturbation=NAME)


def pitch_head(clips, X, V, train, test) -> tuple[np.ndarray, np.ndarray]:
    P = pitch_views(clips)
    y = np.array([c.label for c in clips])
    w = speech.balanced_weights([clips[i] for i in train], by="class")
    config = SERHeadConfig(encoder="whisper-tiny-en", layers=X.shape[1], width=X.shape[3])
    head = fit_head(np.concatenate([X[train], V[train], P[train]]), np.concatenate([y[train]] * 3),
                    np.concatenate([w, w, w]), config)
    return head_raw(head, X[test])


def report(data: str, out: Path, loco: bool) -> None:
    candidates = {cand: load_heads(out / cand) for cand in ("recipe", "pitch")}
    print_candidates(candidates, speech.load_all(data), loco)
    if loco:
        for cand, (outer, _) in candidates.items():
            print(f"{cand} LOCO answers (raw): {shares(outer)}")


if __name__ == "__main__":
    phase, data = sys.argv[1], sys.argv[2]
    if phase == "cache":
        pitch_views(speech.load_all(data))
    elif phase == "heads":
        run_heads(data, Path(sys.argv[3]) / "pitch", int(sys.argv[4]), int(sys.argv[5]), jobs(), pitch_head)
    else:
        report(data, Path(sys.argv[3]), "--loco" in sys.argv)
