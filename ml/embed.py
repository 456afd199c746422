"""The frozen speech front end of the SER: a clip -> pooled statistics of every layer of a
pretrained Whisper encoder, and a resumable on-disk cache of them for training and evaluation.

A clip is trimmed of leading and trailing silence (``ml.audio.trim_silence``, as everywhere),
turned into Whisper's log-mel and run through the encoder alone, clip by clip: one clip's
numbers never depend on what else is in its batch. Each layer's frames are pooled to their mean
and standard deviation, so a clip becomes one (layers + 1, 2, width) array whatever its length.
On CPU the encoder's linear layers run in dynamic int8 (``quantized``), several times faster
than float32 (``weights/ser.md``); the head is trained on features computed the same way, so
training and serving hear the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ml import audio, pretrained
from ml.augment import perturb, random_view

#: The training views' cache names: without codecs, and with (``ml.augment.random_view``).
TRAIN_VIEWS = ("train_view", "train_view_codec")

log = logging.getLogger(__name__)

#: Longest stretch the encoder hears at once; longer audio is pooled over consecutive windows.
#: Whisper's positions cover 30 s; the training clips are all shorter than 10 s.
WINDOW_S = 8.0


class SpeechEmbedder:
    """``embed(wave)``: (T,) float32 mono at :data:`ml.audio.SAMPLE_RATE` -> (L+1, 2, D) float32."""

    def __init__(self, encoder: str, *, quantized: bool = True, band_limit_hz: float | None = None,
                 device: str | torch.device = "cpu") -> None:
        self.name, self.quantized, self.band_limit_hz = encoder, quantized, band_limit_hz
        self.device = torch.device(device)
        if quantized and self.device.type != "cpu":
            raise ValueError("the int8 encoder runs on the CPU only; on another device use quantized=False")
        model = pretrained.load_encoder(encoder)
        if quantized:
            with warnings.catch_warnings():  # torch points at torchao for new code; the eager API is what runs here
                warnings.simplefilter("ignore")
                model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model.to(self.device).eval()
        config = pretrained.ENCODERS[encoder].config
        self.shape = (config.layers + 1, 2, config.width)

    @property
    def key(self) -> str:
        """Names what the features are: the encoder, its precision and the front end's parameters."""
        spec = pretrained.ENCODERS[self.name]
        contract = {"encoder": self.name, "sha256": [p[2] for p in spec.parts], "quantized": self.quantized,
                    "window_s": WINDOW_S, **audio.WHISPER_FEATURE_PARAMS}
        if self.band_limit_hz is not None:  # only when set: the shipped front end's caches keep their key
            contract["band_limit_hz"] = self.band_limit_hz
        return hashlib.sha256(json.dumps(contract, sort_keys=True).encode()).hexdigest()[:16]

    @torch.inference_mode()
    def embed(self, wave: np.ndarray | torch.Tensor) -> np.ndarray:
        wave = torch.as_tensor(wave, dtype=torch.float32).to(self.device)
        return pooled_statistics(self.model, *front_end(wave, self.band_limit_hz)).cpu().numpy()


def front_end(wave: torch.Tensor, band_limit_hz: float | None = None) -> tuple[list[torch.Tensor], list[int]]:
    """A decoded (T,) clip -> the log-mel of each :data:`WINDOW_S` window and its length in samples:
    silence trimmed, the level set to ``audio.LEVEL_RMS``, Whisper's log-mel per window."""
    w = audio.trim_silence(wave)
    w = w * (audio.LEVEL_RMS / w.pow(2).mean().sqrt().clamp(min=1e-8))
    windows = audio.split_windows(w, WINDOW_S)
    return [audio.whisper_log_mel(piece, band_limit_hz) for piece in windows], [piece.shape[-1] for piece in windows]


def pooled_statistics(model: torch.nn.Module, mels: list[torch.Tensor], lengths: list[int]) -> torch.Tensor:
    """(L+1, 2, D): every hidden state's mean and standard deviation over frames, per window, then
    averaged over the windows weighted by their length. Differentiable: a fine-tuning probe runs
    the served path (``docs/experiments/scripts/ser_encoder_finetune.py``)."""
    stats = []
    for mel in mels:
        states = model(mel)  # (L+1, T', D)
        stats.append(torch.stack([states.mean(1), states.std(1)], dim=1))  # (L+1, 2, D)
    if len(stats) == 1:
        return stats[0]
    wts = torch.tensor(lengths, dtype=torch.float32, device=stats[0].device)
    return (torch.stack(stats) * (wts / wts.sum())[:, None, None, None]).sum(0)


def cached_embeddings(paths: list[Path], embedder: SpeechEmbedder, cache: Path, *, every: int = 500,
                      perturbation: str = "clean") -> np.ndarray:
    """(N, L+1, 2, D) float16 features of the files at ``paths``, computed once per front end.

    ``perturbation`` (a name of :data:`ml.augment.PERTURBATIONS`, or one of :data:`TRAIN_VIEWS`
    for one random training view per clip, :func:`ml.augment.random_view`, without or with a
    codec) alters each decoded clip
    first, seeded by its index. Stored as ``cache/<front end key>/<clip list
    hash>.npy``; an interrupted run leaves ``.partial.npy`` every ``every`` clips and resumes.
    """
    # the clip list by absolute path: the same files reached through another relative path share a cache
    names = [str(Path(p).resolve()) for p in paths] + ([] if perturbation == "clean" else [perturbation])
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
    folder = Path(cache) / embedder.key
    folder.mkdir(parents=True, exist_ok=True)
    done_path, part_path = folder / f"{digest}.npy", folder / f"{digest}.partial.npy"
    if done_path.exists():
        return np.load(done_path)
    out = np.zeros((len(paths), *embedder.shape), np.float16)
    start = 0
    if part_path.exists():
        part = np.load(part_path)
        start = len(part)
        out[:start] = part
        log.info("resuming the feature cache at clip %d of %d", start, len(paths))
    t0 = time.time()
    for i in range(start, len(paths)):
        wave = audio.decode(paths[i]).samples
        out[i] = embedder.embed(random_view(wave, seed=i, codec=perturbation == TRAIN_VIEWS[1])
                                if perturbation in TRAIN_VIEWS
                                else perturb(wave, perturbation, seed=i))  # "clean" passes through
        if (i + 1) % every == 0:
            np.save(part_path, out[:i + 1])
            log.info("features: %d / %d clips (%.0f s)", i + 1, len(paths), time.time() - t0)
    np.save(done_path, out)
    part_path.unlink(missing_ok=True)
    return out
