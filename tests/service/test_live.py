"""The live WebSocket route: faces about once a second while a voice streams in, one identity,
smoothed emotions, and every limit closing with its documented code."""

import base64
import io
import time

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from ml import audio
from ml.labels import EMOTIONS
from tests.conftest import fixture_clips, make_client, wait_ready


def pcm16(x: np.ndarray) -> bytes:
    return int16(x).tobytes()


def int16(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, -1, 1) * 32767).astype("<i2")


def pcm16_wav(pcm: np.ndarray) -> bytes:
    """16-bit samples as a WAV file: the very samples a stream of ``pcm`` sends."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, pcm, 16_000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture(scope="module")
def speech():
    return np.tile(audio.decode(fixture_clips()["happy"]).samples, 2)  # about 8.6 s at 16 kHz


@pytest.fixture()
def live(tiny_weights, request):
    overrides = getattr(request, "param", {})
    with make_client(*tiny_weights, **overrides) as client:
        wait_ready(client)
        yield client


def stream(ws, samples: np.ndarray, rate: int, chunk_s: float = 0.1) -> None:
    step = int(rate * chunk_s)
    for i in range(0, len(samples), step):
        ws.send_bytes(pcm16(samples[i:i + step]))


def speak(ws, samples: np.ndarray, rate: int = 16_000) -> list[dict]:
    """Send a second at a time, in 0.1 s messages, and read the answer each second brings (a
    client faster than real time that waits for its answers, so no window is dropped)."""
    answers = []
    for start in range(0, len(samples) - rate + 1, rate):
        stream(ws, samples[start:start + rate], rate)
        answers.append(ws.receive_json())
    return answers


def test_a_stream_gets_a_face_per_second_with_one_identity(live, speech):
    """One answer per second of audio, at t = 1, 2, ... s, each with the connection's seed."""
    with live.websocket_connect("/ws/speech-to-face?rate=16000&seed=7") as ws:
        answers = speak(ws, speech)
    assert len(answers) == 8 and all(a["type"] == "face" and a["seed"] == 7 and a["dropped"] == 0 for a in answers)
    assert [a["t"] for a in answers] == [float(i) for i in range(1, 9)]
    for a in answers:
        assert set(a["probabilities"]) == set(EMOTIONS) and abs(sum(a["probabilities"].values()) - 1) < 1e-4
        assert a["emotion"] == max(a["probabilities"], key=a["probabilities"].get)
        assert Image.open(io.BytesIO(base64.b64decode(a["image_png_base64"]))).size == (48, 48)
    # the face is the one /generate draws for the emotion and the connection's seed
    png = live.get("/generate", params={"emotion": answers[-1]["emotion"], "seed": 7}).content
    assert base64.b64decode(answers[-1]["image_png_base64"]) == png


def test_probabilities_are_smoothed_over_hops_and_heard_as_one_speaker(live, speech, tiny_weights):
    """Each answer is half the newest window's probabilities (the last 3 s, heard as this stream's
    speaker: ml.recognize.SpeakerNorm over its windows so far) and half the running average. The
    same windows heard alone (/emotion) answer otherwise: the stream's speaker is what differs."""
    from ml.recognize import EmotionRecognizer
    from service import live as live_mod

    pcm = int16(speech[:4 * 16_000])
    answers = []
    with live.websocket_connect("/ws/speech-to-face?seed=1") as ws:
        for second in range(4):
            for i in range(second * 16_000, (second + 1) * 16_000, 1_600):
                ws.send_bytes(pcm[i:i + 1_600].tobytes())
            answers.append(ws.receive_json())
    windows = [pcm[max(0, (k + 1) * 16_000 - 48_000):(k + 1) * 16_000] for k in range(4)]
    recognizer = EmotionRecognizer.from_checkpoint(tiny_weights[0])[0]
    speaker = recognizer.speaker()
    raw = [recognizer.predict([w.astype(np.float32) / 32768.0], [speaker])[0] for w in windows]
    alone = [live.post("/emotion", content=pcm16_wav(w), headers={"Content-Type": "audio/wav"}).json()["probabilities"]
             for w in windows]
    assert np.allclose([alone[0][e] for e in EMOTIONS], recognizer.predict([windows[0].astype(np.float32) / 32768.0])[0],
                       atol=2e-6), "the reference hears what /emotion hears"
    assert not np.allclose([alone[3][e] for e in EMOTIONS], raw[3], atol=1e-3), "the stream's speaker changes what it hears"
    want = raw[0]
    for k, a in enumerate(answers):
        if k:
            want = live_mod.SMOOTHING * raw[k] + (1 - live_mod.SMOOTHING) * want
        assert np.allclose([a["probabilities"][e] for e in EMOTIONS], want, atol=2e-6), k  # rounded to 1e-6


def test_other_rates_are_resampled(live, speech):
    x48 = audio.resample(speech[:3 * 16_000], 16_000, 48_000)
    with live.websocket_connect("/ws/speech-to-face?rate=48000") as ws:
        answers = speak(ws, x48, 48_000)
    assert [a["type"] for a in answers] == ["face"] * 3 and answers[-1]["t"] == pytest.approx(3.0, abs=0.01)


