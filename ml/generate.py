"""How a trained generator draws: (class, seed) pairs in, uint8 faces out. Shared by training,
evaluation and the service.

    # the sample grid shown in the README and the card (rows = emotions, columns = seeds 0-9)
    python -m ml.generate --generator weights/generator.pt --out weights/generator_samples.png

Three rules live here, not in the network:

- **Seed to latent.** A seed fixes z on every machine and run (:func:`latent_for_seed`); a voice
  gives its own z instead (``ml.voice``).
- **Drawing.** A file's :class:`Drawing` (its ``drawing`` key) says how z is drawn from: as
  trained unless it holds a latent scale per class (z times the scale). The shipped files draw as
  trained; ``docs/experiments/gan.md`` has the calibrations that were measured and dropped.
- **Bit-exactness on CPU.** A face must be bit-identical alone and in any batch, on any number of
  threads. The network's first layer computes each face alone (``RowLinear``); the transposed
  convolutions are split by oneDNN unlike a single face's on more than one intra-op thread, so on
  CPU a batch is drawn on one (the calling thread's own OpenMP setting, restored after; the
  service draws on worker threads, one batch per core at once, and gains from batching).
  A GPU's kernels promise no such thing, so none is claimed there.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ml import checkpoint, plots
from ml.labels import FER_CLASSES
from ml.models.gan import to_uint8

GRID_SEEDS = tuple(range(10))


@dataclass(frozen=True)
class Drawing:
    """How faces are drawn from a trained generator, stored under a checkpoint's ``drawing`` key."""

    latent_scale: tuple[float, ...] | None = None  # per class: z is drawn times it; None: as trained

    @classmethod
    def from_meta(cls, meta: dict) -> Drawing:
        stored = meta.get("drawing") or {}
        scale = stored.get("latent_scale")
        return cls(tuple(float(v) for v in scale) if scale is not None else None)

    def with_scale(self, scale: float) -> Drawing:
        """One latent scale for every class."""
        return Drawing((float(scale),) * len(FER_CLASSES))


def latent_for_seed(seed: int, latent_dim: int) -> torch.Tensor:
    """The latent vector (latent_dim,) for a seed: the same on every machine and run (CPU RNG)."""
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(latent_dim, generator=g)


@contextmanager
def one_thread() -> Iterator[None]:
    """The calling thread draws on one intra-op thread, then gets its setting back."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class FaceGenerator:
    """A loaded generator on a device. The seed fixes the identity, the class the expression."""

    def __init__(self, model: torch.nn.Module, device: torch.device | str = "cpu", drawing: Drawing = Drawing()) -> None:
        assert model.config.n_classes == len(FER_CLASSES), "the generator must draw the 7 FER-2013 classes"
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.drawing = drawing

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: torch.device | str = "cpu") -> tuple[FaceGenerator, checkpoint.Loaded]:
        loaded = checkpoint.load(path, arch=checkpoint.GENERATORS, labels=FER_CLASSES, device=device)
        return cls(loaded.model, device, Drawing.from_meta(loaded.meta)), loaded

    @torch.inference_mode()
    def draw(self, classes: list[int], seeds: list[int | torch.Tensor]) -> torch.Tensor:
        """Faces (B, 1, 48, 48) float in [-1, 1], on the CPU, for FER class indices and who to draw:
        a seed (0 <= seed < 2**32) or a latent of its own ((latent_dim,), a voice's: ``ml.voice``).
        What :meth:`render` rounds."""
        assert len(classes) == len(seeds), "one seed or latent per face"
        d = self.model.config.latent_dim
        z = torch.stack([s.float().reshape(d) if isinstance(s, torch.Tensor) else latent_for_seed(s, d) for s in seeds])
        if self.drawing.latent_scale is not None:
            z = z * torch.tensor(self.drawing.latent_scale)[torch.tensor(classes)][:, None]
        z, y = z.to(self.device), torch.tensor(classes, dtype=torch.long, device=self.device)
        if self.device.type != "cpu":
            return self.model(z, y).cpu()
        with one_thread():
            return self.model(z, y)

    def render(self, classes: list[int], seeds: list[int | torch.Tensor]) -> np.ndarray:
        """Faces (B, 48, 48) uint8 for FER class indices and seeds or latents (:meth:`draw`)."""
        return to_uint8(self.draw(classes, seeds)).numpy()

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
