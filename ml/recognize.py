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


class EmotionRecognizer:
    """The shipped SER: a :class:`SERHead` over its frozen encoder's features (``ml.embed``), on CPU.

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

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> tuple[EmotionRecognizer, checkpoint.Loaded]:
        """The recognizer of an SER file, and what was loaded (its metadata and hash)."""
        loaded = checkpoint.load(path, arch=checkpoint.SER_MODELS, labels=EMOTIONS, device="cpu")
        return cls(loaded.model), loaded

    @torch.inference_mode()
    def predict(self, waves: list[np.ndarray] | list[torch.Tensor]) -> np.ndarray:
        """Probabilities (B, 8) over :data:`ml.labels.EMOTIONS` for B mono clips at the model rate."""
        # rounded to float16, as the training features were cached: serving hears exactly those numbers
        pooled = torch.from_numpy(np.stack(list(self._pool.map(self.embedder.embed, waves))).astype(np.float16))
        # the head too runs clip by clip: a batched matrix product blocks differently by batch size
        logits = torch.cat([self.model(p[None]) for p in pooled])
        return torch.softmax(logits, dim=-1).numpy()
