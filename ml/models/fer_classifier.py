"""Expression classifiers for 48x48 faces, used only to judge the face generator.

Their penultimate features are the embeddings for the Frechet and kernel distances (an FID whose
feature network knows faces, since no Inception weights can be downloaded here). Several judges
of different layouts and seeds exist so that a choice made in one judge's features is reported
in the others' (``ml/evaluate_gan.py``): the presets are :data:`JUDGES`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class FERClassifierConfig:
    n_classes: int = 7
    # per resolution (48, 24, 12, 6), then a 2x2 max-pool: ~30M multiply-adds per face with the
    # defaults, so 10 epochs of the Training split take about 25 minutes on one CPU core
    channels: tuple[int, ...] = (16, 32, 64, 128)
    convs_per_stage: int = 2
    kernel: int = 3
    residual: bool = False  # a 1x1 shortcut around each stage's convolutions (ResNet-style)
    pool: str = "flatten"  # "flatten": the 3x3 map into the feature layer; "mean": global average pooling
    feature_dim: int = 256
    dropout: float = 0.4

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        assert self.pool in ("flatten", "mean"), f"unknown pool {self.pool!r}"


#: The judges' layouts, by name: the VGG-style network that judged the generator first, a
#: residual one with global pooling, and one with single 5x5 convolutions per stage.
JUDGES = {
    "vgg": FERClassifierConfig(),
    "resnet": FERClassifierConfig(residual=True, pool="mean"),
    "k5": FERClassifierConfig(convs_per_stage=1, kernel=5, pool="mean", feature_dim=192, dropout=0.3),
}


class FERClassifier(nn.Module):
    """image (B, 1, 48, 48) in [-1, 1] -> logits (B, n_classes); ``features`` -> (B, feature_dim)."""

    def __init__(self, config: FERClassifierConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        chans = (1, *config.channels)
        for c_in, c in zip(chans, chans[1:]):  # per stage: convs_per_stage x [conv, BN, ReLU], pool
            for j in range(config.convs_per_stage):
                layers += [nn.Conv2d(c_in if j == 0 else c, c, config.kernel, padding=config.kernel // 2, bias=False),
                           nn.BatchNorm2d(c), nn.ReLU()]
            layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)  # 48 -> 3, one flat list (the first judge's files name their layers so)
        self.stage_len = 3 * config.convs_per_stage + 1
        # ResNet-style: a 1x1 convolution of a stage's input is added to its convolutions' output, before the pool
        self.shortcuts = nn.ModuleList([nn.Conv2d(a, b, 1, bias=False) for a, b in zip(chans, chans[1:])]
                                       if config.residual else [])
        width = chans[-1] * (9 if config.pool == "flatten" else 1)
        pool = nn.Flatten() if config.pool == "flatten" else nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Sequential(pool, nn.Dropout(config.dropout), nn.Linear(width, config.feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.feature_dim, config.n_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        n = self.stage_len
        for i in range(len(self.config.channels)):
            h = self.body[i * n:(i + 1) * n - 1](x)
            if self.shortcuts:
                h = h + self.shortcuts[i](x)
            x = self.body[(i + 1) * n - 1](h)  # the stage's pool
        return self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
