"""Decoding an upload to model input: libsndfile (WAV, FLAC, OGG, MP3), FFmpeg through PyAV for
the containers phones and browsers record, and one block path that validates, mixes to mono and
resamples whatever either decodes.

This module imports no torch: the service's FFmpeg child process imports it alone (with PyAV),
so a decode costs tens of megabytes, not the model stack's hundreds. Features live in
``ml.audio``.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000  # model rate: RAVDESS copy is 16 kHz, speech carries little above 8 kHz
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


def is_silent(samples: np.ndarray) -> bool:
    """Whether mono ``samples`` are silence: their RMS after removing DC is below
    :data:`SILENCE_RMS`. The rule decoding refuses a recording by, and the live stream's."""
    return float(np.std(samples, dtype=np.float64)) < SILENCE_RMS


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


#: The only FFmpeg demuxers an upload may open: MP4/M4A/MOV/3GP, Matroska/WebM, raw AAC (ADTS) and
#: AMR. FFmpeg would otherwise open whatever it recognises, playlists and descriptions among them
#: (concat, HLS, SDP), which name other files and sockets.
FFMPEG_FORMATS = "mov,matroska,aac,amr"
#: What the demuxer may open beside the upload itself (read from memory): nothing. No protocol is
#: named "none", so every nested open (a file, a URL, a socket) is refused.
FFMPEG_PROTOCOLS = "none"
#: Said to the client of any file FFmpeg cannot read; what FFmpeg said goes to the log only.
FFMPEG_REFUSED = ("not decodable audio: not a recording in a format this service reads "
                  "(WAV, FLAC, OGG, Opus, MP3, M4A/AAC, MP4, MOV, WebM, Matroska, 3GP, AMR)")

def load_ffmpeg() -> None:
    """Import PyAV and every submodule it may import lazily while it opens a file (``av.subtitles``
    on a subtitle track, say): a process that may open no file afterwards (the service's confined
    decoder) must have them all already. A few milliseconds when PyAV is loaded."""
    import importlib
    import pkgutil

    import av

    for module in pkgutil.walk_packages(av.__path__, "av."):
        if module.name.split(".")[1] not in ("__main__", "datasets"):  # a command line; a downloader
            importlib.import_module(module.name)


#: PyAV frame formats -> the scale that brings their integers to [-1, 1) (floats: 1).
_AV_SCALE = {"u8": 128.0, "u8p": 128.0, "s16": 32768.0, "s16p": 32768.0, "s32": 2.0**31, "s32p": 2.0**31,
             "s64": 2.0**63, "s64p": 2.0**63, "flt": 1.0, "fltp": 1.0, "dbl": 1.0, "dblp": 1.0}


def decode_container(source: bytes | str | Path | BinaryIO, *, max_duration_s: float = MAX_DURATION_S,
                     max_samples: int = MAX_DECODED_SAMPLES) -> DecodedAudio:
    """Decode what libsndfile does not read, with PyAV (FFmpeg): AAC in M4A, MP4 and MOV, Opus and
    Vorbis in WebM or Matroska, AMR-NB/WB in 3GP or AMR files, raw AAC; only the demuxers of
    :data:`FFMPEG_FORMATS`, and no nested file, URL or socket (:data:`FFMPEG_PROTOCOLS`).

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
        with av.open(fileobj, mode="r", metadata_errors="ignore",
                     container_options={"format_whitelist": FFMPEG_FORMATS, "protocol_whitelist": FFMPEG_PROTOCOLS}) as container:
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
    except MemoryError as exc:  # FFmpeg (or numpy) past the memory its process is allowed (the service's rlimit)
        raise AudioTooLargeError("decoding this file needs more memory than a decode is allowed") from exc
    except (av.FFmpegError, KeyError, EOFError) as exc:  # what FFmpeg says of bad bytes; KeyError: an unknown format
        raise AudioDecodeError(FFMPEG_REFUSED) from exc
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
        mean = self.total / self.frames  # is_silent's rule, from sums kept block by block
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
