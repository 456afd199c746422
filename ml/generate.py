"""Face generation shared by training, evaluation and the service: (class, seed) pairs in, uint8
faces out.

    # the sample grid shown in the README and the card (rows = emotions, columns = seeds 0-9)
    python -m ml.generate --generator weights/generator.pt --out weights/generator_samples.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ml import checkpoint, plots
from ml.labels import FER_CLASSES
from ml.models.gan import Generator, blend_for_seed, latent_for_seed, to_uint8

GRID_SEEDS = tuple(range(10))
CALIBRATION = "calibration"  # the metrics key of a calibrated generator's record (``ml.evaluate_gan calibrate``)


def is_calibrated(loaded: checkpoint.Loaded) -> bool:
    """Whether a generator file draws as calibrated, not as trained (files calibrated before
    commit c20d5e2 hold their record under "latent_scale"): calibrating it again, or training on
    from it, would compound the settings."""
    return CALIBRATION in loaded.meta["metrics"] or "latent_scale" in loaded.meta["metrics"]


class FaceGenerator:
    """A loaded generator on a device. The seed fixes the identity, the class the expression."""

    def __init__(self, model: torch.nn.Module, device: torch.device | str = "cpu") -> None:
        assert model.config.n_classes == len(FER_CLASSES), "the generator must draw the 7 FER-2013 classes"
        self.model = model.to(device).eval()
        self.device = torch.device(device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: torch.device | str = "cpu") -> tuple[FaceGenerator, checkpoint.Loaded]:
        loaded = checkpoint.load(path, arch=checkpoint.GENERATORS, labels=FER_CLASSES, device=device)
        return cls(loaded.model, device), loaded

    @torch.inference_mode()
    def render(self, classes: list[int], seeds: list[int]) -> np.ndarray:
        """Faces (B, 48, 48) uint8 for FER class indices and seeds (0 <= seed < 2**32)."""
        assert len(classes) == len(seeds), "one seed per face"
        z = torch.stack([latent_for_seed(s, self.model.config.latent_dim) for s in seeds]).to(self.device)
        y = torch.tensor(classes, dtype=torch.long, device=self.device)
        if not isinstance(self.model, Generator):  # the baseline draws from z and the class alone
            return to_uint8(self.model(z, y)).cpu().numpy()
        blend = torch.tensor([blend_for_seed(s) for s in seeds], device=self.device)
        return to_uint8(self.model(z, y, blend)).cpu().numpy()

    def sample_grid(self, seeds=GRID_SEEDS) -> Image.Image:
        """Every emotion (rows, labelled) for each seed (columns): one person per column."""
        seeds = list(seeds)
        classes = [c for c in range(len(FER_CLASSES)) for _ in seeds]
        faces = self.render(classes, seeds * len(FER_CLASSES))
        return plots.image_grid(faces, len(FER_CLASSES), len(seeds), row_labels=list(FER_CLASSES))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Draw a generator checkpoint's sample grid.")
    p.add_argument("--generator", default="weights/generator.pt")
    p.add_argument("--out", default="weights/generator_samples.png")
    p.add_argument("--seeds", type=int, default=len(GRID_SEEDS), help="columns: seeds 0..n-1")
    args = p.parse_args(argv)
    gen, _ = FaceGenerator.from_checkpoint(args.generator)
    gen.sample_grid(range(args.seeds)).save(args.out)


if __name__ == "__main__":
    main()
