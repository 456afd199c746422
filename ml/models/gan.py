"""Conditional GAN for 48x48 grey faces: generator with class-conditional batch norm and a
projection discriminator (Miyato & Koyama 2018), optionally with spectral norm, ProGAN's
minibatch-std channel and TAC-GAN's twin classifier (the recipe is in ``ml/train_gan.py``).

The latent vector carries identity and the class carries expression: the class enters only
through the normalisation gains and biases, so the same ``z`` drawn for every class keeps the
same face layout.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm

IMAGE_SIZE = 48


@dataclass
class GeneratorConfig:
    latent_dim: int = 128
    n_classes: int = 7
    base_channels: int = 32  # channels at 48x48; x2 at each lower resolution (6x6 has 8x)
    # How a trained generator draws, per class (``ml.evaluate_gan calibrate`` sets them; None, as
    # in training, draws as trained). A face of class c is drawn from ``latent_scale[c] * z``, and
    # its expression leans towards class ``blend_to[c]``: its batch-norm gains and biases move
    # ``u * blend_max[c]`` of the way there, with u in [0, 1) drawn from the seed
    # (:func:`blend_for_seed`), so a seed's faces lean alike in every emotion. A negative
    # ``blend_max`` leans away from that class: a stronger expression of c.
    latent_scale: tuple[float, ...] | None = None
    blend_to: tuple[int, ...] | None = None
    blend_max: tuple[float, ...] | None = None


@dataclass
class DiscriminatorConfig:
    n_classes: int = 7
    base_channels: int = 32
    spectral_norm: bool = False  # off: the R1 penalty in training regularises D instead
    minibatch_std: bool = False  # ProGAN's minibatch standard deviation channel before the last conv
    twin_classifier: bool = False  # TAC-GAN's twin classifier head, trained on generated faces


Lean = tuple[torch.Tensor, torch.Tensor]  # (classes (B,), amounts (B,)): how far each face leans towards a class


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without affine parameters, then a per-class gain and bias.

    With ``lean`` each face's gain and bias move part of the way towards another class's:
    elementwise, so a face comes out the same in any batch.
    """

    def __init__(self, channels: int, n_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(n_classes, channels)
        self.bias = nn.Embedding(n_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor, lean: Lean | None = None) -> torch.Tensor:
        gain, bias = self.gain(y), self.bias(y)
        if lean is not None:
            to, t = lean[0], lean[1][:, None]
            gain, bias = gain + t * (self.gain(to) - gain), bias + t * (self.bias(to) - bias)
        return self.bn(x) * gain[:, :, None, None] + bias[:, :, None, None]


class GenBlock(nn.Module):
    """CBN -> ReLU -> 4x4 transposed conv, stride 2: (B, C, H, W) -> (B, C', 2H, 2W).

    A transposed conv computes at the input resolution, 2.25x cheaper than upsample + conv3x3 at
    the output resolution, which keeps a single face cheap on a CPU core.
    """

    def __init__(self, c_in: int, c_out: int, n_classes: int) -> None:
        super().__init__()
        self.bn = ConditionalBatchNorm2d(c_in, n_classes)
        self.up = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor, lean: Lean | None = None) -> torch.Tensor:
        return self.up(F.relu(self.bn(x, y, lean)))


