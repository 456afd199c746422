"""Speech emotion network: a small masked CNN over log-mel with attentive statistics pooling,
and an ensemble of such networks trained from different seeds."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval


@dataclass
class SERConfig:
    n_mels: int = 64
    n_classes: int = 8
    channels: tuple[int, ...] = (16, 32, 64, 128)
    embed_dim: int = 128
    attention_dim: int = 64
    dropout: float = 0.3

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)


class MaskedConvBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> 2x2 max-pool, with padded time steps held at exactly zero.

    Zeroing the padding before the convolution makes a clip's output independent of how much
    padding follows it (the conv's own zero padding sees the same zeros), so batched inference
    equals one-by-one inference. The ReLU runs after the pooling: the same numbers (ReLU is
    monotonic, so it commutes with max) on a quarter of the values.
    """

    def __init__(self, c_in: int, c_out: int, *, pool_freq: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.pool = (pool_freq, 2)

    def forward(self, x: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (B, C, M, T); frames: (B,) valid time steps
        x = x * _time_mask(frames, x.shape[-1], x.dtype)[:, None, None, :]
        if not self.training:  # see for_inference
            x = x.contiguous(memory_format=torch.channels_last)
        x = F.max_pool2d(self.bn(self.conv(x)), self.pool, self.pool)  # (B, C', M/2, T/2)
        return F.relu(x), frames // 2


def _time_mask(frames: torch.Tensor, total: int, dtype: torch.dtype) -> torch.Tensor:
    return (torch.arange(total, device=frames.device)[None, :] < frames[:, None]).to(dtype)  # (B, T)


class AttentiveStatsPool(nn.Module):
    """Attention-weighted mean and standard deviation over valid time steps (ECAPA-style)."""

    def __init__(self, dim: int, attention_dim: int) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.Conv1d(dim, attention_dim, 1), nn.Tanh(), nn.Conv1d(attention_dim, dim, 1)
        )

    def forward(self, x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        # x: (B, D, T) -> (B, 2D)
        mask = _time_mask(frames, x.shape[-1], x.dtype)[:, None, :]  # (B, 1, T)
        scores = self.attention(x).masked_fill(mask == 0, float("-inf"))
        w = torch.softmax(scores, dim=-1)
        mean = (w * x).sum(-1)
        var = (w * x.pow(2)).sum(-1) - mean.pow(2)
        return torch.cat([mean, var.clamp(min=1e-6).sqrt()], dim=1)


class SERNet(nn.Module):
    """log-mel (B, n_mels, T) + valid frames (B,) -> logits (B, n_classes)."""

    def __init__(self, config: SERConfig) -> None:
        super().__init__()
        self.config = config
        chans = (1, *config.channels)
        self.blocks = nn.ModuleList(MaskedConvBlock(chans[i], chans[i + 1]) for i in range(len(config.channels)))
        freq = config.n_mels // 2 ** len(config.channels)
        assert freq >= 1, f"{config.n_mels} mel bins cannot be halved {len(config.channels)} times"
        self.project = nn.Sequential(
            nn.Conv1d(config.channels[-1] * freq, config.embed_dim, 1, bias=False),
            nn.BatchNorm1d(config.embed_dim), nn.ReLU(),
        )
        self.pool = AttentiveStatsPool(config.embed_dim, config.attention_dim)
        self.head = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(2 * config.embed_dim, config.embed_dim), nn.ReLU(),
            nn.Dropout(config.dropout), nn.Linear(config.embed_dim, config.n_classes),
        )

    @property
    def min_frames(self) -> int:
        """Fewest input frames that survive the pooling."""
        return 2 ** len(self.config.channels)

    def forward(self, feats: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        assert feats.dim() == 3 and feats.shape[1] == self.config.n_mels, (
            f"expected (B, {self.config.n_mels}, T) features, got {tuple(feats.shape)}"
        )
        x = feats[:, None]  # (B, 1, M, T)
        for block in self.blocks:
            x, frames = block(x, frames)
        b, c, m, t = x.shape
        x = x * _time_mask(frames, t, x.dtype)[:, None, None, :]
        x = self.project(x.reshape(b, c * m, t))  # (B, D, T')
        return self.head(self.pool(x, frames))  # (B, n_classes)


def for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy of a SER model that computes the same function faster on CPU.

    Each convolution absorbs its batch norm, and the convolution weights and activations are kept
    in channels-last memory order: there CPU max-pooling is ~10x faster and the one-channel first
    convolution on a batch several times faster (oneDNN). On a 4 s clip's three test-time views
    the network takes half the time (``tests/perf/bench_models.py``). Training keeps the default
    order, in which its steps are faster.
    """
    model = copy.deepcopy(model).eval()
    for block in model.modules():
        if isinstance(block, MaskedConvBlock):
            block.conv = fuse_conv_bn_eval(block.conv, block.bn)
            block.bn = nn.Identity()
    return model.to(memory_format=torch.channels_last)


@dataclass
class SEREnsembleConfig:
    member: SERConfig = field(default_factory=SERConfig)
    size: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.member, dict):  # as stored in a checkpoint
            self.member = SERConfig(**self.member)
        assert self.size >= 1, "an ensemble needs at least one member"

    @property
    def n_classes(self) -> int:
        return self.member.n_classes

    @property
    def n_mels(self) -> int:
        return self.member.n_mels


class SEREnsemble(nn.Module):
    """Same-architecture :class:`SERNet` members trained from different seeds.

    The output is the log of the members' mean probability, so a softmax over it (what every
    caller does with logits) is the averaged prediction.
    """

    def __init__(self, config: SEREnsembleConfig) -> None:
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(SERNet(config.member) for _ in range(config.size))

    @classmethod
    def of(cls, members: list[SERNet]) -> "SEREnsemble":
        configs = {repr(m.config) for m in members}
        assert len(configs) == 1, f"ensemble members must share one architecture, got {configs}"
        ensemble = cls(SEREnsembleConfig(member=members[0].config, size=len(members)))
        for slot, member in zip(ensemble.members, members):
            slot.load_state_dict(member.state_dict())
        return ensemble.eval()

    def forward(self, feats: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([F.log_softmax(m(feats, frames), dim=-1) for m in self.members])  # (K, B, C)
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


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
    """(B, layers, 2, width) mean and std of every encoder layer -> (B, n_classes) logits.

    The features are standardised with the training set's statistics (buffers, saved with the
    weights), then one linear layer reads all layers at once: a multinomial logistic regression,
    which learns how much each layer and statistic counts instead of taking only the last layer.
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

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F) standardised features -> (B, n_classes) logits."""
        return self.fc(self.body(self.dropout(x)))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        c = self.config
        assert pooled.shape[1:] == (c.layers, 2, c.width), \
            f"expected (B, {c.layers}, 2, {c.width}) pooled statistics, got {tuple(pooled.shape)}"
        return self.classify((pooled.flatten(1).float() - self.mean) / self.std)
