"""Whisper's audio encoder (Radford et al. 2022), as a frozen speech front end.

The network is OpenAI Whisper's encoder: two convolutions (the second halves the frame rate to
50 Hz), sinusoidal positions, pre-LayerNorm transformer blocks, a final LayerNorm. It returns
every block's output, not only the last: the last layer is shaped for transcription, and SER
work on such encoders pools a learned mix of all of them. The weights come from a pinned pip
package (``ml.pretrained``); nothing is trained here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class WhisperEncoderConfig:
    n_mels: int = 80
    n_ctx: int = 1500  # positions: 30 s at 50 Hz
    width: int = 384
    heads: int = 6
    layers: int = 4


class Block(nn.Module):
    """Pre-LN self-attention and MLP, each with a residual: (B, T, D) -> (B, T, D)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn_ln = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)  # Whisper's key projection has no bias: it is stored as zeros
        self.out = nn.Linear(width, width)
        self.mlp_ln = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.attn_ln(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v)  # (B, H, T, D/H)
        x = x + self.out(a.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.mlp_ln(x))


class WhisperEncoder(nn.Module):
    """(1, n_mels, F) Whisper log-mel of one clip -> (layers + 1, T, width) hidden states,
    T = ceil(F / 2): the input to the first block, then each block's output (the last one
    through the final LayerNorm, as Whisper's decoder sees it)."""

    def __init__(self, config: WhisperEncoderConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.conv1 = nn.Conv1d(c.n_mels, c.width, 3, padding=1)
        self.conv2 = nn.Conv1d(c.width, c.width, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(c.n_ctx, c.width), persistent=True)
        self.blocks = nn.ModuleList(Block(c.width, c.heads) for _ in range(c.layers))
        self.ln_post = nn.LayerNorm(c.width)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        assert mel.dim() == 3 and mel.shape[0] == 1 and mel.shape[1] == self.config.n_mels, \
            f"mel must be (1, {self.config.n_mels}, F), got {tuple(mel.shape)}"
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel))))  # (1, D, T)
        t = x.shape[-1]
        assert t <= self.config.n_ctx, f"at most {self.config.n_ctx} frames after the convolutions, got {t}"
        x = x.transpose(1, 2) + self.positions[:t]  # (1, T, D)
        states = [x]
        for i, block in enumerate(self.blocks):
            x = block(x)
            states.append(self.ln_post(x) if i == len(self.blocks) - 1 else x)
        return torch.cat(states)  # (L + 1, T, D)
