"""The speaker encoder: GE2E (Wan et al., 2018) as Resemblyzer ships it, and the fixed map from its
embedding to the face generator's latent. Weights: ``weights/voice.pt`` (``python -m ml.import_voice``).

The network reads a partial of a 40-bin power mel (``ml.audio.voice_mel``; Resemblyzer's partial is
1.6 s, the shipped file's 1 s): three LSTM layers of 256, the last layer's final state through a
linear layer and a ReLU, L2-normalised. The map is ``z = sqrt(latent_dim) * unit(to_latent @
(e - center))``: a speaker's embedding, centred and projected, lands on the sphere where the
generator's standard-normal latents lie.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class VoiceEncoderConfig:
    n_mels: int = 40
    hidden: int = 256
    layers: int = 3
    embedding: int = 256
    latent_dim: int = 128  # the generator's latent this file maps to (checked against it on load)
    partial_frames: int = 160  # 10 ms frames per partial: Resemblyzer's 1.6 s (the shipped file: ml.import_voice)


class VoiceEncoder(nn.Module):
    def __init__(self, config: VoiceEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(config.n_mels, config.hidden, config.layers, batch_first=True)
        self.linear = nn.Linear(config.hidden, config.embedding)
        self.register_buffer("center", torch.zeros(config.embedding))
        self.register_buffer("to_latent", torch.zeros(config.latent_dim, config.embedding))

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """(B, partial_frames, n_mels) power mel partials -> (B, embedding) unit vectors."""
        _, (hidden, _) = self.lstm(mels)
        e = torch.relu(self.linear(hidden[-1]))
        return e / e.norm(dim=1, keepdim=True).clamp(min=1e-12)

    def latent(self, embedding: torch.Tensor) -> torch.Tensor:
        """(B, embedding) unit speaker embeddings -> (B, latent_dim) latents of norm sqrt(latent_dim)."""
        return voice_latent(embedding, self.center, self.to_latent)


def voice_latent(embedding: torch.Tensor, center: torch.Tensor, to_latent: torch.Tensor) -> torch.Tensor:
    """The map: ``sqrt(latent_dim) * unit(to_latent @ (e - center))`` for (B, embedding) ``embedding``
    (``ml.import_voice.fit_map`` fits ``center`` and ``to_latent``)."""
    z = (embedding - center) @ to_latent.T
    return z * (to_latent.shape[0] ** 0.5 / z.norm(dim=1, keepdim=True).clamp(min=1e-12))
