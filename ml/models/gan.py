"""Conditional GAN for 48x48 grey faces: a generator with class-conditional batch norm and a
projection discriminator (Miyato & Koyama 2018) with ProGAN's minibatch-std channel. The recipe
is in ``ml/train_gan.py``; how a trained generator draws (seed to latent) is in ``ml/generate.py``.

The latent vector carries identity and the class carries expression: the class enters only
through the normalisation gains and biases, so the same ``z`` drawn for every class keeps the
same face layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

IMAGE_SIZE = 48


@dataclass
class GeneratorConfig:
    latent_dim: int = 128
    n_classes: int = 7
    base_channels: int = 32  # channels at 48x48; x2 at each lower resolution (6x6 has 8x)


@dataclass
class DiscriminatorConfig:
    n_classes: int = 7
    base_channels: int = 32
    minibatch_std: bool = False  # ProGAN's minibatch standard deviation channel before the last conv


class RowLinear(nn.Linear):
    """A linear layer whose every output row is computed alone, as a matrix-vector product: a row's
    numbers never depend on the other rows of its batch (a batched matrix product's blocking
    depends on the batch size, which moved a face by ~1e-6, and now and then a pixel). The
    gradient is the ordinary one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _RowLinear.apply(x, self.weight, self.bias)


class _RowLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return torch.bmm(x[:, None], weight.t().expand(len(x), -1, -1))[:, 0] + bias

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        return grad @ weight, grad.t() @ x, grad.sum(0)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without affine parameters, then a per-class gain and bias."""

    def __init__(self, channels: int, n_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(n_classes, channels)
        self.bias = nn.Embedding(n_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * self.gain(y)[:, :, None, None] + self.bias(y)[:, :, None, None]


class GenBlock(nn.Module):
    """CBN -> ReLU -> 4x4 transposed conv, stride 2: (B, C, H, W) -> (B, C', 2H, 2W).

    A transposed conv computes at the input resolution, 2.25x cheaper than upsample + conv3x3 at
    the output resolution, which keeps a single face cheap on a CPU core.
    """

    def __init__(self, c_in: int, c_out: int, n_classes: int) -> None:
        super().__init__()
        self.bn = ConditionalBatchNorm2d(c_in, n_classes)
        self.up = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.up(F.relu(self.bn(x, y)))


class Generator(nn.Module):
    """z (B, latent_dim) + class (B,) -> image (B, 1, 48, 48) in [-1, 1]."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        c = config.base_channels
        self.top = 8 * c
        self.fc = RowLinear(config.latent_dim, self.top * 6 * 6)
        self.blocks = nn.ModuleList([
            GenBlock(8 * c, 4 * c, config.n_classes),  # 6 -> 12
            GenBlock(4 * c, 2 * c, config.n_classes),  # 12 -> 24
            GenBlock(2 * c, c, config.n_classes),  # 24 -> 48
        ])
        self.out_bn = ConditionalBatchNorm2d(c, config.n_classes)
        self.out = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = self.fc(z).view(-1, self.top, 6, 6)  # (B, 8c, 6, 6)
        for block in self.blocks:
            x = block(x, y)  # doubles H and W, halves C
        return torch.tanh(self.out(F.relu(self.out_bn(x, y))))  # (B, 1, 48, 48)


class Discriminator(nn.Module):
    """image (B, 1, 48, 48) + class (B,) -> realness score (B,) via a class projection.

    The SNGAN "standard CNN" layout: strided 4x4 convolutions halve the resolution
    (48 -> 24 -> 12 -> 6), with a 3x3 convolution at 12x12 and 6x6; no full-width layer at 48x48
    or 24x24 beyond the first, because on a CPU those dominate a training step. No spectral norm:
    the R1 penalty in training regularises D.
    """

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        c = config.base_channels

        def conv(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Conv2d:
            return nn.Conv2d(c_in, c_out, k, stride=stride, padding=1)

        self.convs = nn.ModuleList([
            conv(1, c, 3),  # 48
            conv(c, 2 * c, 4, 2),  # 24
            conv(2 * c, 4 * c, 4, 2),  # 12
            conv(4 * c, 4 * c, 3),
            conv(4 * c, 8 * c, 4, 2),  # 6
            conv(8 * c + int(config.minibatch_std), 8 * c, 3),
        ])
        if config.minibatch_std:  # the channel starts silent: D scores as if it had none until training moves it
            with torch.no_grad():
                self.convs[-1].weight[:, -1].zero_()
        self.linear = nn.Linear(8 * c, 1)
        self.embed = nn.Embedding(config.n_classes, 8 * c)
        #: 0 feeds the minibatch-std channel zeros: its weights (zero at the start) then get no
        #: gradient, so a run can switch the channel on part-way, as if it had been added then.
        self.std_gate = 1.0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """image (B, 1, 48, 48) -> pooled features h (B, 8c)."""
        h = x
        for i, conv in enumerate(self.convs):
            if i == len(self.convs) - 1 and self.config.minibatch_std:
                h = minibatch_std(h, gate=self.std_gate)
            h = F.leaky_relu(conv(h), 0.2)
        return h.mean(dim=(2, 3))

    def score(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Realness (B,) of features h for classes y: an unconditional term plus the projection."""
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(1)

    def class_logits(self, h: torch.Tensor) -> torch.Tensor:
        """(B, n_classes): the projection term for every class, used as a classifier's logits."""
        return h @ self.embed.weight.t()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(x), y)


def minibatch_std(h: torch.Tensor, group: int = 4, gate: float = 1.0) -> torch.Tensor:
    """(B, C, H, W) -> (B, C + 1, H, W): ProGAN's minibatch standard deviation (Karras et al. 2018).

    The extra channel is the standard deviation of each feature across a group of ``group``
    faces, averaged to one number per group (times ``gate``): a batch of near-copies shows a
    lower value than a real batch does, so D can tell a collapsed generator by it.
    """
    b, c, hh, ww = h.shape
    g = group if b % group == 0 else b
    std = h.view(g, b // g, c, hh, ww).var(dim=0, unbiased=False).add(1e-8).sqrt()  # (B/g, C, H, W)
    stat = std.mean(dim=(1, 2, 3)).view(1, b // g, 1, 1, 1).expand(g, -1, 1, hh, ww).reshape(b, 1, hh, ww)
    return torch.cat([h, stat * gate], dim=1)


def from_uint8(images) -> torch.Tensor:
    """Faces (N, 48, 48) uint8 (numpy) -> (N, 1, 48, 48) float in [-1, 1], the generator's range;
    the inverse of :func:`to_uint8`. Real faces enter training and evaluation this way."""
    return torch.from_numpy(images).float().div(127.5).sub(1).unsqueeze(1)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Generator output (B, 1, H, W) in [-1, 1] -> (B, H, W) uint8."""
    return ((images[:, 0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
