"""Emotional speech from several corpora as one list of clips: RAVDESS beside the corpora of
``speech/manifest.csv`` (emodb, ased, nemo, turev), with the speaker kept for
speaker-independent splits and a sampling weight that balances corpora and classes.

Corpora differ tenfold in size and each holds only some of the 8 classes, so a corpus teaches
only the classes it has, and every corpus weighs the same in training whatever its size
(:func:`balanced_weights`). Evaluation on a corpus scores only its classes (:func:`ml.metrics`).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml import audio
from ml.data import ravdess
from ml.labels import EMOTIONS

CORPORA = ("ravdess", "emodb", "ased", "nemo", "turev")
#: How training draws clips (:func:`balanced_weights`).
WEIGHTINGS = ("corpus", "class")
LANGUAGES = {"ravdess": "English", "emodb": "German", "ased": "Amharic", "nemo": "Polish", "turev": "Turkish"}


class ManifestError(ValueError):
    """A manifest row that does not describe a usable clip."""


@dataclass(frozen=True)
class SpeechClip:
    path: Path
    corpus: str
    language: str
    speaker: str  # unique across corpora: prefixed with the corpus
    emotion: str
    fold: int = 0  # RAVDESS's speaker-independent fold (1-6); 0 for the other corpora

    @property
    def label(self) -> int:
        """Index of the emotion in :data:`ml.labels.EMOTIONS`."""
        return EMOTIONS.index(self.emotion)


def load_speech_manifest(root: str | Path) -> list[SpeechClip]:
    """The clips of ``root/manifest.csv`` (the speech corpora beside RAVDESS).

    Clips shorter than :data:`ml.audio.MIN_DURATION_S` are left out: the service refuses them,
    so they can be neither learned from nor scored (two single words of turev).
    """
    root = Path(root)
    clips = []
    with open(root / "manifest.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if float(row["duration_s"]) < audio.MIN_DURATION_S:
                continue
            if row["emotion"] not in EMOTIONS:
                raise ManifestError(f"{row['path']}: emotion {row['emotion']!r} is not in the vocabulary")
            if not row["speaker"].startswith(row["corpus"]):
                raise ManifestError(f"{row['path']}: speaker {row['speaker']!r} is not prefixed with its corpus")
            clips.append(SpeechClip(root / row["path"], row["corpus"], row["language"], row["speaker"], row["emotion"]))
    return clips


def from_ravdess(clips: list[ravdess.RavdessClip]) -> list[SpeechClip]:
    """RAVDESS clips in the common form, speakers named ``ravdess-NN``, folds kept."""
    return [SpeechClip(c.path, "ravdess", "English", f"ravdess-{c.actor:02d}", c.emotion, c.fold or 0) for c in clips]


def load_all(data: str | Path) -> list[SpeechClip]:
    """RAVDESS (``data/ravdess``) and the speech corpora (``data/speech``), in that order."""
    data = Path(data)
    return from_ravdess(ravdess.load_manifest(data / "ravdess")) + load_speech_manifest(data / "speech")


def corpus_classes(clips: list[SpeechClip]) -> dict[str, tuple[int, ...]]:
    """corpus -> the sorted label indices it holds."""
    out: dict[str, set[int]] = {}
    for c in clips:
        out.setdefault(c.corpus, set()).add(c.label)
    return {k: tuple(sorted(v)) for k, v in out.items()}


def balanced_weights(clips: list[SpeechClip], *, by: str = "corpus") -> np.ndarray:
    """(N,) sampling weights, mean 1.

    ``by="corpus"``: every corpus weighs the same in total, and within a corpus every class it
    holds weighs the same, whatever their clip counts. ``by="class"``: those weights, then
    rescaled so that every class weighs the same in total across corpora (within a class, its
    corpora keep their proportions): a class that only one or two corpora hold, such as disgust
    or surprised, is then drawn as often as one that all hold.
    """
    if by not in WEIGHTINGS:
        raise ValueError(f"by must be one of {WEIGHTINGS}, got {by!r}")
    counts: dict[tuple[str, str], int] = {}
    for c in clips:
        counts[(c.corpus, c.emotion)] = counts.get((c.corpus, c.emotion), 0) + 1
    corpora = {corpus for corpus, _ in counts}
    classes = {corpus: sum(1 for k in counts if k[0] == corpus) for corpus in corpora}
    w = np.array([1.0 / (counts[(c.corpus, c.emotion)] * classes[c.corpus] * len(corpora)) for c in clips])
    if by == "class":
        labels = np.array([c.label for c in clips])
        w = w / np.bincount(labels, weights=w)[labels]
    return w * (len(clips) / w.sum())


def leave_one_corpus_out(clips: list[SpeechClip], held_out: str) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) index arrays: ``held_out``'s clips against every other corpus's."""
    corpus = np.array([c.corpus for c in clips])
    if held_out not in set(corpus):
        raise ValueError(f"no clip of corpus {held_out!r}")
    return np.flatnonzero(corpus != held_out), np.flatnonzero(corpus == held_out)


def first_of_each(clips: list[SpeechClip]) -> list[SpeechClip]:
    """One clip of every (corpus, emotion, fold): a few dozen clips that still cover every
    corpus, class and RAVDESS fold, for smoke tests."""
    seen: set[tuple[str, str, int]] = set()
    out = []
    for c in clips:
        if (c.corpus, c.emotion, c.fold) not in seen:
            seen.add((c.corpus, c.emotion, c.fold))
            out.append(c)
    return out


def fingerprint(clips: list[SpeechClip]) -> str:
    """A short hash of the clip list (corpus, speaker, file, emotion, fold): data provenance."""
    h = hashlib.sha256()
    for c in clips:
        h.update(f"{c.corpus}:{c.speaker}:{c.path.name}:{c.emotion}:{c.fold}\n".encode())
    return h.hexdigest()[:16]