def test_silence_is_said_not_drawn(live):
    with live.websocket_connect("/ws/speech-to-face") as ws:
        ws.send_bytes(bytes(2 * 16_000 * 2))
        assert ws.receive_json()["type"] == "silence"


def closed_with(ws) -> tuple[int, str]:
    with pytest.raises(WebSocketDisconnect) as closed:
        for _ in range(100):
            ws.receive_json()
    return closed.value.code, closed.value.reason


@pytest.mark.parametrize("send, code, mentions", [
    (lambda ws: ws.send_bytes(b"\x00\x01\x02"), 1007, "16-bit"),
    (lambda ws: ws.send_text("hello"), 1003, "binary"),
    (lambda ws: ws.send_bytes(bytes(64 * 1024 + 2)), 1009, "at most"),
])
def test_bad_messages_close_with_their_code(live, send, code, mentions):
    with live.websocket_connect("/ws/speech-to-face") as ws:
        send(ws)
        got, reason = closed_with(ws)
    assert got == code and mentions in reason
    assert live.get("/health").status_code == 200


@pytest.mark.parametrize("query", ["rate=1000", "rate=abc", "seed=-1", "seed=99999999999", "rate=\u00b2",
                                   "rate=\u0661\u0666\u0660\u0660\u0660", "seed=" + "9" * 4300])
def test_bad_parameters_close_with_1008(live, query):
    with live.websocket_connect(f"/ws/speech-to-face?{query}") as ws:
        code, reason = closed_with(ws)
    assert code == 1008 and query.split("=")[0] in reason


def refused(live, path: str, **kwargs) -> tuple[int, dict]:
    """The handshake's HTTP answer when the route refuses it before accepting: (status, problem)."""
    with pytest.raises(WebSocketDenialResponse) as denied:
        with live.websocket_connect(path, **kwargs):
            pass
    return denied.value.status_code, denied.value.json()


@pytest.mark.parametrize("live", [{"api_key": "s3cret"}], indirect=True)
def test_the_api_key_guards_the_stream_before_the_handshake(live, speech):
    """No key, a wrong one, or one in the URL (which logs keep): a 401 problem+json answers the
    handshake, so no WebSocket opens and no frame is answered. Header, Bearer or a browser's
    subprotocol token open it."""
    for path, headers in [("/ws/speech-to-face", {}), ("/ws/speech-to-face?api_key=s3cret", {}),
                          ("/ws/speech-to-face", {"X-API-Key": "wrong"})]:
        status, problem = refused(live, path, headers=headers)
        assert status == 401 and problem["type"].endswith("/unauthorized") and "subprotocol" in problem["detail"]
    token = "emoface-key." + base64.urlsafe_b64encode(b"s3cret").decode().rstrip("=")
    for kwargs in [{"headers": {"X-API-Key": "s3cret"}}, {"headers": {"Authorization": "Bearer s3cret"}},
                   {"subprotocols": ["emoface", token]}]:
        with live.websocket_connect("/ws/speech-to-face", **kwargs) as ws:
            if "subprotocols" in kwargs:
                assert ws.accepted_subprotocol == "emoface"  # the key's token is never echoed
            stream(ws, speech[:int(1.2 * 16_000)], 16_000)
            assert ws.receive_json()["type"] == "face"


@pytest.mark.parametrize("live", [{"cors_origins": ["https://app.example"]}], indirect=True)
def test_only_the_services_own_page_and_listed_origins_open_streams(live, speech):
    status, problem = refused(live, "/ws/speech-to-face", headers={"Origin": "https://evil.example"})
    assert status == 403 and problem["type"].endswith("/forbidden-origin")
    for origin in ("https://app.example", "http://testserver"):  # listed; the service's own page (its Host)
        with live.websocket_connect("/ws/speech-to-face", headers={"Origin": origin}) as ws:
            stream(ws, speech[:int(1.2 * 16_000)], 16_000)
            assert ws.receive_json()["type"] == "face"


@pytest.mark.parametrize("live, says", [({"max_streams": 1}, "the service holds 1 live streams"),
                                        ({"max_streams": 8, "stream_max_per_client": 1}, "this client holds 1")],
                         indirect=["live"])
def test_streams_beyond_the_limit_get_1013_and_free_their_slot(live, speech, says):
    """Past the service's slots, or past one client's share of them (every test client is one address)."""
    with live.websocket_connect("/ws/speech-to-face") as first:
        with live.websocket_connect("/ws/speech-to-face") as second:
            code, reason = closed_with(second)
        assert code == 1013 and says in reason
        stream(first, speech[:int(1.2 * 16_000)], 16_000)
        assert first.receive_json()["type"] == "face"
    with live.websocket_connect("/ws/speech-to-face") as again:  # the slot came back
        stream(again, speech[:int(1.2 * 16_000)], 16_000)
        assert again.receive_json()["type"] == "face"


