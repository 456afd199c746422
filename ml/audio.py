"""The log-mel front ends: the one feature contract of the project.

Training, evaluation and the service decode with :mod:`ml.decoding` (its names are re-exported
here, ``audio.decode`` and the rest) and compute features here, so features cannot drift
between them. The constants below are stored in every SER checkpoint (:data:`WHISPER_FEATURE_PARAMS`)
and checked on load.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ml.decoding import (  # noqa: F401  (re-exported: the decoding half of the audio contract)
    BLOCK_SAMPLES, MAX_CHANNELS, MAX_DECODED_SAMPLES, MAX_DURATION_S, MAX_INPUT_RATE, MAX_PEAK,
    MIN_DURATION_S, MIN_INPUT_RATE, SAMPLE_RATE, SILENCE_RMS, AudioDecodeError, AudioError,
    AudioTooLargeError, AudioTooLongError, AudioTooShortError, DecodedAudio, EmptyAudioError,
    InvalidSamplesError, SilentAudioError, UnknownFormatError, UnsupportedSampleRateError, decode,
    decode_container, from_array, resample, resample_stream,
)

#: Silence trimming, the same for every front end: frames of 25 ms every 10 ms; frames more than
#: TRIM_TOP_DB below the loudest are silence; TRIM_MARGIN_S of context is kept either side.
TRIM_FRAME = 400
TRIM_HOP = 160
TRIM_TOP_DB = 40.0
TRIM_MARGIN_S = 0.1

#: Whisper's front end (its encoder's input): 25 ms Hann frames every 10 ms, 80 Slaney mel bins.
WHISPER_N_FFT = 400
WHISPER_HOP = 160
WHISPER_N_MELS = 80
WHISPER_WINDOW = "hann-periodic"

#: The speaker encoder's front end (Resemblyzer's GE2E, ``ml.models.voice``): the same frames, 40
#: Slaney mel bins of power (no log), the clip at -30 dBFS RMS, as its training audio was.
VOICE_N_MELS = 40
VOICE_LEVEL_RMS = 10 ** (-30 / 20)

#: Speed factors of training's speed perturbation (``ml.augment``).
SPEED_FACTORS = (0.9, 1.0, 1.1)

#: Every clip the Whisper-based SER hears is scaled to this RMS (about -26 dBFS) after trimming:
#: Whisper's log-mel is absolute, so without it a quieter recording would be a different input.
LEVEL_RMS = 0.05

#: What the SER hears: stored in its checkpoints and checked on load.
WHISPER_FEATURE_PARAMS: dict[str, float | int | str] = {
    "sample_rate": SAMPLE_RATE,
    "n_fft": WHISPER_N_FFT,
    "hop_length": WHISPER_HOP,
    "n_mels": WHISPER_N_MELS,
    "f_min": 0.0,
    "f_max": SAMPLE_RATE / 2,
    "window": WHISPER_WINDOW,
    "center": True,
    "mel_scale": "slaney",
    "log": "log10, floor peak-8, (x+4)/4",
    "level_rms": LEVEL_RMS,
    "trim_top_db": TRIM_TOP_DB,
    "trim_margin_s": TRIM_MARGIN_S,
}

#: What the speaker encoder hears: stored in its checkpoint and checked on load.
VOICE_FEATURE_PARAMS: dict[str, float | int | str] = {
    **{k: WHISPER_FEATURE_PARAMS[k] for k in ("sample_rate", "n_fft", "hop_length", "f_min", "f_max", "window",
                                               "center", "mel_scale", "trim_top_db", "trim_margin_s")},
    "n_mels": VOICE_N_MELS,
    "log": "none (power)",
    "level_rms": VOICE_LEVEL_RMS,
}


def trim_silence(wave: torch.Tensor) -> torch.Tensor:
    """Cut leading and trailing silence: keep frames within :data:`TRIM_TOP_DB` of the loudest.

    ``wave`` is (T,). Returns a view of at least :data:`MIN_DURATION_S` (or the whole clip if
    shorter). Padding a recording with silence therefore does not change what the model hears.
    """
    n = wave.shape[-1]
    if n <= TRIM_FRAME:
        return wave
    frames = wave.unfold(0, TRIM_FRAME, TRIM_HOP)  # (F, TRIM_FRAME)
    energy = frames.pow(2).mean(dim=1)
    db = 10 * torch.log10(energy + 1e-20)
    voiced = torch.nonzero(db > db.max() - TRIM_TOP_DB).flatten()
    margin = int(TRIM_MARGIN_S * SAMPLE_RATE)
    start = max(0, int(voiced[0]) * TRIM_HOP - margin)
    end = min(n, int(voiced[-1]) * TRIM_HOP + TRIM_FRAME + margin)
    need = int(MIN_DURATION_S * SAMPLE_RATE)
    if end - start < need:  # widen symmetrically to the minimum the model takes
        grow = need - (end - start)
        start = max(0, start - grow // 2)
        end = min(n, start + need)
        start = max(0, end - need)
    return wave[start:end]


def change_speed(wave: torch.Tensor, factor: float) -> torch.Tensor:
    """Play a (T,) wave ``factor`` times faster by linear interpolation: tempo and pitch change
    together, as in training's speed perturbation. ``factor`` 1.0 returns the wave itself."""
    if factor == 1.0:
        return wave
    n = int(wave.shape[-1] / factor)
    return torch.nn.functional.interpolate(wave[None, None], size=n, mode="linear", align_corners=False)[0, 0]


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's default, htk=False)."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_region = hz >= 1000.0
    return np.where(log_region, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3))


