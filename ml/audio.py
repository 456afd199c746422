"""Audio decoding and the log-mel front-end: the one feature contract of the project.

Training, evaluation and the service all call :func:`decode` / :func:`prepare` and
:func:`log_mel`, so features cannot drift between them. The constants below are stored in every
SER checkpoint (:data:`FEATURE_PARAMS`) and checked on load.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr
import torch

SAMPLE_RATE = 16_000  # model rate: RAVDESS copy is 16 kHz, speech carries little above 8 kHz
N_FFT = 512
WIN_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms
N_MELS = 64
F_MIN = 20.0
F_MAX = 8_000.0
WINDOW = "hann-periodic"
LOG_EPS = 1e-10  # tiny: a gain change must only shift log-mel by a constant (removed by CMN)
NORM_EPS = 1e-5  # added to the clip's variance before the std scaling
TRIM_TOP_DB = 40.0  # frames more than 40 dB below the loudest frame count as silence
TRIM_MARGIN_S = 0.1  # keep this much context either side of the voiced region

WHISPER_N_FFT = 400  # Whisper's front end: 25 ms frames, 80 mel bins (its encoder's input)
WHISPER_N_MELS = 80

#: Speed factors of training's speed perturbation, which inference averages over (test-time
#: augmentation, :class:`ml.recognize.EmotionRecognizer`).
SPEED_FACTORS = (0.9, 1.0, 1.1)

MIN_DURATION_S = 0.5
MAX_DURATION_S = 60.0
MIN_INPUT_RATE = 4_000
MAX_INPUT_RATE = 384_000
#: Below this RMS (after removing DC) a recording is silence: about -70 dBFS. The quietest
#: RAVDESS clips (actors 09 and 20) peak near -40 dBFS and stay far above it.
SILENCE_RMS = 10 ** (-70 / 20)
#: Decoding reads blocks of about this many samples (all channels together): 1 MiB of float32.
BLOCK_SAMPLES = 1 << 18
#: The most channels a recording may have (libsndfile reads up to 1024; microphones give 1-8).
MAX_CHANNELS = 64
#: The most samples (frames x channels) one recording may decode to: 60 s of 8 channels at
#: 96 kHz fit, a 255-channel 192 kHz bomb does not. Memory is bounded by blocks whatever this is;
#: this bounds the CPU time a small compressed file can cost.
MAX_DECODED_SAMPLES = 1 << 26
#: Float samples beyond this magnitude (60 dB over full scale) are not a recording but garbage:
#: they overflow the features (a peak near 1e19 makes float32 energies infinite).
MAX_PEAK = 1000.0
SF_ERR_UNRECOGNISED_FORMAT = 1  # libsndfile's code for "Format not recognised"

FEATURE_PARAMS: dict[str, float | int | str] = {
    "sample_rate": SAMPLE_RATE,
    "n_fft": N_FFT,
    "win_length": WIN_LENGTH,
    "hop_length": HOP_LENGTH,
    "n_mels": N_MELS,
    "f_min": F_MIN,
    "f_max": F_MAX,
    "log_eps": LOG_EPS,
    "window": WINDOW,
    "center": False,
    "mel_scale": "slaney",
    "trim_top_db": TRIM_TOP_DB,
    "trim_margin_s": TRIM_MARGIN_S,
    "normalization": "utterance-mean-per-bin/global-std",
    "norm_eps": NORM_EPS,
}

#: Every clip the Whisper-based SER hears is scaled to this RMS (about -26 dBFS) after trimming:
#: Whisper's log-mel is absolute, so without it a quieter recording would be a different input.
LEVEL_RMS = 0.05

#: What the Whisper-based SER hears: stored in its checkpoints and checked on load, like the above.
WHISPER_FEATURE_PARAMS: dict[str, float | int | str] = {
    "sample_rate": SAMPLE_RATE,
    "n_fft": WHISPER_N_FFT,
    "hop_length": HOP_LENGTH,
    "n_mels": WHISPER_N_MELS,
    "f_min": 0.0,
    "f_max": SAMPLE_RATE / 2,
    "window": WINDOW,
    "center": True,
    "mel_scale": "slaney",
    "log": "log10, floor peak-8, (x+4)/4",
    "level_rms": LEVEL_RMS,
    "trim_top_db": TRIM_TOP_DB,
    "trim_margin_s": TRIM_MARGIN_S,
}


class AudioError(ValueError):
    """Base class: the audio cannot be used. Subclasses name the problem."""


class AudioDecodeError(AudioError):
    """The bytes are not audio that libsndfile (or, for other containers, FFmpeg) can decode."""


class UnknownFormatError(AudioDecodeError):
    """libsndfile does not recognise the container at all (it may still be audio FFmpeg reads)."""


class EmptyAudioError(AudioError):
    """The audio holds no samples."""


class InvalidSamplesError(AudioError):
    """The audio holds NaN or infinite samples."""


class AudioTooShortError(AudioError):
    """Shorter than :data:`MIN_DURATION_S`."""


class AudioTooLongError(AudioError):
    """Longer than the allowed maximum duration."""


class SilentAudioError(AudioError):
    """The audio is (digitally) silent: nothing to recognise."""


class AudioTooLargeError(AudioError):
    """More channels or decoded samples than the decoding budget allows."""


class UnsupportedSampleRateError(AudioError):
    """The sample rate is outside what we resample from."""


@dataclass(frozen=True)
class DecodedAudio:
    """Mono float32 samples at :data:`SAMPLE_RATE` plus what the input was."""

    samples: np.ndarray  # (T,) float32 at SAMPLE_RATE
    input_sample_rate: int
    channels: int
    duration_s: float


def decode(source: bytes | str | Path | BinaryIO, *, max_duration_s: float = MAX_DURATION_S,
           max_samples: int = MAX_DECODED_SAMPLES) -> DecodedAudio:
    """Decode any file libsndfile reads (WAV PCM/float, FLAC, OGG, MP3...) to model input.

    The memory it needs does not grow with the channel count or the sample rate: the header is
    checked first (rate, channels, and the frames it claims against ``max_duration_s`` and
    ``max_samples``), then the file is read in blocks of about :data:`BLOCK_SAMPLES` samples,
    each validated, mixed to mono and resampled before the next is read. Peak memory is the mono
    16 kHz result plus one block, whatever the input; a header that lies is caught by the same
    limits while reading. ``source`` may be bytes, a path or a binary file object (a spooled
    upload). Raises an :class:`AudioError` subclass.
    """
    fileobj = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        with sf.SoundFile(fileobj) as f:
            sr, channels = int(f.samplerate), int(f.channels)
            stream = _MonoStream(sr, channels, max_duration_s=max_duration_s, max_samples=max_samples)
            stream.check_declared(int(f.frames))
            while True:
                block = f.read(frames=stream.block_frames, dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                stream.feed(block)
    except AudioError:
        raise
    except (sf.LibsndfileError, EOFError) as exc:  # only what libsndfile says of bad bytes; a bug stays a bug
        reason = getattr(exc, "error_string", None) or str(exc).split(": ")[-1]
        unknown = getattr(exc, "code", None) == SF_ERR_UNRECOGNISED_FORMAT
        raise (UnknownFormatError if unknown else AudioDecodeError)(f"not decodable audio: {reason}") from exc
    return stream.finish()


#: PyAV frame formats -> the scale that brings their integers to [-1, 1) (floats: 1).
_AV_SCALE = {"u8": 128.0, "u8p": 128.0, "s16": 32768.0, "s16p": 32768.0, "s32": 2.0**31, "s32p": 2.0**31,
             "s64": 2.0**63, "s64p": 2.0**63, "flt": 1.0, "fltp": 1.0, "dbl": 1.0, "dblp": 1.0}


def decode_container(source: bytes | str | Path | BinaryIO, *, max_duration_s: float = MAX_DURATION_S,
                     max_samples: int = MAX_DECODED_SAMPLES) -> DecodedAudio:
    """Decode what libsndfile does not read, with PyAV (FFmpeg): AAC in M4A, MP4 and MOV, Opus and
    Vorbis in WebM or Matroska, AMR-NB/WB in 3GP, and the rest of FFmpeg's audio formats.

    The first audio stream is decoded frame by frame into the same block path as :func:`decode`
    (:class:`_MonoStream`): the declared rate, channels and duration are checked first, and the
    decoded frames count against ``max_duration_s`` and ``max_samples`` as they come, so a
    header that lies stops at the limit. A stream that changes its rate or channels midway, or
    that ends well before the duration its header declares (a cut or damaged file, which FFmpeg
    would otherwise decode in part), is refused. A file that declares no duration (a browser's
    live WebM recording) is decoded as far as it goes. FFmpeg runs in this process: the service
    calls this in a child process of its own (``service/decoding.py``), where a crash or a hang
    costs that request alone.
    """
    import av  # FFmpeg in a wheel; imported here, so what only reads WAV and FLAC never loads it

    fileobj = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        with av.open(fileobj, mode="r", metadata_errors="ignore") as container:
            track = next((s for s in container.streams if s.type == "audio"), None)
            if track is None:
                raise AudioDecodeError("not decodable audio: the file holds no audio stream")
            sr, channels = int(track.codec_context.sample_rate or 0), int(track.codec_context.channels or 0)
            stream = _MonoStream(sr, channels, max_duration_s=max_duration_s, max_samples=max_samples)
            if track.duration and track.time_base:
                declared = int(track.duration * track.time_base * sr)
            else:  # Matroska and WebM declare a duration for the whole file only
                declared = int(container.duration * sr / av.time_base) if container.duration else 0
            stream.check_declared(declared)
            pending, count = [], 0
            for frame in container.decode(track):
                if frame.sample_rate != sr or len(frame.layout.channels) != channels:
                    raise AudioDecodeError(f"not decodable audio: the stream changes from {sr} Hz x {channels} to "
                                           f"{frame.sample_rate} Hz x {len(frame.layout.channels)} midway")
                fmt = frame.format.name
                raw = frame.to_ndarray()  # planar: (channels, n); packed: (1, n * channels)
                block = raw.T if frame.format.is_planar else raw.reshape(-1, channels)
                block = block.astype(np.float32)
                if fmt.startswith("u8"):
                    block -= 128.0
                pending.append(block / np.float32(_AV_SCALE[fmt]) if _AV_SCALE[fmt] != 1.0 else block)
                count += len(block)
                if count >= stream.block_frames:
                    stream.feed(np.concatenate(pending))
                    pending, count = [], 0
            if pending:
                stream.feed(np.concatenate(pending))
            if stream.frames < 0.9 * declared:  # FFmpeg conceals a cut or a damaged stream; its header does not
                raise AudioDecodeError(f"not decodable audio: the stream ends at {stream.frames / sr:.2f} s of the "
                                       f"{declared / sr:.2f} s its header declares (truncated or damaged)")
    except AudioError:
        raise
    except (av.FFmpegError, KeyError, EOFError) as exc:  # what FFmpeg says of bad bytes; KeyError: an unknown format
        raise AudioDecodeError(f"not decodable audio: {exc}") from exc
    return stream.finish()


def from_array(data: np.ndarray, sample_rate: int, *, max_duration_s: float = MAX_DURATION_S,
               max_samples: int = MAX_DECODED_SAMPLES) -> DecodedAudio:
    """Validate and convert an array ``(T,)`` or ``(T, C)`` at ``sample_rate`` to model input,
    with the same checks, in the same blocks, as :func:`decode`."""
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape[1] < 1:
        raise AudioDecodeError(f"expected samples shaped (T, C), got {data.shape}")
    stream = _MonoStream(int(sample_rate), data.shape[1], max_duration_s=max_duration_s, max_samples=max_samples)
    stream.check_declared(data.shape[0])
    for i in range(0, data.shape[0], stream.block_frames):
        stream.feed(data[i:i + stream.block_frames])
    return stream.finish()


class _MonoStream:
    """Validates blocks of (frames, channels) samples, mixes them to mono and resamples them to
    :data:`SAMPLE_RATE` as they come: the one path from any input to model input."""

    def __init__(self, sample_rate: int, channels: int, *, max_duration_s: float, max_samples: int) -> None:
        if channels < 1:
            raise AudioDecodeError(f"audio declares {channels} channels")
        if not MIN_INPUT_RATE <= sample_rate <= MAX_INPUT_RATE:
            raise UnsupportedSampleRateError(f"sample rate {sample_rate} Hz is outside {MIN_INPUT_RATE}-{MAX_INPUT_RATE} Hz")
        if channels > MAX_CHANNELS:
            raise AudioTooLargeError(f"audio has {channels} channels; at most {MAX_CHANNELS} are accepted")
        self.sr, self.channels = sample_rate, channels
        self.max_duration_s, self.max_samples = max_duration_s, max_samples
        self.max_frames = int(math.floor(max_duration_s * sample_rate))
        self.block_frames = max(1024, BLOCK_SAMPLES // channels)
        self.frames = 0
        self.total, self.total_sq = 0.0, 0.0  # float64 sums of the mono samples, for the silence check
        self.out: list[np.ndarray] = []
        self.resampler = None if sample_rate == SAMPLE_RATE else resample_stream(sample_rate)

    def check_declared(self, frames: int) -> None:
        """Refuse from the header what the limits would refuse after decoding (unknown: 0 or less)."""
        if frames <= 0:
            return
        self._check_limits(frames)

    def _check_limits(self, frames: int) -> None:
        if frames > self.max_frames:
            raise AudioTooLongError(f"audio is {frames / self.sr:.1f} s long; the maximum is {self.max_duration_s:g} s")
        if frames * self.channels > self.max_samples:
            raise AudioTooLargeError(
                f"audio holds {frames * self.channels} samples ({self.channels} channels x {frames} frames); "
                f"at most {self.max_samples} are decoded")

    def feed(self, block: np.ndarray) -> None:
        self.frames += len(block)
        self._check_limits(self.frames)
        peak = float(np.max(np.abs(block))) if block.size else 0.0
        if not math.isfinite(peak):
            raise InvalidSamplesError("the audio holds NaN or infinite samples")
        if peak > MAX_PEAK:
            raise InvalidSamplesError(
                f"the audio's samples reach {peak:.3g}; at most {MAX_PEAK:g} (full scale is 1) is accepted")
        mono = block.mean(axis=1, dtype=np.float32) if self.channels > 1 else block[:, 0].astype(np.float32)
        m64 = mono.astype(np.float64)
        self.total += float(m64.sum())
        self.total_sq += float(np.dot(m64, m64))
        self.out.append(mono if self.resampler is None else self.resampler.resample_chunk(mono))

    def finish(self) -> DecodedAudio:
        if self.frames == 0:
            raise EmptyAudioError("the audio holds no samples")
        duration = self.frames / self.sr
        if duration < MIN_DURATION_S:
            raise AudioTooShortError(f"audio is {duration:.3f} s long; at least {MIN_DURATION_S:g} s is needed")
        mean = self.total / self.frames
        if math.sqrt(max(self.total_sq / self.frames - mean * mean, 0.0)) < SILENCE_RMS:
            raise SilentAudioError("the audio is silent (RMS below -70 dBFS)")
        if self.resampler is not None:
            self.out.append(self.resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        mono = np.concatenate(self.out) if len(self.out) > 1 else self.out[0]
        return DecodedAudio(np.ascontiguousarray(mono, dtype=np.float32), self.sr, self.channels, duration)


def resample_stream(from_rate: int) -> soxr.ResampleStream:
    """Mono float32 chunks at ``from_rate`` -> :data:`SAMPLE_RATE`, chunk by chunk (libsoxr "HQ",
    bit-identical to its one-shot call): what every decoder and the live stream resample with."""
    return soxr.ResampleStream(from_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")


def resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """High-quality band-limited resampling (libsoxr "HQ", what librosa's ``soxr_hq`` calls)."""
    return soxr.resample(x, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


def trim_silence(wave: torch.Tensor) -> torch.Tensor:
    """Cut leading and trailing silence: keep frames within :data:`TRIM_TOP_DB` of the loudest.

    ``wave`` is (T,). Returns a view of at least :data:`MIN_DURATION_S` (or the whole clip if
    shorter). Padding a recording with silence therefore does not change what the model hears.
    """
    n = wave.shape[-1]
    if n <= WIN_LENGTH:
        return wave
    frames = wave.unfold(0, WIN_LENGTH, HOP_LENGTH)  # (F, WIN)
    energy = frames.pow(2).mean(dim=1)
    db = 10 * torch.log10(energy + 1e-20)
    voiced = torch.nonzero(db > db.max() - TRIM_TOP_DB).flatten()
    margin = int(TRIM_MARGIN_S * SAMPLE_RATE)
    start = max(0, int(voiced[0]) * HOP_LENGTH - margin)
    end = min(n, int(voiced[-1]) * HOP_LENGTH + WIN_LENGTH + margin)
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


def num_frames(num_samples: torch.Tensor | int) -> torch.Tensor | int:
    """Number of feature frames for ``num_samples`` samples (no centre padding)."""
    return (num_samples - N_FFT) // HOP_LENGTH + 1


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's default, htk=False)."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_region = hz >= 1000.0
    return np.where(log_region, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3))


def mel_filterbank(n_fft: int = N_FFT, n_mels: int = N_MELS, f_min: float = F_MIN, f_max: float = F_MAX) -> np.ndarray:
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
def _mel_basis(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    window = torch.hann_window(WIN_LENGTH, periodic=True)
    return torch.from_numpy(mel_filterbank()).to(device), window.to(device)


def log_mel(waves: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised log-mel features of a padded batch.

    Args:
        waves: (B, T) float mono at :data:`SAMPLE_RATE`, zero-padded after each clip's end.
        lengths: (B,) valid samples per clip (default: all T). Each must be >= :data:`N_FFT`.
    Returns:
        feats: (B, N_MELS, F) with per-clip mean removed per mel bin and the clip's std scaled to
            1, zeros after each clip's last valid frame; frames: (B,) valid frames per clip.
    Frames use no centre padding, so a clip's features do not depend on what is padded after it:
    the batched result equals the one-by-one result.
    """
    assert waves.dim() == 2, f"waves must be (B, T), got {tuple(waves.shape)}"
    batch, total = waves.shape
    if lengths is None:
        lengths = torch.full((batch,), total, dtype=torch.long, device=waves.device)
    assert int(lengths.min()) >= N_FFT, f"every clip needs at least {N_FFT} samples"
    mel_fb, window = _mel_basis(str(waves.device))
    spec = torch.stft(waves, N_FFT, HOP_LENGTH, WIN_LENGTH, window, center=False, return_complex=True)
    power = spec.real.pow(2) + spec.imag.pow(2)  # (B, N_FFT//2+1, F)
    feats = torch.log(torch.matmul(mel_fb, power) + LOG_EPS)  # (B, N_MELS, F)
    frames = num_frames(lengths.to(waves.device))
    mask = (torch.arange(feats.shape[-1], device=waves.device)[None, :] < frames[:, None]).to(feats.dtype)
    mask = mask[:, None, :]  # (B, 1, F)
    count = frames.to(feats.dtype)[:, None, None]
    mean = (feats * mask).sum(-1, keepdim=True) / count  # (B, N_MELS, 1)
    centred = (feats - mean) * mask
    std = torch.sqrt(centred.pow(2).sum(dim=(1, 2), keepdim=True) / (count * N_MELS) + NORM_EPS)
    return centred / std, frames


@functools.lru_cache(maxsize=1)
def _whisper_basis() -> tuple[torch.Tensor, torch.Tensor]:
    fb = mel_filterbank(WHISPER_N_FFT, WHISPER_N_MELS, 0.0, SAMPLE_RATE / 2)
    return torch.from_numpy(fb), torch.hann_window(WHISPER_N_FFT, periodic=True)


def whisper_log_mel(wave: torch.Tensor, band_limit_hz: float | None = None) -> torch.Tensor:
    """Whisper's log-mel of one (T,) clip at :data:`SAMPLE_RATE`: (1, 80, T // 160) float32.

    As ``whisper.audio.log_mel_spectrogram`` computes it (centred 25 ms Hann frames every 10 ms,
    80 Slaney mel bins to 8 kHz, log10, floored 8 decades below the clip's peak, scaled to about
    [-1, 1]), on the clip alone rather than padded to 30 s: the encoder then works on the
    clip's own frames, which is what keeps it fast on short speech. ``band_limit_hz`` (an
    evaluation option, ``python -m ml.evaluate_ser --band-limit-hz``; the shipped front end has
    none) drops the spectrum above it, as a telephone band does.
    """
    assert wave.dim() == 1, f"wave must be (T,), got {tuple(wave.shape)}"
    fb, window = _whisper_basis()
    spec = torch.stft(wave, WHISPER_N_FFT, HOP_LENGTH, window=window, return_complex=True)[..., :-1]
    if band_limit_hz is not None:
        spec = spec * (torch.fft.rfftfreq(WHISPER_N_FFT, 1 / SAMPLE_RATE) <= band_limit_hz)[:, None]
    log_spec = torch.clamp(fb @ spec.abs().pow(2), min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0)[None]


def pad_batch(waves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack 1-D waves into (B, T_max) zero-padded, with (B,) lengths."""
    lengths = torch.tensor([int(w.shape[-1]) for w in waves], dtype=torch.long)
    out = torch.zeros(len(waves), int(lengths.max()), dtype=torch.float32)
    for i, w in enumerate(waves):
        out[i, : w.shape[-1]] = w
    return out, lengths


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
