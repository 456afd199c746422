"""Speech emotion inference shared by evaluation and the service: waves in, probabilities out.

Test-time augmentation: each window is heard at the three speeds training perturbs with
(:data:`ml.audio.SPEED_FACTORS`: 0.9, 1.0, 1.1) and the three probabilities are averaged.
``evaluate_ser --speeds`` measures what the views buy (the figures are in
``weights/ser.md``). They triple the network's work; :func:`ml.models.ser.for_inference` (batch norm folded into the
convolutions, channels-last memory order) pays much of that back (``tests/perf/bench_models.py``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ml import audio, checkpoint
from ml.labels import EMOTIONS
from ml.embed import SpeechEmbedder
from ml.models.ser import SEREnsemble, SERHead, SERNet, for_inference

#: Audio longer than this is cut into windows of this length whose probabilities are averaged
#: (weighted by length), so memory per clip is bounded whatever the duration.
WINDOW_S = 8.0


class EmotionRecognizer:
    """A loaded SER model on a device. ``predict`` takes any batch of decoded clips."""

    def __init__(self, model: SERNet | SEREnsemble, device: torch.device | str = "cpu", *, window_s: float = WINDOW_S,
                 speeds: tuple[float, ...] = audio.SPEED_FACTORS, max_pieces_per_pass: int = 32) -> None:
        assert model.config.n_classes == len(EMOTIONS), "the SER model must predict the 8 project emotions"
        self.model = for_inference(model).to(device)  # the same function, faster
        self.device = torch.device(device)
        self.window_s = window_s
        assert speeds and all(f > 0 for f in speeds), f"speed factors must be positive, got {speeds}"
        self.speeds = tuple(speeds)  # (1.0,): no test-time augmentation
        self.max_pieces_per_pass = max_pieces_per_pass  # bounds activation memory whatever the batch

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: torch.device | str = "cpu", *,
                        speeds: tuple[float, ...] = audio.SPEED_FACTORS,
                        ) -> tuple["EmotionRecognizer | EncoderRecognizer", checkpoint.Loaded]:
        """The recognizer for any SER file: a frozen-encoder head or a log-mel CNN."""
        loaded = checkpoint.load(path, arch=checkpoint.SER_MODELS, labels=EMOTIONS, device="cpu")
        if isinstance(loaded.model, SERHead):
            return EncoderRecognizer(loaded.model), loaded
        loaded.model.to(device)
        return cls(loaded.model, device, speeds=speeds), loaded

    def windows(self, wave: np.ndarray | torch.Tensor) -> list[torch.Tensor]:
        """Trim silence, then cut into windows: the stretches of one clip the network hears."""
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
        owners, pieces, weights = [], [], []
        for i, wave in enumerate(waves):
            for window in self.windows(wave):
                for factor in self.speeds:  # every view of a window carries the window's length
                    owners.append(i)
                    pieces.append(audio.change_speed(window, factor))
                    weights.append(window.shape[-1])
        step = self.max_pieces_per_pass
        logits = torch.cat([self.logits_of_pieces(pieces[i:i + step]) for i in range(0, len(pieces), step)])
        probs = torch.softmax(logits, dim=-1)  # (P, 8)
        weights = torch.tensor(weights, dtype=torch.float32)  # windows count by their length
        owner = torch.tensor(owners)
        out = torch.zeros(len(waves), len(EMOTIONS)).index_add_(0, owner, probs * weights[:, None])
        out /= torch.zeros(len(waves)).index_add_(0, owner, weights)[:, None]
        return out.numpy()


class EncoderRecognizer:
    """A :class:`SERHead` over its frozen encoder's features (``ml.embed``), on CPU.

    Each clip is embedded alone (trimmed, windowed, pooled), so its answer never depends on the
    batch it came in. The encoder runs on CPU in dynamic int8 whatever the host: that is how the
    head's training features were computed, and on CUDA the quantized kernels do not exist.
    """

    def __init__(self, head: SERHead, *, workers: int | None = None) -> None:
        assert head.config.n_classes == len(EMOTIONS), "the SER model must predict the 8 project emotions"
        self.model = head.eval()
        self.embedder = SpeechEmbedder(head.config.encoder, quantized=head.config.quantized)
        self.device = torch.device("cpu")
        # The clips of a batch are embedded side by side, each on one intra-op thread of its own
        # worker: for a small encoder on short clips that uses the cores better than spreading one
        # clip over them, and a clip's numbers are then the same whatever the batch or the caller's
        # thread setting (the setting is each worker thread's own).
        self.workers = workers or max(1, torch.get_num_threads())
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ser-embed",
                                        initializer=torch.set_num_threads, initargs=(1,))

    @torch.inference_mode()
    def predict(self, waves: list[np.ndarray] | list[torch.Tensor]) -> np.ndarray:
        """Probabilities (B, 8) over :data:`ml.labels.EMOTIONS` for B mono clips at the model rate."""
        # rounded to float16, as the training features were cached: serving hears exactly those numbers
        pooled = torch.from_numpy(np.stack(list(self._pool.map(self.embedder.embed, waves))).astype(np.float16))
        # the head too runs clip by clip: a batched matrix product blocks differently by batch size
        logits = torch.cat([self.model(p[None]) for p in pooled])
        return torch.softmax(logits, dim=-1).numpy()
