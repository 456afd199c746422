"""Speech emotion inference shared by evaluation and the service: waves in, probabilities out."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ml import checkpoint
from ml.embed import SpeechEmbedder
from ml.labels import EMOTIONS
from ml.models.ser import SERHead

#: A stream's speaker mean starts as this many windows' worth of the head's training mean
#: (:class:`SpeakerNorm`). Fixed before scoring; 1, 3 and 10 scored within 0.2 points of each
#: other (weights/ser.md, "Live streams").
SPEAKER_PRIOR_WINDOWS = 3


class SpeakerNorm:
    """One speaker's running mean of the encoder statistics, for a live stream (one speaker).

    Every window's pooled statistics are moved by (the head's training mean - this speaker's mean
    so far, this window included), the speaker's mean shrunk toward the training mean by
    :data:`SPEAKER_PRIOR_WINDOWS` windows: the voice's and the microphone's own offset is taken
    out before the head hears it. Replaying each held-out speaker's clips as a stream, leave one
    corpus out, raised the mean UA from 45.3% clip by clip to 52.7% (weights/ser.md, "Live streams").
    A clip heard alone (``/emotion``) has no speaker history and is heard as it is.
    """

    def __init__(self, head: SERHead) -> None:
        self.prior = head.mean.double().clone()
        self.total = torch.zeros_like(self.prior)
        self.windows = 0

    def __call__(self, pooled: torch.Tensor) -> torch.Tensor:
        """(layers, 2, width) pooled statistics of the stream's next window -> the same, shifted."""
        x = pooled.double().flatten()
        self.total += x
        self.windows += 1
        mean = (self.total + SPEAKER_PRIOR_WINDOWS * self.prior) / (self.windows + SPEAKER_PRIOR_WINDOWS)
        return (x - mean + self.prior).float().reshape(pooled.shape)


class EmotionRecognizer:
    """The shipped SER: a :class:`SERHead` over its frozen encoder's features (``ml.embed``).

    Each clip is embedded alone (trimmed, windowed, pooled), so its answer never depends on the
    batch it came in. On a CPU the encoder runs in dynamic int8, as the head's training features
    were computed. On CUDA it runs in float32 on the GPU (the quantized kernels are CPU-only);
    the pooled statistics come back to the CPU, are rounded to float16 as on the CPU path, and the
    head runs there. The float path's answers equal the int8 path's within the tolerance
    ``tests/ml/test_recognize.py`` states and checks (it runs the float path on the CPU, the same
    code as on the GPU).
    """

    def __init__(self, head: SERHead, *, workers: int | None = None, device: str | torch.device = "cpu",
                 quantized: bool | None = None) -> None:
        assert head.config.n_classes == len(EMOTIONS), "the SER model must predict the 8 project emotions"
        self.model = head.eval()
        self.device = torch.device(device)
        # int8 on the CPU unless told otherwise (the float path on the CPU is what tests compare against)
        quantized = (self.device.type == "cpu" and head.config.quantized) if quantized is None else quantized
        self.embedder = SpeechEmbedder(head.config.encoder, quantized=quantized, device=self.device)
        # On a CPU the clips of a batch are embedded side by side, each on one intra-op thread of its
        # own worker: for a small encoder on short clips that uses the cores better than spreading
        # one clip over them, and a clip's numbers are then the same whatever the batch or the
        # caller's thread setting (the setting is each worker thread's own). A GPU takes them in turn.
        self.workers = workers or (max(1, torch.get_num_threads()) if self.device.type == "cpu" else 1)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ser-embed",
                                        initializer=torch.set_num_threads, initargs=(1,))

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu",
                        quantized: bool | None = None) -> tuple[EmotionRecognizer, checkpoint.Loaded]:
        """The recognizer of an SER file on ``device`` (the encoder's; the head stays on the CPU),
        and what was loaded (its metadata and hash)."""
        loaded = checkpoint.load(path, arch=checkpoint.SER_MODELS, labels=EMOTIONS, device="cpu")
        return cls(loaded.model, device=device, quantized=quantized), loaded

    def close(self) -> None:
        """Stop the embedding workers (waiting for a batch in hand); the recognizer is unusable after."""
        self._pool.shutdown(wait=True)

    def speaker(self) -> SpeakerNorm:
        """A new stream's :class:`SpeakerNorm`, for :meth:`predict`'s ``speakers``."""
        return SpeakerNorm(self.model)

    @torch.inference_mode()
    def predict(self, waves: list[np.ndarray] | list[torch.Tensor],
                speakers: list[SpeakerNorm | None] | None = None) -> np.ndarray:
        """Probabilities (B, 8) over :data:`ml.labels.EMOTIONS` for B mono clips at the model rate;
        a clip with a :class:`SpeakerNorm` in ``speakers`` is heard as that stream's next window."""
        # rounded to float16, as the training features were cached: serving hears exactly those numbers
        pooled = torch.from_numpy(np.stack(list(self._pool.map(self.embedder.embed, waves))).astype(np.float16))
        speakers = speakers or [None] * len(pooled)
        # the head too runs clip by clip: a batched matrix product blocks differently by batch size
        logits = torch.cat([self.model((p if s is None else s(p))[None]) for p, s in zip(pooled, speakers)])
        return torch.softmax(logits, dim=-1).numpy()
