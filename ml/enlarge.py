"""How a drawn 48 px face becomes a larger one, for ``/generate?size=`` and every sheet of faces.

The rule: a 48 px face is returned as drawn; any larger size is the learned 2x enlargement
(``ml/models/upsampler.py``, ``weights/upsampler.pt``) to 96 px, then Lanczos from 96 px to the
size asked (down for 49-95 px, up above 96). The network runs once, at 48 -> 96: its cost is
fixed (about 2 ms a face on one core, ``tests/perf/bench_models.py``) whatever the size, and a
second pass (96 -> 192, four times the pixels) gains only 0.16 dB at 192 px (``weights/upsampler.md``).
An ``Enlarger(None)`` is Lanczos from 48 px, the enlargement before the network.

Bit-exactness: the network runs on one intra-op thread (as ``ml.generate`` draws), so a face's
pixels are the same alone and in any grid on one machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ml import checkpoint
from ml.generate import one_thread
from ml.models.gan import IMAGE_SIZE, from_uint8, to_uint8
from ml.models.upsampler import FaceUpsampler

def lanczos(faces: np.ndarray, size: int) -> np.ndarray:
    """uint8 faces (N, H, W) -> (N, size, size), Lanczos (PIL)."""
    if faces.shape[-1] == size:
        return faces
    return np.stack([np.asarray(Image.fromarray(f, mode="L").resize((size, size), Image.Resampling.LANCZOS))
                     for f in faces])


class Enlarger:
    """A loaded upsampler (or none: Lanczos only). Thread-safe: the network is only read."""

    def __init__(self, model: FaceUpsampler | None) -> None:
        self.model = model.eval() if model is not None else None

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> tuple[Enlarger, checkpoint.Loaded]:
        loaded = checkpoint.load(path, arch="face-upsampler")
        if loaded.model.config.scale != 2:
            raise checkpoint.CheckpointError(f"{path}: an upsampler of scale {loaded.model.config.scale}, expected 2")
        return cls(loaded.model), loaded

    @torch.inference_mode()
    def learned(self, faces: np.ndarray) -> np.ndarray:
        """uint8 faces (N, 48, 48) -> (N, 96, 96) by the network, on one intra-op thread."""
        with one_thread():
            return to_uint8(self.model(from_uint8(faces))).numpy()

    def enlarge(self, faces: np.ndarray, size: int) -> np.ndarray:
        """uint8 faces (N, 48, 48) -> (N, size, size) by the rule above; ``size`` at least 48."""
        if size == IMAGE_SIZE:
            return faces
        return np.stack(self.enlarge_each(faces, [size] * len(faces)))

    def enlarge_each(self, faces: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
        """uint8 faces (N, 48, 48), each to its own size by the rule above -> (size, size) arrays.
        The network runs once for all the faces above 48 px (a face's pixels do not depend on
        what else is in the pass)."""
        if len(sizes) != len(faces):
            raise ValueError(f"{len(faces)} faces and {len(sizes)} sizes")
        if any(s < IMAGE_SIZE for s in sizes):
            raise ValueError(f"size {min(sizes)} is below the drawn {IMAGE_SIZE} px")
        out = list(faces)
        big = [i for i, s in enumerate(sizes) if s > IMAGE_SIZE]
        if big and self.model is not None:
            for i, face in zip(big, self.learned(faces[big]), strict=True):
                out[i] = face
        return [lanczos(face[None], size)[0] for face, size in zip(out, sizes, strict=True)]
