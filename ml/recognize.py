"""Speech emotion inference shared by evaluation and the service: waves in, probabilities out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ml import audio, checkpoint
from ml.labels import EMOTIONS
from ml.models.ser import SEREnsemble, SERNet

#: Audio longer than this is cut into windows of this length whose probabilities are averaged
#: (weighted by length), so memory per clip is bounded whatever the duration.
WINDOW_S = 8.0


class EmotionRecognizer:
    """A loaded SER model on a device. ``predict`` takes any batch of decoded clips."""

    def __init__(self, model: SERNet | SEREnsemble, device: torch.device | str = "cpu", *, window_s: float = WINDOW_S,
                 max_pieces_per_pass: int = 32) -> None:
        assert model.config.n_classes == len(EMOTIONS), "the SER model must predict the 8 project emotions"
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.window_s = window_s
        self.max_pieces_per_pass = max_pieces_per_pass  # bounds activation memory whatever the batch

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: torch.device | str = "cpu") -> tuple["EmotionRecognizer", checkpoint.Loaded]:
        loaded = checkpoint.load(path, arch=checkpoint.SER_MODELS, labels=EMOTIONS, device=device)
        return cls(loaded.model, device), loaded

    def pieces(self, wave: np.ndarray | torch.Tensor) -> list[torch.Tensor]:
        """Trim silence, then cut into windows: what the network sees of one clip."""
        w = torch.as_tensor(wave, dtype=torch.float32)
        return audio.split_windows(audio.trim_silence(w), self.window_s)

    @torch.inference_mode()
    def logits_of_pieces(self, pieces: list[torch.Tensor]) -> torch.Tensor:
        """(P,) pieces -> (P, 8) logits in one forward pass."""
        batch, lengths = audio.pad_batch(pieces)
        feats, frames = audio.log_mel(batch.to(self.device), lengths.to(self.device))
        return self.model(feats, frames).float().cpu()

    @torch.inference_mode()
    def predict(self, waves: list[np.ndarray] | list[torch.Tensor]) -> np.ndarray:
        """Probabilities (B, 8) over :data:`ml.labels.EMOTIONS` for B mono clips at the model rate."""
        owners, pieces = [], []
        for i, wave in enumerate(waves):
            for piece in self.pieces(wave):
                owners.append(i)
                pieces.append(piece)
        step = self.max_pieces_per_pass
        logits = torch.cat([self.logits_of_pieces(pieces[i:i + step]) for i in range(0, len(pieces), step)])
        probs = torch.softmax(logits, dim=-1)  # (P, 8)
        weights = torch.tensor([p.shape[-1] for p in pieces], dtype=torch.float32)
        owner = torch.tensor(owners)
        out = torch.zeros(len(waves), len(EMOTIONS)).index_add_(0, owner, probs * weights[:, None])
        out /= torch.zeros(len(waves)).index_add_(0, owner, weights)[:, None]
        return out.numpy()
