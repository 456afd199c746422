"""Face generation shared by evaluation and the service: (class, seed) pairs in, uint8 faces out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ml import checkpoint
from ml.labels import FER_CLASSES
from ml.models.gan import latent_for_seed, to_uint8


class FaceGenerator:
    """A loaded generator on a device. The seed fixes the identity, the class the expression."""

    def __init__(self, model: torch.nn.Module, device: torch.device | str = "cpu") -> None:
        assert model.config.n_classes == len(FER_CLASSES), "the generator must draw the 7 FER-2013 classes"
        self.model = model.to(device).eval()
        self.device = torch.device(device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: torch.device | str = "cpu") -> tuple["FaceGenerator", checkpoint.Loaded]:
        loaded = checkpoint.load(path, arch=checkpoint.GENERATORS, labels=FER_CLASSES, device=device)
        return cls(loaded.model, device), loaded

    @torch.inference_mode()
    def render(self, classes: list[int], seeds: list[int]) -> np.ndarray:
        """Faces (B, 48, 48) uint8 for FER class indices and seeds (0 <= seed < 2**32)."""
        assert len(classes) == len(seeds), "one seed per face"
        z = torch.stack([latent_for_seed(s, self.model.config.latent_dim) for s in seeds]).to(self.device)
        y = torch.tensor(classes, dtype=torch.long, device=self.device)
        return to_uint8(self.model(z, y)).cpu().numpy()
