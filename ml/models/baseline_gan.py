"""The student project's conditional GAN, re-implemented as the baseline our generator must beat.

What the student project did (a Keras DCGAN-style cGAN): the label is embedded and fed as an
extra input channel to both networks, binary cross-entropy, Adam 2e-4 (beta1 0.5), batch 512,
batch norm and LeakyReLU in the generator, LeakyReLU and dropout in the discriminator, no
spectral norm, no weight averaging. The widths follow our generator's (x8, x4, x2, x1 of a base
width) so that the side-by-side comparison is about the recipe, not the size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

EMBED_DIM = 50  # the Keras tutorial-style label embedding width


@dataclass
class BaselineGeneratorConfig:
    latent_dim: int = 128
    n_classes: int = 7
    base_channels: int = 24


@dataclass
class BaselineDiscriminatorConfig:
    n_classes: int = 7
    base_channels: int = 24
    dropout: float = 0.4


class BaselineGenerator(nn.Module):
    """z (B, latent_dim) + class (B,) -> image (B, 1, 48, 48) in [-1, 1].

    z -> 6x6 feature map; the label -> embedding -> one 6x6 map, concatenated as an extra channel;
    then [transposed conv 4x4 stride 2, batch norm, LeakyReLU] x 3 -> 3x3 conv -> tanh.
    """

    def __init__(self, config: BaselineGeneratorConfig) -> None:
        super().__init__()
        self.config = config
        c = config.base_channels
        self.top = 8 * c
        self.fc = nn.Linear(config.latent_dim, self.top * 36)
        self.label = nn.Sequential(nn.Embedding(config.n_classes, EMBED_DIM), nn.Linear(EMBED_DIM, 36))
        widths = [8 * c + 1, 4 * c, 2 * c, c]
        self.ups = nn.ModuleList(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1) for a, b in zip(widths, widths[1:]))
        self.bns = nn.ModuleList(nn.BatchNorm2d(b) for b in widths[1:])
        self.out = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.fc(z), 0.2).view(-1, self.top, 6, 6)
        x = torch.cat([x, self.label(y).view(-1, 1, 6, 6)], dim=1)  # (B, 8c + 1, 6, 6)
        for up, bn in zip(self.ups, self.bns):
            x = F.leaky_relu(bn(up(x)), 0.2)  # doubles H and W
        return torch.tanh(self.out(x))  # (B, 1, 48, 48)


class BaselineDiscriminator(nn.Module):
    """image (B, 1, 48, 48) + class (B,) -> logit (B,): the label as a second input channel."""

    def __init__(self, config: BaselineDiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        c = config.base_channels
        self.label = nn.Sequential(nn.Embedding(config.n_classes, EMBED_DIM), nn.Linear(EMBED_DIM, 48 * 48))
        widths = [2, c, 2 * c, 4 * c, 8 * c]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 4, stride=2, padding=1) for a, b in zip(widths, widths[1:]))  # 48 -> 3
        self.drop = nn.Dropout(config.dropout)
        self.fc = nn.Linear(8 * c * 9, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x, self.label(y).view(-1, 1, 48, 48)], dim=1)
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
        return self.fc(self.drop(h.flatten(1))).squeeze(1)
