"""Uploads in the formats phones, browsers and cameras record (FFmpeg, in a child process): the
same answers as the WAV, 4xx for a cut or damaged file, and a decoder that crashes or hangs
costs its own request alone."""

import asyncio
import os
import time

import pytest

from ml import audio
from service import decoding
from tests import hostile
from tests.conftest import (
    CONTAINERS,
    assert_problem,
    container_bytes,
    fixture_clips,
    wav_bytes,
)
from tests.service.stand_in_decoders import crash, hang

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


def decode_isolated(data: bytes, timeout_s: float) -> audio.DecodedAudio:
    """``data`` decoded by FFmpeg in a confined child, as the service does it."""
    decoder = decoding.Decoder(max_decodes=1, max_ffmpeg=1, ffmpeg_wait_s=60, timeout_s=timeout_s, memory_bytes=160 << 20)
    return asyncio.run(decoder.decode_ffmpeg(data, max_duration_s=60))


def test_real_ffmpeg_killed_mid_decode_leaves_the_next_decode_served(spoken):
    """Not a stand-in: FFmpeg itself decoding a small file that outlasts the time limit is killed
    in its child, and the next upload decodes in a child of the same forkserver."""
    bomb, webm = hostile.matroska_flac_bomb(), container_bytes(spoken, audio.SAMPLE_RATE, "webm")
    assert len(bomb) < 1_000_000
    decode_isolated(webm, timeout_s=60)  # the forkserver is up
    t0 = time.perf_counter()
    whole = decode_isolated(bomb, timeout_s=60)  # it does decode, given time
    took = time.perf_counter() - t0
    assert whole.channels == 8 and whole.input_sample_rate == 192_000 and abs(whole.duration_s - 39) < 0.1
    limit = took / 4
    t0 = time.perf_counter()
    with pytest.raises(decoding.DecoderFailedError, match="took over"):
        decode_isolated(bomb, timeout_s=limit)
    assert time.perf_counter() - t0 < limit + 2
    again = decode_isolated(webm, timeout_s=60)
    assert abs(again.duration_s - len(spoken) / audio.SAMPLE_RATE) < 0.1
