"""RAVDESS speech: filename parser, manifest with the speaker-independent folds, clip loading."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml import audio
from ml.labels import EMOTIONS, RAVDESS_CODE_TO_EMOTION

AUDIO_SUFFIXES = (".wav", ".flac")


class RavdessNameError(ValueError):
    """A file name that is not a RAVDESS name (MM-VV-EE-II-SS-RR-AA)."""


@dataclass(frozen=True)
class RavdessClip:
    path: Path
    modality: int
    vocal_channel: int
    emotion: str
    intensity: int
    statement: int
    repetition: int
    actor: int
    fold: int | None = None

    @property
    def label(self) -> int:
        """Index of the emotion in :data:`ml.labels.EMOTIONS`."""
        return EMOTIONS.index(self.emotion)


def parse_name(path: str | Path) -> RavdessClip:
    """Parse ``03-01-05-02-01-01-12.wav`` (or ``.flac``) into its fields."""
    path = Path(path)
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise RavdessNameError(f"{path.name}: expected a .wav or .flac file")
    parts = path.stem.split("-")
    if len(parts) != 7 or not all(p.isdigit() and len(p) == 2 for p in parts):
        raise RavdessNameError(f"{path.name}: expected seven two-digit fields MM-VV-EE-II-SS-RR-AA")
    modality, channel, emo, intensity, statement, repetition, actor = parts
    if emo not in RAVDESS_CODE_TO_EMOTION:
        raise RavdessNameError(f"{path.name}: unknown emotion code {emo}")
    if not 1 <= int(actor) <= 24:
        raise RavdessNameError(f"{path.name}: actor {actor} outside 01-24")
    return RavdessClip(
        path=path, modality=int(modality), vocal_channel=int(channel),
        emotion=RAVDESS_CODE_TO_EMOTION[emo], intensity=int(intensity), statement=int(statement),
        repetition=int(repetition), actor=int(actor),
    )


def load_manifest(root: str | Path) -> list[RavdessClip]:
    """All clips listed in ``root/manifest.csv``, with their ``fold`` (1-6).

    The emotion and actor come from the file name and are checked against the manifest columns.
    """
    root = Path(root)
    clips = []
    with open(root / "manifest.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            clip = parse_name(root / row["path"])
            if clip.emotion != row["emotion"] or clip.actor != int(row["actor"]):
                raise RavdessNameError(f"{row['path']}: name and manifest disagree")
            clips.append(RavdessClip(**{**clip.__dict__, "fold": int(row["fold"])}))
    return clips


def resolve_root(data: str | Path) -> Path:
    """RAVDESS's root given either itself or the data root that holds it as ``ravdess/``."""
    data = Path(data)
    return data / "ravdess" if (data / "ravdess" / "manifest.csv").is_file() else data


def scan(root: str | Path) -> list[RavdessClip]:
    """Clips found by walking ``root`` (``Actor_XX/*.wav|flac``), without folds."""
    root = Path(root)
    return sorted(
        (parse_name(p) for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES),
        key=lambda c: c.path.name,
    )


def load_waves(clips: list[RavdessClip]) -> list[np.ndarray]:
    """Decode every clip to mono float32 at the model rate (through :func:`ml.audio.decode`)."""
    return [audio.decode(c.path).samples for c in clips]


def fingerprint(clips: list[RavdessClip]) -> str:
    """A short hash of the clip list (names and folds), stored in checkpoints as data provenance."""
    h = hashlib.sha256()
    for c in clips:
        h.update(f"{c.path.name}:{c.fold}\n".encode())
    return h.hexdigest()[:16]
