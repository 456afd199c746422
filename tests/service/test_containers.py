"""Uploads in the formats phones, browsers and cameras record (FFmpeg, in a child process): the
same answers as the WAV, 4xx for a cut or damaged file, and a decoder that crashes or hangs
costs its own request alone."""

import os
import time

import pytest

from ml import audio
from service import decoding
from tests.conftest import CONTAINERS, assert_problem, container_bytes, fixture_clips, wav_bytes

MIME = {"m4a": "audio/mp4", "mp4": "video/mp4", "mov": "video/quicktime", "webm": "audio/webm",
        "mkv": "video/x-matroska", "webm-vorbis": "audio/webm", "3gp": "audio/3gpp", "awb": "audio/amr-wb"}


@pytest.fixture(scope="module")
def spoken():
    """The clip every format sends: the angry one, whose answer no codec here changes
    (tests/ml/test_containers.py lists the one that AMR-WB does)."""
    return audio.decode(fixture_clips()["angry"]).samples


@pytest.mark.parametrize("kind", sorted(CONTAINERS))
def test_each_format_answers_as_its_wav_does(shipped_client, spoken, kind):
    data = container_bytes(spoken, audio.SAMPLE_RATE, kind)
    wav = shipped_client.post("/emotion", files={"file": ("clip.wav", wav_bytes(spoken, audio.SAMPLE_RATE))}).json()
    by_form = shipped_client.post("/emotion", files={"file": (f"clip.{kind}", data)})
    raw = shipped_client.post("/emotion", content=data, headers={"Content-Type": MIME[kind]})
    for r in (by_form, raw):
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["emotion"] == wav["emotion"] and body["sample_rate"] == CONTAINERS[kind][2]
    face = shipped_client.post("/speech-to-face", files={"file": (f"clip.{kind}", data)})
    assert face.status_code == 200 and face.headers["x-emotion"] == wav["emotion"]


@pytest.mark.parametrize("kind", sorted(CONTAINERS))
def test_cut_or_damaged_files_get_415_and_the_service_goes_on(shipped_client, spoken, kind):
    data = container_bytes(spoken, audio.SAMPLE_RATE, kind)
    damaged = bytearray(data)
    damaged[len(data) // 2:len(data) // 2 + 1500] = os.urandom(1500)
    for bad in (data[:len(data) // 2], bytes(damaged)):
        r = shipped_client.post("/emotion", files={"file": (f"clip.{kind}", bad)})
        assert_problem(r, 415, "undecodable-audio", "not decodable audio")
    assert shipped_client.post("/emotion", files={"file": (f"clip.{kind}", data)}).status_code == 200


def crash(data: bytes, *, max_duration_s: float) -> audio.DecodedAudio:
    os.abort()  # what a segfault in FFmpeg does to its process


def hang(data: bytes, *, max_duration_s: float) -> audio.DecodedAudio:
    time.sleep(3600)
    raise AssertionError("unreachable")


@pytest.mark.parametrize("decoder, reason", [(crash, "crashed"), (hang, "took over")])
def test_a_decoder_that_crashes_or_hangs_fails_only_its_request(tiny_weights, monkeypatch, spoken, decoder, reason):
    from tests.conftest import make_client, wait_ready

    monkeypatch.setattr(decoding, "DECODER", decoder)
    with make_client(*tiny_weights, decode_timeout_s=1.0) as client:
        wait_ready(client)
        t0 = time.perf_counter()
        r = client.post("/emotion", files={"file": ("clip.webm", container_bytes(spoken, audio.SAMPLE_RATE, "webm"))})
        assert_problem(r, 415, "undecodable-audio", reason)
        assert time.perf_counter() - t0 < 5
        wav = client.post("/emotion", files={"file": ("clip.wav", wav_bytes(spoken, audio.SAMPLE_RATE))})
        assert wav.status_code == 200  # the process and its other decodes are untouched
