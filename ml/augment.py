"""Training views and evaluation perturbations of a speech clip: the one place that says what
"noisy", "telephone" or "quieter" means, for ``ml.train_ser`` (random views) and
``ml.evaluate_ser`` (fixed perturbations of held-out clips) alike."""

from __future__ import annotations

import logging

import numpy as np
import torch

from ml import audio, codecs

log = logging.getLogger(__name__)
SR = audio.SAMPLE_RATE
TELEPHONE_BAND_HZ = (300.0, 3400.0)
PERTURBATIONS = ("clean", "noise_10db", "telephone_8k", "gain_-20db", "pad_2x", "amr_nb", "amr_wb")
#: The codecs a training view may go through last (``ml.codecs``), each with the bit rates drawn
#: from: the phone codecs AMR-NB (3GP, 8 kHz) and AMR-WB, browsers' Opus (WebM), and AAC (M4A).
CODEC_VIEWS = {"3gp": (4_750, 5_900, 7_400, 10_200, 12_200), "awb": codecs.AMR_WB_MODES,
               "webm": (12_000, 16_000, 24_000, 32_000), "m4a": (24_000, 32_000, 48_000, 64_000)}
CODEC_P = 0.5
#: The perturbations that go through a codec, by the codec (``ml.codecs.CONTAINERS``) they need.
PERTURBATION_CODECS = {"amr_nb": "3gp", "amr_wb": "awb"}


def perturbations(dry_run: bool = False) -> tuple[str, ...]:
    """The :data:`PERTURBATIONS` an evaluation scores. Each needs its codec's encoder on this
    machine: a real run without one stops, naming the library to install; a dry run (a smoke test
    of the code path, not a measurement) leaves that perturbation out, with a warning."""
    missing = [k for k in PERTURBATIONS if k in PERTURBATION_CODECS and not codecs.available(PERTURBATION_CODECS[k])]
    if missing and not dry_run:
        raise codecs.CodecUnavailable(f"the {', '.join(missing)} perturbation needs {codecs.AMR_WB_LIBRARY}: "
                                      f"{codecs.AMR_WB_INSTALL} (or run with --dry-run to leave it out)")
    if missing:
        log.warning("dry run: no encoder for %s on this machine (%s); left out", ", ".join(missing), codecs.AMR_WB_INSTALL)
    return tuple(k for k in PERTURBATIONS if k not in missing)


def _coloured_noise(n: int, kind: int, g: torch.Generator) -> torch.Tensor:
    """White (0), pink (1) or brown (2) noise of n samples, unit RMS."""
    white = torch.randn(n, generator=g)
    if kind == 0:
        return white
    spec = torch.fft.rfft(white)
    f = torch.arange(spec.shape[0], dtype=torch.float32).clamp(min=1)
    spec = spec / (f.sqrt() if kind == 1 else f)
    noise = torch.fft.irfft(spec, n)
    return noise / noise.pow(2).mean().sqrt().clamp(min=1e-8)


def band_limit(wave: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Zero every frequency outside [low, high] Hz of a (T,) wave at the model rate."""
    spec = torch.fft.rfft(wave)
    freqs = torch.fft.rfftfreq(wave.shape[-1], 1 / SR)
    return torch.fft.irfft(spec * ((freqs >= low) & (freqs <= high)), wave.shape[-1])


def augment_wave(wave: torch.Tensor, g: torch.Generator, max_len: int) -> torch.Tensor:
    """One random training view of a trimmed (T,) clip."""
    r = lambda: float(torch.rand(1, generator=g))  # noqa: E731
    wave = audio.change_speed(wave, audio.SPEED_FACTORS[int(r() * len(audio.SPEED_FACTORS))])
    if wave.shape[-1] > max_len:
        start = int(r() * (wave.shape[-1] - max_len))
        wave = wave[start:start + max_len]
    if r() < 0.25:
        wave = band_limit(wave, *TELEPHONE_BAND_HZ)
    if r() < 0.5:
        rms = wave.pow(2).mean().sqrt()
        snr_db = 5 + 25 * r()
        wave = wave + _coloured_noise(wave.shape[-1], int(r() * 3), g) * rms / 10 ** (snr_db / 20)
    return wave * 10 ** ((-25 + 31 * r()) / 20)


def random_view(wave: np.ndarray, seed: int, codec: bool = False) -> np.ndarray:
    """:func:`augment_wave` of a whole (T,) numpy clip, drawn from ``seed``: a training view
    (speed, telephone band, coloured noise, gain) that is the same every time it is computed.
    With ``codec``, the view then goes through one of :data:`CODEC_VIEWS` (a random codec and bit
    rate) with probability :data:`CODEC_P`, decoded by the service's own decoder (a view the
    codec turns to silence is kept as it was)."""
    g = torch.Generator().manual_seed(seed)
    view = augment_wave(torch.from_numpy(wave), g, max_len=wave.shape[-1] * 2).numpy().astype(np.float32)
    rng = np.random.default_rng([seed, 1])
    if codec and rng.random() < CODEC_P:
        kind = sorted(CODEC_VIEWS)[rng.integers(len(CODEC_VIEWS))]
        rates = CODEC_VIEWS[kind]
        try:
            view = codecs.round_trip(view, kind, int(rates[rng.integers(len(rates))]))
        except audio.AudioError:  # a view quiet enough that the codec leaves silence: kept without it
            pass
    return view


def spec_augment(feats: torch.Tensor, frames: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Two frequency masks (<= 8 bins) and two time masks (<= 10% of the clip) per example."""
    feats = feats.clone()
    b, m, _ = feats.shape
    for i in range(b):
        for _ in range(2):
            w = int(torch.randint(0, 9, (1,), generator=g))
            f0 = int(torch.randint(0, m - w + 1, (1,), generator=g))
            feats[i, f0:f0 + w] = 0
            tmax = max(1, int(frames[i]) // 10)
            w = int(torch.randint(0, tmax + 1, (1,), generator=g))
            t0 = int(torch.randint(0, max(1, int(frames[i]) - w), (1,), generator=g))
            feats[i, :, t0:t0 + w] = 0
    return feats


def perturb(wave: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """A perturbed copy of a (T,) clip at the model rate, decoded back through the real front door."""
    if kind == "clean":
        return wave
    if kind == "noise_10db":
        rng = np.random.default_rng(seed)
        rms = np.sqrt(np.mean(wave ** 2))
        return (wave + rng.standard_normal(len(wave)).astype(np.float32) * rms / 10 ** (10 / 20)).astype(np.float32)
    if kind == "telephone_8k":
        narrow = band_limit(torch.from_numpy(wave), *TELEPHONE_BAND_HZ).numpy()
        at_8k = audio.resample(narrow, audio.SAMPLE_RATE, 8000)
        return audio.from_array(at_8k, 8000).samples
    if kind == "gain_-20db":
        return (wave * 0.1).astype(np.float32)
    if kind == "amr_nb":  # an Android 3GP voice recording, 12.2 kbit/s
        return codecs.round_trip(wave, "3gp", 12_200)
    if kind == "amr_wb":  # wideband AMR, 23.85 kbit/s
        return codecs.round_trip(wave, "awb", 23_850)
    if kind == "pad_2x":
        half = len(wave) // 2
        return np.concatenate([np.zeros(half, np.float32), wave, np.zeros(len(wave) - half, np.float32)])
    raise ValueError(f"unknown perturbation {kind!r}")
