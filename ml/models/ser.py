"""The speech emotion network: a classifier over a frozen pretrained encoder's pooled layer
statistics (``ml.embed``). The encoder itself lives in ``ml.models.whisper``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class SERHeadConfig:
    """A classifier over a frozen encoder's pooled layer statistics (``ml.embed``)."""

    encoder: str = "whisper-tiny-en"  # a key of ml.pretrained.ENCODERS
    quantized: bool = True  # the encoder's linear layers in dynamic int8, as the features were computed
    layers: int = 5  # hidden states pooled: the encoder's input to its first block, then each block
    width: int = 384
    dropout: float = 0.2
    hidden: int = 0  # 0: a linear head; else one hidden layer of this width (GELU)
    hidden_dropout: float = 0.3
    n_classes: int = 8

    @property
    def n_features(self) -> int:
        return self.layers * 2 * self.width


class SERHead(nn.Module):
    """(B, layers, 2, width) mean and std of every encoder layer -> (B, n_classes) calibrated logits.

    The features are standardised with the training set's statistics (buffers, saved with the
    weights), then one linear layer reads all layers at once: a multinomial logistic regression,
    which learns how much each layer and statistic counts instead of taking only the last layer.

    ``forward`` returns calibrated logits: their softmax is the probability the service reports.
    The calibration (``ml.calibration``, fitted on corpora the head's logits never trained on) is
    three buffers saved with the weights: the raw logits are scaled by
    ``exp(cal_log_scale + cal_slope * log(mean(z**2)))``, where ``z`` are the standardised features
    (so the scale can fall as a clip lies farther from the training data), and ``cal_bias`` is
    added. With the buffers at zero it is the identity: an uncalibrated head.
    """

    def __init__(self, config: SERHeadConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.zeros(config.n_features))
        self.register_buffer("std", torch.ones(config.n_features))
        self.dropout = nn.Dropout(config.dropout)
        self.body = (nn.Sequential(nn.Linear(config.n_features, config.hidden), nn.GELU(), nn.Dropout(config.hidden_dropout))
                     if config.hidden else nn.Identity())
        self.fc = nn.Linear(config.hidden or config.n_features, config.n_classes)
        self.register_buffer("cal_log_scale", torch.zeros(()))
        self.register_buffer("cal_slope", torch.zeros(()))
        self.register_buffer("cal_bias", torch.zeros(config.n_classes))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F) standardised features -> (B, n_classes) logits."""
        return self.fc(self.body(self.dropout(x)))

    def standardise(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, layers, 2, width) pooled statistics -> (B, F) standardised features."""
        c = self.config
        assert pooled.shape[1:] == (c.layers, 2, c.width), \
            f"expected (B, {c.layers}, 2, {c.width}) pooled statistics, got {tuple(pooled.shape)}"
        return (pooled.flatten(1).float() - self.mean) / self.std

    def raw(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Uncalibrated logits (B, n_classes) and the clip's distance score ``log(mean(z**2))`` (B,),
        what a calibration is fitted on."""
        z = self.standardise(pooled)
        return self.classify(z), z.pow(2).mean(1).log()

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        logits, distance = self.raw(pooled)
        return calibrate(logits, distance, self.cal_log_scale, self.cal_slope, self.cal_bias)


def calibrate(logits: torch.Tensor, distance: torch.Tensor, log_scale: torch.Tensor, slope: torch.Tensor,
              bias: torch.Tensor) -> torch.Tensor:
    """Calibrated logits: raw ``logits`` (B, C) scaled by ``exp(log_scale + slope * distance)`` per
    clip, plus ``bias`` (C,). The one definition, used by the head and by the fitting."""
    return logits * (log_scale + slope * distance).exp()[:, None] + bias
