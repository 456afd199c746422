"""A learned 2x enlargement of grey faces: ESPCN's layout (Shi et al. 2016), convolutions at the
input's size and a pixel shuffle at the end, added to a bicubic enlargement, so the network only
learns the detail bicubic misses. Its last convolution starts at zero: an untrained network is
plain bicubic. Trained by ``ml/train_upsampler.py``; used by ``ml/enlarge.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class UpsamplerConfig:
    width: int = 32  # channels of the hidden convolutions
    depth: int = 5  # convolutions: a 5x5 one, depth - 2 3x3 ones, and the one that feeds the shuffle
    scale: int = 2


class FaceUpsampler(nn.Module):
    """(B, 1, H, W) in [-1, 1] -> (B, 1, scale H, scale W), not clamped."""

    def __init__(self, config: UpsamplerConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or UpsamplerConfig()
        layers: list[nn.Module] = [nn.Conv2d(1, c.width, 5, padding=2), nn.ReLU()]
        for _ in range(c.depth - 2):
            layers += [nn.Conv2d(c.width, c.width, 3, padding=1), nn.ReLU()]
        last = nn.Conv2d(c.width, c.scale * c.scale, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.body = nn.Sequential(*layers, last, nn.PixelShuffle(c.scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=self.config.scale, mode="bicubic", align_corners=False)
        return base + self.body(x)
