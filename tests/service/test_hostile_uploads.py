"""A corpus of malformed and hostile uploads: each gets the right 4xx problem+json, and the
service keeps serving real requests afterwards."""

import gzip
import io
import struct

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from tests.conftest import assert_problem, fixture_clips, speechlike, wav_bytes


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="PNG")
    return buf.getvalue()


def _patched(offset: int, fmt: str, value: int, data: bytes | None = None) -> bytes:
    b = bytearray(data or wav_bytes(speechlike(1.0)))
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


def _nan(fill: float, where: slice = slice(None)) -> bytes:
    x = speechlike(1.0)
    x[where] = fill
    return wav_bytes(x, subtype="FLOAT")


def _giant_header() -> bytes:
    """A WAV header declaring ~4 GB of data, followed by 100 bytes."""
    head = bytearray(wav_bytes(speechlike(1.0))[:44])
    struct.pack_into("<I", head, 4, 0xFFFFFFF0)
    struct.pack_into("<I", head, 40, 0xFFFFFF00)
    return bytes(head) + b"\x01\x02" * 50


def _multichannel(seconds: float, sr: int = 192_000, channels: int = 8) -> bytes:
    x = speechlike(seconds, sr=sr)
    return wav_bytes(np.repeat(x[:, None], channels, axis=1), sr)


def _multipart(body: bytes, boundary: str = "XyZ") -> tuple[bytes, str]:
    return body, f"multipart/form-data; boundary={boundary}"


# (name, body, content type, expected status, expected problem slug)
RAW = "audio/wav"
CORPUS = [
    ("empty raw body", b"", RAW, 422, "empty-audio"),
    ("truncated header", wav_bytes(speechlike(1.0))[:20], RAW, 415, "undecodable-audio"),
    ("header without data chunk", wav_bytes(speechlike(1.0))[:36], RAW, 415, "undecodable-audio"),
    ("random bytes", np.random.default_rng(1).bytes(50_000), RAW, 415, "undecodable-audio"),
    ("png named wav", _png(), RAW, 415, "undecodable-audio"),
    ("zero channels", _patched(22, "<H", 0), RAW, 415, "undecodable-audio"),
    ("sample rate 1 Hz", _patched(24, "<I", 1), RAW, 422, "unsupported-sample-rate"),
    ("sample rate 1 GHz", _patched(24, "<I", 1_000_000_000), RAW, 422, "unsupported-sample-rate"),
    ("NaN samples", _nan(np.nan, slice(100, 200)), RAW, 422, "invalid-samples"),
    ("all NaN", _nan(np.nan), RAW, 422, "invalid-samples"),
    ("infinite samples", _nan(np.inf, slice(0, 1)), RAW, 422, "invalid-samples"),
    ("header claiming gigabytes", _giant_header(), RAW, 422, "audio-too-short"),
    ("one sample", wav_bytes(np.array([0.5], np.float32)), RAW, 422, "audio-too-short"),
    ("0.3 seconds", wav_bytes(speechlike(0.3)), RAW, 422, "audio-too-short"),
    ("ten minutes", wav_bytes(np.zeros(16_000 * 600, np.float32)), RAW, 422, "audio-too-long"),
    ("61 seconds at 8 kHz", wav_bytes(np.tile(speechlike(1.0, sr=8000), 61), 8000), RAW, 422, "audio-too-long"),
    ("digital silence", wav_bytes(np.zeros(32_000, np.float32)), RAW, 422, "silent-audio"),
    ("DC offset only", wav_bytes(np.full(32_000, 0.25, np.float32)), RAW, 422, "silent-audio"),
    ("192 kHz 8 channels, 20 s", _multichannel(20.0), RAW, 413, "body-too-large"),
    ("fake mp3", b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff" * 3000, "audio/mpeg", 415, "undecodable-audio"),
    ("fake flac", b"fLaC" + b"\x00" * 3000, "audio/flac", 415, "undecodable-audio"),
    ("fake ogg", b"OggS" + b"\x00" * 3000, "audio/ogg", 415, "undecodable-audio"),
    ("gzip of a wav", gzip.compress(wav_bytes(speechlike(1.0))), RAW, 415, "undecodable-audio"),
    ("json body as audio", b'{"emotion": "happy"}', RAW, 415, "undecodable-audio"),
    ("html as audio", b"<html><script>alert(1)</script></html>", RAW, 415, "undecodable-audio"),
    ("text/plain content type", wav_bytes(speechlike(1.0)), "text/plain", 415, "unsupported-media-type"),
    ("no content type", wav_bytes(speechlike(1.0)), "", 415, "unsupported-media-type"),
    ("json content type", b'{"file": "x"}', "application/json", 415, "unsupported-media-type"),
    ("image content type", _png(), "image/png", 415, "unsupported-media-type"),
    ("multipart without boundary", b"--x\r\n\r\n", "multipart/form-data", 400, "bad-request"),
    ("multipart garbage", *_multipart(b"this is not multipart at all"), 400, "bad-request"),
]


def _form(field: str, content: bytes, filename: str | None = "clip.wav") -> dict:
    return {field: (filename, content, "audio/wav")} if filename else {field: (None, content)}


MULTIPART = [
    ("wrong multipart field", {"files": _form("audio", wav_bytes(speechlike(1.0)))}, 422, "invalid-parameter"),
    ("file sent as a text field", {"files": _form("file", b"not a file", filename=None)}, 422, "invalid-parameter"),
    ("form-urlencoded body", {"data": {"file": "not a file"}}, 415, "unsupported-media-type"),
    ("empty file", {"files": _form("file", b"")}, 422, "empty-audio"),
    ("png named .wav", {"files": _form("file", _png())}, 415, "undecodable-audio"),
    ("two files", {"files": [("file", ("a.wav", wav_bytes(speechlike(1.0)))), ("file", ("b.wav", b"x"))]}, 400, None),
]


@pytest.mark.parametrize("route", ["/emotion", "/speech-to-face"])
@pytest.mark.parametrize("name, body, ctype, status, slug", CORPUS, ids=[c[0] for c in CORPUS])
def test_raw_hostile_upload(client, route, name, body, ctype, status, slug):
    headers = {"Content-Type": ctype} if ctype else {}
    r = client.post(route, content=body, headers=headers)
    assert_problem(r, status, slug)


@pytest.mark.parametrize("name, kwargs, status, slug", MULTIPART, ids=[m[0] for m in MULTIPART])
def test_multipart_hostile_upload(client, name, kwargs, status, slug):
    assert_problem(client.post("/emotion", **kwargs), status, slug)


def test_service_still_serves_after_the_corpus(client):
    for _, body, ctype, _, _ in CORPUS:
        client.post("/emotion", content=body, headers={"Content-Type": ctype} if ctype else {})
    assert client.get("/health").status_code == 200
    r = client.post("/emotion", files={"file": ("c.flac", fixture_clips()["sad"].read_bytes())})
    assert r.status_code == 200 and r.json()["emotion"]


def test_unusual_but_valid_audio_is_accepted(client):
    for data in (_multichannel(1.0),  # 192 kHz, 8 channels
                 wav_bytes(speechlike(2.0, sr=8000), 8000, "PCM_U8"),  # telephone-grade
                 wav_bytes(speechlike(59.0, sr=8000), 8000)):  # just under a minute
        assert client.post("/emotion", content=data, headers={"Content-Type": "audio/wav"}).status_code == 200
    buf = io.BytesIO()
    sf.write(buf, speechlike(1.0), 16_000, format="MP3")
    assert client.post("/emotion", content=buf.getvalue(), headers={"Content-Type": "audio/mpeg"}).status_code == 200