def mel_filterbank(n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters, Slaney-normalised (equal area).

    Equal to ``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax)`` (a test checks it), written
    out so serving needs no librosa and its numba/LLVM chain (~400 MB of the image).
    """
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, n_fft // 2 + 1)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _mel_basis(n_mels: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    fb = mel_filterbank(WHISPER_N_FFT, n_mels, 0.0, SAMPLE_RATE / 2)
    return torch.from_numpy(fb).to(device), torch.hann_window(WHISPER_N_FFT, periodic=True, device=device)


def _power_spectrum(wave: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """|STFT|^2 of a (T,) wave: centred 25 ms frames every 10 ms, (n_fft // 2 + 1, T // 160 + 1)."""
    assert wave.dim() == 1, f"wave must be (T,), got {tuple(wave.shape)}"
    return torch.stft(wave, WHISPER_N_FFT, WHISPER_HOP, window=window, return_complex=True).abs().pow(2)


def whisper_log_mel(wave: torch.Tensor, band_limit_hz: float | None = None) -> torch.Tensor:
    """Whisper's log-mel of one (T,) clip at :data:`SAMPLE_RATE`: (1, 80, T // 160) float32.

    As ``whisper.audio.log_mel_spectrogram`` computes it (centred 25 ms Hann frames every 10 ms,
    80 Slaney mel bins to 8 kHz, log10, floored 8 decades below the clip's peak, scaled to about
    [-1, 1]), on the clip alone rather than padded to 30 s: the encoder then works on the
    clip's own frames, which is what keeps it fast on short speech. ``band_limit_hz`` (an
    evaluation option, ``python -m ml.evaluate_ser --band-limit-hz``; the shipped front end has
    none) drops the spectrum above it, as a telephone band does. Computed on ``wave``'s device.
    """
    fb, window = _mel_basis(WHISPER_N_MELS, wave.device)
    power = _power_spectrum(wave, window)[..., :-1]
    if band_limit_hz is not None:
        power = power * (torch.fft.rfftfreq(WHISPER_N_FFT, 1 / SAMPLE_RATE, device=wave.device) <= band_limit_hz)[:, None]
    log_spec = torch.clamp(fb @ power, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0)[None]


def voice_mel(wave: torch.Tensor) -> torch.Tensor:
    """What the speaker encoder hears of one (T,) clip: (T // 160 + 1, 40) power mel frames.

    Trimmed of silence and scaled to :data:`VOICE_LEVEL_RMS` first, as Resemblyzer's own front end
    does (``librosa.feature.melspectrogram`` on a -30 dBFS clip; Resemblyzer also cuts pauses
    inside the clip with webrtcvad, which this does not: its C extension does not build on the
    slim image).
    """
    w = trim_silence(wave)
    w = w * (VOICE_LEVEL_RMS / w.pow(2).mean().sqrt().clamp(min=1e-8))
    fb, window = _mel_basis(VOICE_N_MELS, w.device)
    return (fb @ _power_spectrum(w, window)).T


def split_windows(wave: torch.Tensor, window_s: float, min_last_s: float = 2.0) -> list[torch.Tensor]:
    """Cut a long (T,) wave into consecutive windows of ``window_s`` so memory stays bounded.

    A last piece shorter than ``min_last_s`` is joined to the window before it.
    """
    size = int(window_s * SAMPLE_RATE)
    if wave.shape[-1] <= size:
        return [wave]
    pieces = list(torch.split(wave, size))
    if len(pieces) > 1 and pieces[-1].shape[-1] < int(min_last_s * SAMPLE_RATE):
        last = pieces.pop()
        pieces[-1] = torch.cat([pieces[-1], last])
    return pieces