class Generator(nn.Module):
    """z (B, latent_dim) + class (B,) -> image (B, 1, 48, 48) in [-1, 1]."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        c = config.base_channels
        self.top = 8 * c
        self.fc = nn.Linear(config.latent_dim, self.top * 6 * 6)
        self.blocks = nn.ModuleList([
            GenBlock(8 * c, 4 * c, config.n_classes),  # 6 -> 12
            GenBlock(4 * c, 2 * c, config.n_classes),  # 12 -> 24
            GenBlock(2 * c, c, config.n_classes),  # 24 -> 48
        ])
        self.out_bn = ConditionalBatchNorm2d(c, config.n_classes)
        self.out = nn.Conv2d(c, 1, 3, padding=1)
        self.set_drawing(config.latent_scale, config.blend_to, config.blend_max)

    def set_drawing(self, latent_scale=None, blend_to=None, blend_max=None) -> None:
        """How this generator draws each class (see :class:`GeneratorConfig`); None: as trained.

        Kept in the config, so a checkpoint carries it, and in buffers for the forward pass. A
        latent scale above 1 spreads faces further from the mean face (in eval mode the batch
        norms after the first layer normalise with fixed statistics; in training mode they would
        cancel it): the inverse of BigGAN's truncation trick. A blend moves a face's expression
        part of the way towards another class's, so not every face of a class shows it fully.
        """
        k = self.config.n_classes
        latent_scale = tuple(float(v) for v in latent_scale) if latent_scale is not None else None
        blend_to = tuple(int(v) for v in blend_to) if blend_to is not None else None
        blend_max = tuple(float(v) for v in blend_max) if blend_max is not None else None
        assert all(v is None or len(v) == k for v in (latent_scale, blend_to, blend_max)), f"one value per class ({k})"
        self.config = replace(self.config, latent_scale=latent_scale, blend_to=blend_to, blend_max=blend_max)
        device = self.fc.weight.device
        self.register_buffer("latent_scale", torch.tensor(latent_scale or (1.0,) * k, device=device), persistent=False)
        self.register_buffer("blend_to", torch.tensor(blend_to or range(k), device=device), persistent=False)
        self.register_buffer("blend_max", torch.tensor(blend_max or (0.0,) * k, device=device), persistent=False)

    def forward(self, z: torch.Tensor, y: torch.Tensor, blend: torch.Tensor | None = None) -> torch.Tensor:
        """``blend`` (B,) in [0, 1): each face's draw of how far, as a share of its class's
        ``blend_max``, its expression leans towards ``blend_to``; None: not at all."""
        assert z.dim() == 2 and z.shape[1] == self.config.latent_dim, f"z must be (B, {self.config.latent_dim})"
        z = z * self.latent_scale[y][:, None]
        lean = None if blend is None else (self.blend_to[y], blend.to(z.dtype) * self.blend_max[y])
        if self.training or z.device.type != "cpu":
            return self._forward(self.fc(z), y, lean)
        # Drawing on CPU: a face must be bit-identical in any batch and on any number of threads.
        # - One matrix-vector product per face: a batched product's blocking depends on the batch
        #   size, which moved outputs by ~1e-6 and, rarely, a uint8 pixel.
        # - One intra-op thread: with several, oneDNN splits a small batch's transposed convolutions
        #   unlike a single face's, with the same effect (docs/experiments/gan.md lists the
        #   batch sizes). On one thread every batch matches faces drawn alone, and a face
        #   alone is the same on any number of threads (tests/ml/test_shipped_weights.py). The
        #   setting is the calling thread's own (OpenMP), restored after; the service runs the
        #   generator on its own worker thread and gains its throughput from batching requests.
        # Not on a GPU: its kernels promise no such thing, and a loop would cost a launch per face.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._forward(torch.stack([self.fc(v) for v in z]), y, lean)
        finally:
            torch.set_num_threads(threads)

    def _forward(self, x: torch.Tensor, y: torch.Tensor, lean: Lean | None) -> torch.Tensor:
        x = x.view(-1, self.top, 6, 6)  # (B, 8c, 6, 6)
        for block in self.blocks:
            x = block(x, y, lean)  # doubles H and W, halves C
        return torch.tanh(self.out(F.relu(self.out_bn(x, y, lean))))  # (B, 1, 48, 48)


class Discriminator(nn.Module):
    """image (B, 1, 48, 48) + class (B,) -> realness score (B,) via a class projection.

    The SNGAN "standard CNN" layout: strided 4x4 convolutions halve the resolution
    (48 -> 24 -> 12 -> 6), with a 3x3 convolution at 12x12 and 6x6; no full-width layer at 48x48
    or 24x24 beyond the first, because on a CPU those dominate a training step. Spectral norm is
    optional: with it, D learned too slowly for a CPU budget (see ml/train_gan.py).
    """

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        c = config.base_channels
        sn = spectral_norm if config.spectral_norm else (lambda m: m)

        def conv(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Module:
            return sn(nn.Conv2d(c_in, c_out, k, stride=stride, padding=1))

        self.convs = nn.ModuleList([
            conv(1, c, 3),  # 48
            conv(c, 2 * c, 4, 2),  # 24
            conv(2 * c, 4 * c, 4, 2),  # 12
            conv(4 * c, 4 * c, 3),
            conv(4 * c, 8 * c, 4, 2),  # 6
            conv(8 * c + int(config.minibatch_std), 8 * c, 3),
        ])
        self.linear = sn(nn.Linear(8 * c, 1))
        self.embed = sn(nn.Embedding(config.n_classes, 8 * c))
        if config.twin_classifier:  # last, so a saved D without it keeps its parameter order
            self.twin = nn.Linear(8 * c, config.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """image (B, 1, 48, 48) -> pooled features h (B, 8c)."""
        h = x
        for i, conv in enumerate(self.convs):
            if i == len(self.convs) - 1 and self.config.minibatch_std:
                h = minibatch_std(h)
            h = F.leaky_relu(conv(h), 0.2)
        return h.mean(dim=(2, 3))

    def score(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Realness (B,) of features h for classes y: an unconditional term plus the projection."""
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(1)

    def class_logits(self, h: torch.Tensor) -> torch.Tensor:
        """(B, n_classes): the projection term for every class, used as a classifier's logits."""
        return h @ self.embed.weight.t()

    def twin_logits(self, h: torch.Tensor) -> torch.Tensor:
        """(B, n_classes): TAC-GAN's twin classifier (Gong et al. 2019), which learns the classes of
        *generated* faces. G is rewarded for faces it cannot classify, which cancels the pull of
        the auxiliary classifier towards faces far from every class boundary (AC-GAN's known loss
        of diversity within a class)."""
        return self.twin(h)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(x), y)


