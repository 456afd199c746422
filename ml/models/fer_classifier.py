"""Expression classifier for 48x48 faces, used only to evaluate the face generator.

Its penultimate features are the embedding for the Frechet distance (an FID whose feature
network knows faces, since no Inception weights can be downloaded here).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class FERClassifierConfig:
    n_classes: int = 7
    # two 3x3 convs per resolution (48, 24, 12, 6): ~30M multiply-adds per face, so 10 epochs of the
    # Training split take about 20 minutes on one CPU core
    channels: tuple[int, ...] = (16, 32, 64, 128)
    feature_dim: int = 256
    dropout: float = 0.4

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)


class FERClassifier(nn.Module):
    """image (B, 1, 48, 48) in [-1, 1] -> logits (B, n_classes); ``features`` -> (B, feature_dim)."""

    def __init__(self, config: FERClassifierConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c_in = 1
        for c in config.channels:
            layers += [
                nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            c_in = c
        self.body = nn.Sequential(*layers)  # 48 -> 3
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(config.dropout), nn.Linear(c_in * 9, config.feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.feature_dim, config.n_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
