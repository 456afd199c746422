"""Hostile uploads aimed at the FFmpeg path, built here for the tests and the abuse benchmark
alike (``tests/service/test_ffmpeg_isolation.py``, ``tests/perf/bench_abuse.py``)."""

from __future__ import annotations

import fractions
import io
import struct
import zlib
from pathlib import Path

import av
import numpy as np
from PIL import Image

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


# --- photos (/edit and /speech-to-face's photo field: tests/service/test_edit.py, bench_abuse.py) ---

#: Seeds of the shipped generator whose neutral face, enlarged, OpenCV's face cascade finds: a photo
#: with a face that the tests make instead of shipping one (the London set is data, not fixtures).
FACE_SEEDS = (0, 2)


def face_photo(seed: int = FACE_SEEDS[0], size: tuple[int, int] = (512, 400), face_px: int = 256) -> Image.Image:
    """An RGB photo-like image: the shipped generator's neutral face for ``seed``, enlarged to
    ``face_px``, warm-tinted, on a bluish background."""
    from ml.generate import FaceGenerator
    from ml.labels import fer_index

    generator, _ = FaceGenerator.from_checkpoint(Path(__file__).resolve().parents[1] / "weights" / "generator.pt")
    face = Image.fromarray(generator.render([fer_index("neutral")], [seed])[0]).resize((face_px, face_px),
                                                                                      Image.Resampling.LANCZOS)
    grey = Image.new("L", size, 200)
    grey.paste(face, ((size[0] - face_px) // 2, (size[1] - face_px) // 2))
    g = np.asarray(grey, np.float32)
    rgb = np.stack([g * 1.0, g * 0.85, g * 0.7], -1)
    rgb[np.asarray(grey) == 200] = (120, 150, 200)
    return Image.fromarray(rgb.clip(0, 255).astype(np.uint8), "RGB")


def encoded_image(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def with_orientation(img: Image.Image, value: int) -> bytes:
    """A JPEG whose EXIF orientation tag says ``value`` whatever the pixels show."""
    exif = img.getexif()
    exif[0x0112] = value
    return encoded_image(img, "JPEG", quality=92, exif=exif.tobytes())


def bad_photos() -> dict[str, tuple[bytes, int, str]]:
    """Uploads /edit must refuse: name -> (bytes, HTTP status, problem type slug). Each but the
    first two holds the test face, so what is refused is the named property, not a missing face."""
    face = face_photo()
    jpeg = encoded_image(face, "JPEG", quality=92)
    frames = [face, face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    grey16 = Image.fromarray(np.asarray(face.convert("L"), np.uint16) * 257)
    return {
        "not an image": (b"these bytes are not an image at all\n" * 50, 415, "undecodable-image"),
        "no face (a gradient)": (encoded_image(Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (256, 1))), "PNG"),
                                 422, "no-face"),
        "empty": (b"", 415, "undecodable-image"),
        "truncated JPEG": (jpeg[: len(jpeg) // 2], 415, "truncated-image"),
        "1x1 PNG": (encoded_image(Image.new("RGB", (1, 1), (128, 128, 128)), "PNG"), 422, "image-too-small"),
        "30000x30000 PNG (decompression bomb)": (huge_png(30_000), 413, "image-too-large"),
        "5000x5000 PNG (over 16.8 megapixels)": (huge_png(5_000), 413, "image-too-large"),
        "animated GIF": (encoded_image(frames[0], "GIF", save_all=True, append_images=frames[1:]), 415,
                         "undecodable-image"),
        "animated PNG": (encoded_image(frames[0], "PNG", save_all=True, append_images=frames[1:]), 422,
                         "unsupported-image"),
        "animated WebP": (encoded_image(frames[0], "WEBP", save_all=True, append_images=frames[1:]), 422,
                          "unsupported-image"),
        "CMYK JPEG": (encoded_image(face.convert("CMYK"), "JPEG"), 422, "unsupported-image"),
        "16-bit PNG": (encoded_image(grey16, "PNG"), 422, "unsupported-image"),
        "PNG with alpha": (encoded_image(face.convert("RGBA"), "PNG"), 422, "unsupported-image"),
        "SVG named .png": (b'<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512">'
                           b'<circle cx="256" cy="256" r="200"/></svg>', 415, "undecodable-image"),
        "PDF named .png": (b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n", 415,
                           "undecodable-image"),
        "BMP": (encoded_image(face, "BMP"), 415, "undecodable-image"),
        "EXIF orientation 9 (no such value)": (with_orientation(face, 9), 422, "invalid-orientation"),
        "EXIF orientation 6 on an upright face": (with_orientation(face, 6), 422, "no-face"),
    }