def minibatch_std(h: torch.Tensor, group: int = 4) -> torch.Tensor:
    """(B, C, H, W) -> (B, C + 1, H, W): ProGAN's minibatch standard deviation (Karras et al. 2018).

    The extra channel is the standard deviation of each feature across a group of ``group``
    faces, averaged to one number per group: a batch of near-copies shows a lower value than a
    real batch does, so D can tell a collapsed generator by it and G is pushed to vary.
    """
    b, c, hh, ww = h.shape
    g = group if b % group == 0 else b
    std = h.view(g, b // g, c, hh, ww).var(dim=0, unbiased=False).add(1e-8).sqrt()  # (B/g, C, H, W)
    stat = std.mean(dim=(1, 2, 3)).view(1, b // g, 1, 1, 1).expand(g, -1, 1, hh, ww).reshape(b, 1, hh, ww)
    return torch.cat([h, stat], dim=1)


def latent_for_seed(seed: int, latent_dim: int) -> torch.Tensor:
    """The latent vector (latent_dim,) for a seed: the same on every machine and run (CPU RNG)."""
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(latent_dim, generator=g)


BLEND_STREAM = 10**9  # blend_for_seed's generator is seeded with seed + this


def blend_for_seed(seed: int) -> float:
    """The seed's blend draw in [0, 1) (see :class:`GeneratorConfig`): the same on every machine
    and run, from a stream apart from the latent's (numpy's PCG64, seeded with seed + 10**9)."""
    return float(np.random.default_rng(int(seed) + BLEND_STREAM).random())


def from_uint8(images: np.ndarray) -> torch.Tensor:
    """Faces (N, 48, 48) uint8 -> (N, 1, 48, 48) float in [-1, 1], the generator's range; the
    inverse of :func:`to_uint8`. Real faces enter training and evaluation this way."""
    return torch.from_numpy(images).float().div(127.5).sub(1).unsqueeze(1)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Generator output (B, 1, H, W) in [-1, 1] -> (B, H, W) uint8."""
    return ((images[:, 0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
