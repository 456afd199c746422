"""FER-2013 faces from the original csv (``fer2013.csv`` or ``fer2013.csv.gz``)."""

from __future__ import annotations

import csv
import gzip
import hashlib
from pathlib import Path

import numpy as np

from ml.labels import FER_CLASSES

SPLITS = ("Training", "PublicTest", "PrivateTest")
IMAGE_SIZE = 48


class FerFormatError(ValueError):
    """The csv is not in the FER-2013 format."""


def load(path: str | Path, split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read faces and labels.

    Args:
        path: ``fer2013.csv`` or ``fer2013.csv.gz``.
        split: one of :data:`SPLITS` or None for all rows.
    Returns:
        images (N, 48, 48) uint8 and labels (N,) int64 FER indices (see :data:`FER_CLASSES`).
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    images, labels = [], []
    with opener(path, "rt", newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"emotion", "pixels", "Usage"} <= set(reader.fieldnames):
            raise FerFormatError(f"{path}: expected the header emotion,pixels,Usage")
        for line, row in enumerate(reader, start=2):
            if split is not None and row["Usage"] != split:
                continue
            label = int(row["emotion"])
            if not 0 <= label < len(FER_CLASSES):
                raise FerFormatError(f"{path}:{line}: emotion {label} outside 0-6")
            pixels = np.array(row["pixels"].split(), dtype=np.uint8)
            if pixels.size != IMAGE_SIZE * IMAGE_SIZE:
                raise FerFormatError(f"{path}:{line}: {pixels.size} pixels, expected {IMAGE_SIZE ** 2}")
            images.append(pixels.reshape(IMAGE_SIZE, IMAGE_SIZE))
            labels.append(label)
    return np.stack(images) if images else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8), np.array(labels, np.int64)


def fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """A short content hash of a split, stored in checkpoints as data provenance."""
    h = hashlib.sha256(images.tobytes())
    h.update(labels.tobytes())
    return h.hexdigest()[:16]


def balanced_sample_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample weights that make every class equally likely (disgust is 17x rarer than happy)."""
    counts = np.bincount(labels, minlength=len(FER_CLASSES)).astype(np.float64)
    return (1.0 / np.maximum(counts, 1))[labels]
