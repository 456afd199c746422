"""One face per voice: a recording -> its speaker's embedding -> the generator's latent.

The speaker encoder is GE2E as Resemblyzer 0.1.4 ships it (``ml.models.voice``), imported once
into ``weights/voice.pt`` with a map to the face generator's latent fitted on the speech corpora
(``python -m ml.import_voice``; card: ``weights/voice.md``). A clip is cut into 1.6 s partials
(1.3 a second, the last kept if at least 3/4 full, as Resemblyzer's ``embed_utterance``); each
partial is embedded alone and the clip's embedding is their mean, renormalised. So a clip's
answer does not depend on what else is in its batch, and a longer clip gives a steadier voice.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from ml import audio, checkpoint
from ml.models.voice import VoiceEncoder

PARTIALS_PER_S = 1.3
MIN_COVERAGE = 0.75
FRAMES_PER_S = audio.SAMPLE_RATE // audio.WHISPER_HOP


def partial_starts(n_frames: int, size: int) -> list[int]:
    """Where the 1.6 s partials of ``n_frames`` mel frames start (at least one)."""
    step = int(round(FRAMES_PER_S / PARTIALS_PER_S))
    starts = list(range(0, max(1, n_frames - size + step + 1), step))
    if len(starts) > 1 and (n_frames - starts[-1]) / size < MIN_COVERAGE:
        starts.pop()
    return starts


class VoicePrint:
    """A loaded speaker encoder and its latent map. ``embed(wave)`` is the embedding-cache protocol
    of ``ml.embed.cached_embeddings`` (``key``, ``shape``); ``latents(embeddings)`` the faces' z."""

    def __init__(self, model: VoiceEncoder, sha256: str = "", device: torch.device | str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.sha256 = sha256
        self.shape = (model.config.embedding,)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: torch.device | str = "cpu") -> tuple[VoicePrint, checkpoint.Loaded]:
        loaded = checkpoint.load(path, arch="voice-encoder", device=device)
        return cls(loaded.model, loaded.sha256, device), loaded

    @property
    def key(self) -> str:
        """Names what the embeddings are: the network's weights (not its latent map) and the front end."""
        h = hashlib.sha256()
        for name, t in self.model.state_dict().items():
            if name.startswith(("lstm.", "linear.")):
                h.update(name.encode() + t.detach().cpu().numpy().tobytes())
        contract = {"weights": h.hexdigest(), "partials_per_s": PARTIALS_PER_S, "min_coverage": MIN_COVERAGE,
                    **audio.VOICE_FEATURE_PARAMS}
        return "voice-" + hashlib.sha256(json.dumps(contract, sort_keys=True).encode()).hexdigest()[:16]

    @torch.inference_mode()
    def embed(self, wave: np.ndarray | torch.Tensor) -> np.ndarray:
        """(T,) float32 mono at 16 kHz -> (embedding,) float32 unit vector."""
        mel = audio.voice_mel(torch.as_tensor(wave, dtype=torch.float32).to(self.device))
        size = self.model.config.partial_frames
        starts = partial_starts(len(mel), size)
        mel = torch.nn.functional.pad(mel, (0, 0, 0, max(0, starts[-1] + size - len(mel))))
        parts = self.model(torch.stack([mel[s:s + size] for s in starts]))
        e = parts.mean(0)
        return (e / e.norm().clamp(min=1e-12)).cpu().numpy()

    @torch.inference_mode()
    def latents(self, embeddings: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B, embedding) -> (B, latent_dim) float32 on the CPU."""
        e = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32, device=self.device)
        return self.model.latent(e).cpu()
