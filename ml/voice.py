"""One face per voice: a recording -> its speaker's embedding -> the generator's latent.

The speaker encoder is GE2E as Resemblyzer 0.1.4 ships it (``ml.models.voice``), imported once
into ``weights/voice.pt`` with a map to the face generator's latent fitted on the speech corpora
(``python -m ml.import_voice``; card: ``weights/voice.md``). The network hears one partial of a
clip, the file's ``partial_frames`` (1 s in the shipped file) at its centre once silence is
trimmed (a shorter clip is padded with silence). Resemblyzer averages 1.6 s partials every 0.77 s
over the whole clip; on a 4 s clip its three partials cost 29 ms on one core against 13 ms for
one 1.6 s partial and about 8 ms for 1 s (the LSTM's steps are sequential, and one sequence takes
the fast matrix-vector path), which keeps ``/speech-to-face`` within its latency budget.
A clip's answer never depends on what else is in its batch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from ml import audio, checkpoint
from ml.models.voice import VoiceEncoder

PARTIAL = "centre"


def centre_partial(mel: torch.Tensor, size: int) -> torch.Tensor:
    """The ``size`` frames at the centre of (F, n_mels) ``mel``; a shorter one padded with zeros (silence)."""
    if len(mel) < size:
        return torch.nn.functional.pad(mel, (0, 0, 0, size - len(mel)))
    start = (len(mel) - size) // 2
    return mel[start:start + size]


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
        contract = {"weights": h.hexdigest(), "partial": PARTIAL, "partial_frames": self.model.config.partial_frames,
                    **audio.VOICE_FEATURE_PARAMS}
        return "voice-" + hashlib.sha256(json.dumps(contract, sort_keys=True).encode()).hexdigest()[:16]

    @torch.inference_mode()
    def embed(self, wave: np.ndarray | torch.Tensor) -> np.ndarray:
        """(T,) float32 mono at 16 kHz -> (embedding,) float32 unit vector."""
        mel = audio.voice_mel(torch.as_tensor(wave, dtype=torch.float32).to(self.device))
        return self.model(centre_partial(mel, self.model.config.partial_frames)[None])[0].cpu().numpy()

    @torch.inference_mode()
    def latents(self, embeddings: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B, embedding) -> (B, latent_dim) float32 on the CPU."""
        e = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32, device=self.device)
        return self.model.latent(e).cpu()