@pytest.mark.parametrize("live", [{"stream_idle_s": 0.3, "stream_max_s": 1.0}], indirect=True)
def test_idle_and_endless_streams_are_closed(live, speech):
    with live.websocket_connect("/ws/speech-to-face") as ws:
        t0 = time.monotonic()
        assert closed_with(ws) == (1001, "nothing received for 0.3 s") and time.monotonic() - t0 < 3
    with live.websocket_connect("/ws/speech-to-face") as ws:
        for i in range(150):  # keeps sending, past the 1 s limit
            ws.send_bytes(pcm16(speech[i * 800:(i + 1) * 800]))
            time.sleep(0.01)
        assert closed_with(ws) == (1000, "the stream reached its limit of 1 s")


def test_the_server_refuses_an_oversized_message_before_buffering_it(tiny_weights):
    """Over real HTTP, uvicorn's own limit closes a message over 64 KiB with 1009."""
    import asyncio

    import websockets

    from tests.conftest import live_server

    async def oversized(base: str) -> int:
        async with websockets.connect(base.replace("http://", "ws://") + "/ws/speech-to-face") as ws:
            await ws.send(bytes(200_000))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            return closed.value.rcvd.code

    with live_server(*tiny_weights, log_level="WARNING") as (_, base):
        assert asyncio.run(oversized(base)) == 1009


@pytest.fixture()
def short_grace(monkeypatch):
    """A stream's audio rate counts after 0.3 s instead of 5 s, so the tests need not wait."""
    from service import admission

    monkeypatch.setattr(admission, "GRACE_S", 0.3)


@pytest.mark.parametrize("live", [{"max_streams": 2, "stream_max_per_client": 2}], indirect=True)
def test_squatters_that_send_too_little_give_their_slots_to_a_real_stream(short_grace, live, speech):
    """Streams that hold a slot and trickle bytes: once past the grace, a new stream takes the slot
    of one of them at once (which is closed with 1008), and one that goes on starving is closed."""
    with live.websocket_connect("/ws/speech-to-face") as first, live.websocket_connect("/ws/speech-to-face") as second:
        first.send_bytes(b"\x00\x00")
        second.send_bytes(b"\x00\x00")
        time.sleep(0.6)
        with live.websocket_connect("/ws/speech-to-face") as real:
            stream(real, speech[:int(1.2 * 16_000)], 16_000)
            assert real.receive_json()["type"] == "face"
        closes = [closed_with(first), closed_with(second)]
    assert all(code == 1008 for code, _ in closes)
    assert any("went to a new one" in reason for _, reason in closes)
    assert any("of real time is needed" in reason for _, reason in closes)


def test_the_stream_and_the_http_route_build_the_same_answer(live, speech):
    """One second of audio and a seed: the stream's first answer and /speech-to-face's JSON carry
    the same fields, built by one path: the face is the seed's face for the emotion heard (what
    /generate draws for them). The probabilities differ by design: the stream hears its window as
    its speaker's (ml.recognize.SpeakerNorm), the HTTP route hears the clip alone."""
    pcm = int16(speech[:16_000])
    http = live.post("/speech-to-face?seed=7", content=pcm16_wav(pcm),
                     headers={"Content-Type": "audio/wav", "Accept": "application/json"}).json()
    with live.websocket_connect("/ws/speech-to-face?rate=16000&seed=7") as ws:
        for i in range(0, 16_000, 1_600):
            ws.send_bytes(pcm[i:i + 1_600].tobytes())
        streamed = ws.receive_json()
    shared = {"emotion", "confidence", "probabilities", "seed", "image_png_base64"}
    assert streamed["type"] == "face" and shared <= set(http) & set(streamed) and streamed["seed"] == http["seed"] == 7
    for answer in (http, streamed):
        assert answer["confidence"] == max(answer["probabilities"].values())
        assert answer["emotion"] == max(answer["probabilities"], key=answer["probabilities"].get)
        drawn = live.get("/generate", params={"emotion": answer["emotion"], "seed": 7}).content
        assert base64.b64decode(answer["image_png_base64"]) == drawn


def test_without_a_seed_a_stream_draws_its_speakers_face_and_keeps_it(live, speech):
    """No seed: "face": "voice", seed null. The face comes from the first VOICE_WINDOWS windows'
    voice and is fixed after them: every later answer of one emotion is one PNG (17 answers, so
    some emotion comes back among the 14 later ones)."""
    from service.live import VOICE_WINDOWS

    with live.websocket_connect("/ws/speech-to-face?rate=16000") as ws:
        answers = speak(ws, np.tile(speech, 2))
    assert len(answers) == 17 and all(a["type"] == "face" and a["face"] == "voice" and a["seed"] is None for a in answers)
    later: dict[str, list[str]] = {}
    for a in answers[VOICE_WINDOWS:]:
        later.setdefault(a["emotion"], []).append(a["image_png_base64"])
    assert all(len(set(pngs)) == 1 for pngs in later.values())
