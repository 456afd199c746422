"""Hostile uploads aimed at the FFmpeg path, built here for the tests and the abuse benchmark
alike (``tests/service/test_ffmpeg_isolation.py``, ``tests/perf/bench_abuse.py``)."""

from __future__ import annotations

import fractions
import io
import struct
import zlib

import av
import numpy as np

from ml import codecs

SDP = (b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 20000 RTP/AVP 0\r\n")


def concat(path: str) -> bytes:
    """An ffconcat list naming ``path``: FFmpeg's concat demuxer would open and decode that file."""
    return f"ffconcat version 1.0\nfile {path}\n".encode()


def hls(path: str) -> bytes:
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{path}\n#EXT-X-ENDLIST\n".encode()


def _box(data: bytearray, name: bytes, start: int = 0, end: int | None = None) -> int:
    """Offset of the first box ``name`` under [start, end), descending into the sample-table path."""
    end = len(data) if end is None else end
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        if kind == name:
            return i
        if kind in (b"moov", b"trak", b"mdia", b"minf", b"stbl"):
            try:
                return _box(data, name, i + 8, i + size)
            except KeyError:
                pass
        i += max(size, 8)
    raise KeyError(name)


def m4a_sample_table_bomb(samples: int = 40_000_000) -> bytes:
    """A 1 s M4A (a few KB) whose sample tables declare ``samples`` samples: a constant ``stsz``,
    one ``stts`` and one ``stsc`` entry. FFmpeg's mov demuxer builds an index entry for each while
    opening the file (about 24 bytes each: about 1 GB for 40 M) before any duration is checked."""
    x = (0.3 * np.sin(np.arange(16_000) / 10)).astype(np.float32)
    data = bytearray(codecs.encode(x, 16_000, "m4a"))
    stsz = _box(data, b"stsz")
    data[stsz + 12:stsz + 20] = struct.pack(">II", 64, samples)  # every sample 64 bytes; the count
    stts = _box(data, b"stts")
    data[stts + 12:stts + 24] = struct.pack(">III", 1, samples, 1024)  # one entry: samples x 1024 ticks
    stsc = _box(data, b"stsc")
    data[stsc + 12:stsc + 28] = struct.pack(">IIII", 1, 1, samples, 1)  # one chunk of every sample
    return bytes(data)


def huge_png(side: int = 16_000) -> bytes:
    """A PNG of ``side`` x ``side`` black pixels in about a megabyte (sent as audio/mp4, FFmpeg's
    image demuxers would decode it whole)."""
    row = b"\x00" + bytes(side)
    raw = zlib.compress(row * side, 9)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def matroska_flac_bomb(seconds: int = 39, rate: int = 192_000, channels: int = 8) -> bytes:
    """A Matroska file of under 1 MB holding 60 M samples (8 channels at 192 kHz of a 0.5 Hz
    square wave: FLAC stores a block of one level as that number): within every limit, and
    slower to decode than the limit the test sets."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as container:
        stream = container.add_stream("flac", rate=rate, layout="7.1")
        for k in range(seconds):
            second = np.full((1, rate * channels), 3000 if k % 2 else -3000, np.int16)
            frame = av.AudioFrame.from_ndarray(second, format="s16", layout="7.1")
            frame.sample_rate, frame.pts, frame.time_base = rate, k * rate, fractions.Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()
