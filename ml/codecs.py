"""Phone and browser codecs, encoding side: a clip as a file of the kind phones, browsers and
cameras record, for the SER's training views (``ml.augment``) and the tests' fixtures alike.
Decoding is ``ml.audio``'s, the service's own.

PyAV's FFmpeg encodes AAC, Opus, Vorbis and AMR-NB; it has no AMR-WB encoder, so that one is
VisualOn's (Debian's ``libvo-amrwbenc0``, loaded with ctypes).
"""

from __future__ import annotations

import ctypes
import fractions
import io

import numpy as np

from ml import audio

#: The containers and codecs phones, browsers and cameras record in, as (PyAV format, codec, rate):
#: iPhone voice memos (M4A/AAC), video sound tracks (MP4, MOV), browsers' MediaRecorder (WebM/Opus),
#: Matroska, WebM/Vorbis (FFmpeg's own Vorbis encoder: stereo only), Android 3GP (AMR-NB, 8 kHz)
#: and AMR-WB (16 kHz, the .awb storage format).
CONTAINERS = {"m4a": ("ipod", "aac", 44_100), "mp4": ("mp4", "aac", 48_000), "mov": ("mov", "aac", 44_100),
              "webm": ("webm", "libopus", 48_000), "mkv": ("matroska", "libopus", 48_000),
              "webm-vorbis": ("webm", "vorbis", 48_000), "3gp": ("3gp", "libopencore_amrnb", 8_000),
              "awb": ("amr", "libvo-amrwbenc", 16_000)}
STEREO_ONLY = {"vorbis"}
#: AMR-WB's nine modes, 6.60 to 23.85 kbit/s: the mode number is the encoder's argument.
AMR_WB_MODES = (6_600, 8_850, 12_650, 14_250, 15_850, 18_250, 19_850, 23_050, 23_850)


class CodecUnavailable(RuntimeError):
    """An encoder this machine does not have (a library to install)."""


def encode(wave: np.ndarray, rate: int, kind: str, channels: int = 1, bit_rate: int | None = None) -> bytes:
    """``wave`` (T,) float at ``rate`` as a file of ``kind`` (:data:`CONTAINERS`); ``bit_rate``
    in bit/s, or the encoder's default (AMR-WB: 23.85 kbit/s)."""
    import av

    fmt, codec, out_rate = CONTAINERS[kind]
    y = audio.resample(wave.astype(np.float32), rate, out_rate) if out_rate != rate else wave.astype(np.float32)
    if kind == "awb":
        return amr_wb(y, AMR_WB_MODES.index(bit_rate) if bit_rate else len(AMR_WB_MODES) - 1)
    channels = 2 if codec in STEREO_ONLY else channels
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as container:
        layout = "mono" if channels == 1 else "stereo"
        stream = container.add_stream(codec, rate=out_rate, layout=layout)
        stream.codec_context.options = {"strict": "experimental"}  # FFmpeg's Vorbis encoder asks for it
        if bit_rate:
            stream.codec_context.bit_rate = bit_rate
        pcm = (np.clip(y, -1, 1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(pcm[None, :], channels, 0).T.reshape(1, -1).copy(),
                                           format="s16", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = out_rate, 0, fractions.Fraction(1, out_rate)
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buf.getvalue()


AMR_WB_LIBRARY = "libvo-amrwbenc.so.0"
AMR_WB_INSTALL = "apt-get install libvo-amrwbenc0"


def available(kind: str) -> bool:
    """Whether this machine can encode ``kind`` (:data:`CONTAINERS`): PyAV's encoders always are;
    AMR-WB needs VisualOn's library (:data:`AMR_WB_INSTALL`)."""
    if kind != "awb":
        return True
    try:
        ctypes.CDLL(AMR_WB_LIBRARY)
    except OSError:
        return False
    return True


def amr_wb(wave: np.ndarray, mode: int = 8) -> bytes:
    """``wave`` (T,) float at 16 kHz as an AMR-WB file (``mode`` 0-8, :data:`AMR_WB_MODES`)."""
    try:
        lib = ctypes.CDLL(AMR_WB_LIBRARY)
    except OSError:
        raise CodecUnavailable(f"no {AMR_WB_LIBRARY}: {AMR_WB_INSTALL}") from None
    lib.E_IF_init.restype = ctypes.c_void_p
    lib.E_IF_encode.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_short),
                                ctypes.POINTER(ctypes.c_ubyte), ctypes.c_int]
    lib.E_IF_exit.argtypes = [ctypes.c_void_p]
    pcm = (np.clip(wave, -1, 1) * 32767).astype(np.int16)
    state, frame_out, out = lib.E_IF_init(), (ctypes.c_ubyte * 64)(), bytearray(b"#!AMR-WB\n")
    try:
        for i in range(0, len(pcm) - 319, 320):  # 20 ms frames
            frame = np.ascontiguousarray(pcm[i:i + 320])
            n = lib.E_IF_encode(state, mode, frame.ctypes.data_as(ctypes.POINTER(ctypes.c_short)), frame_out, 0)
            out += bytes(frame_out[:n])
    finally:
        lib.E_IF_exit(state)
    return bytes(out)


def round_trip(wave: np.ndarray, kind: str, bit_rate: int | None = None) -> np.ndarray:
    """A (T,) clip at the model rate, encoded as ``kind`` and decoded back by the service's decoder."""
    return audio.decode_container(encode(wave, audio.SAMPLE_RATE, kind, bit_rate=bit_rate)).samples
