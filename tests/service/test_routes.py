"""Every route, parameter and status code, through the real app (lifespan included)."""

import base64
import io
import re
import time

import numpy as np
import pytest
from PIL import Image

from ml.labels import EMOTIONS
from tests.conftest import SHIPPED_UPSAMPLER, assert_problem, fixture_clips, make_client, speechlike, wait_ready, wav_bytes

def clip_bytes(emotion: str = "happy") -> bytes:
    return fixture_clips()[emotion].read_bytes()


def png(content: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(content))
    img.load()
    return img


def test_health_ready_and_metrics(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["status"] == "ready" and {m["name"] for m in ready["models"]} == {"ser", "generator", "editor", "voice", "upsampler"}
    assert all(len(m["sha256"]) == 64 for m in ready["models"])
    assert {m["path"] for m in ready["models"]} == {"ser.pt", "generator.pt", "editor.pt", "voice_16.pt", "upsampler.pt"}, \
        "file names only: no host paths leak"
    assert {m["name"]: m["device"] for m in ready["models"]}["ser"] == "cpu"  # the SER runs on the CPU, always
    client.get("/generate?emotion=sad&seed=1")
    text = client.get("/metrics").text
    assert 'emoface_requests_total{method="GET",route="/generate",status="200"}' in text
    assert "emoface_request_seconds_bucket" in text and 'emoface_batch_size_count{model="generator"}' in text


def gauge(text: str, name: str) -> float:
    return float(re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)[1])


def test_admitted_work_gauges_rise_under_load_and_return_to_zero(client):
    """/metrics exposes each model's admitted work (what an autoscaler reads): 0 at rest, above 0
    while requests are in flight, 0 again after, under the budget throughout."""
    from concurrent.futures import ThreadPoolExecutor

    text = client.get("/metrics").text
    emotion, face = 'emoface_admitted_work{model="emotion"}', 'emoface_admitted_work{model="face"}'
    assert gauge(text, emotion) == 0 and gauge(text, face) == 0 and gauge(text, "emoface_live_streams") == 0
    assert gauge(text, 'emoface_admitted_work_capacity{model="emotion"}') > 0
    assert gauge(text, "emoface_live_streams_capacity") > 0
    body = wav_bytes(speechlike(8.0))
    seen = []
    with ThreadPoolExecutor(8) as pool:
        calls = [pool.submit(client.post, "/emotion", content=body, headers={"Content-Type": "audio/wav"})
                 for _ in range(24)]
        while not all(c.done() for c in calls):
            seen.append(gauge(client.get("/metrics").text, emotion))
    assert all(c.result().status_code in (200, 503) for c in calls)
    assert max(seen) > 0, seen
    assert gauge(client.get("/metrics").text, emotion) == 0


def test_the_live_streams_gauge_counts_open_streams(client):
    with client.websocket_connect("/ws/speech-to-face?rate=16000&seed=7"):
        assert gauge(client.get("/metrics").text, "emoface_live_streams") == 1
    for _ in range(100):  # the server closes its side after the client's close arrives
        if gauge(client.get("/metrics").text, "emoface_live_streams") == 0:
            break
        time.sleep(0.02)
    assert gauge(client.get("/metrics").text, "emoface_live_streams") == 0


def test_ready_turns_503_the_moment_the_drain_begins(tiny_weights):
    """What the server's SIGTERM handler starts (service/server.py): /ready answers 503 at once, so
    the proxy and the kubelet take the replica out of rotation, while /health stays 200 (no restart)."""
    with make_client(*tiny_weights) as c:
        wait_ready(c)
        c.app.state.drain.begin(30)
        deadline = time.monotonic() + 1.0
        while (r := c.get("/ready")).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert_problem(r, 503, "shutting-down")
        assert r.headers["retry-after"] == "1"
        assert c.get("/health").status_code == 200


def test_new_work_is_served_for_the_linger_then_refused(tiny_weights):
    """The drain's linger (service/server.py on SIGTERM): /ready is 503 at once, new work is still
    served while a proxy may still send it, and refused with 503 once the linger has passed."""
    with make_client(*tiny_weights) as c:
        wait_ready(c)
        c.app.state.drain.begin(30, linger_s=1.0)
        time.sleep(0.05)
        assert_problem(c.get("/ready"), 503, "shutting-down")
        assert c.get("/generate?emotion=happy").status_code == 200
        time.sleep(1.2)
        r = c.get("/generate?emotion=happy")
        assert_problem(r, 503, "shutting-down")
        assert r.headers["retry-after"]


def test_a_second_drain_call_without_a_linger_refuses_at_once(tiny_weights):
    """A second SIGTERM (or Ctrl-C) during the linger: new work is refused at once, not when the
    linger would have ended."""
    with make_client(*tiny_weights) as c:
        wait_ready(c)
        assert c.app.state.drain.begin(30, linger_s=20) is True
        time.sleep(0.05)
        assert c.get("/generate?emotion=happy").status_code == 200
        assert c.app.state.drain.begin(30) is False
        time.sleep(0.05)
        assert_problem(c.get("/generate?emotion=happy"), 503, "shutting-down")


def test_not_ready_before_lifespan(tiny_weights):
    c = make_client(*tiny_weights)  # not entered: the lifespan has not loaded the models
    assert_problem(c.get("/ready"), 503, "not-ready")
    assert_problem(c.get("/generate?emotion=happy"), 503, "not-ready")
    assert c.get("/health").status_code == 200


def test_demo_page_docs_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and "Speech to face" in page.text
    assert client.get("/static/app.js").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/emotion", "/generate", "/speech-to-face", "/health", "/ready"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/emotion"]["post"]["requestBody"]["content"]


@pytest.mark.parametrize("page, assets", [("/docs", ["swagger-ui-bundle.js", "swagger-ui.css"]),
                                          ("/redoc", ["redoc.standalone.js"])])
def test_api_docs_load_their_assets_from_the_service_not_a_cdn(client, page, assets):
    """FastAPI's default pages load Swagger UI and ReDoc from a CDN, and are blank offline."""
    html = client.get(page)
    assert html.status_code == 200 and "/openapi.json" in html.text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text) + re.findall(r"""url: ?["']([^"']+)["']""", html.text)
    assert urls and all(u.startswith("/") for u in urls), urls  # nothing from another host
    for name in assets:
        asset = client.get(f"/static/docs/{name}")
        assert asset.status_code == 200 and len(asset.content) > 10_000, name


@pytest.mark.parametrize("how", ["multipart", "raw"])
def test_emotion_contract(client, how):
    data = clip_bytes()
    if how == "multipart":
        r = client.post("/emotion", files={"file": ("clip.flac", data, "audio/flac")})
    else:
        r = client.post("/emotion", content=data, headers={"Content-Type": "audio/flac"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"emotion", "confidence", "probabilities", "duration_s", "sample_rate", "channels"}
    assert list(body["probabilities"]) == list(EMOTIONS)
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert body["emotion"] == max(body["probabilities"], key=body["probabilities"].get)
    assert body["confidence"] == body["probabilities"][body["emotion"]]
    assert (body["sample_rate"], body["channels"]) == (16000, 1) and 3 < body["duration_s"] < 6


def test_emotion_answers_what_the_recognizer_hears(tiny_weights):
    """The service's /emotion probabilities are the recognizer's for the decoded clip, rounded to 1e-6."""
    from ml import audio
    from ml.recognize import EmotionRecognizer

    recognizer, _ = EmotionRecognizer.from_checkpoint(tiny_weights[0])
    want = recognizer.predict([audio.decode(clip_bytes()).samples])[0]
    with make_client(*tiny_weights) as client:
        wait_ready(client)
        got = client.post("/emotion", content=clip_bytes(), headers={"Content-Type": "audio/flac"}).json()
    np.testing.assert_allclose([got["probabilities"][e] for e in EMOTIONS], want, atol=1e-6)


def test_emotion_probabilities_are_the_checkpoints_calibrated_ones(tiny_weights, client, tmp_path):
    """A checkpoint carrying a temperature of 4 and a class bias: /emotion's probabilities are
    softmax(log p / 4 + bias), where p are the same head's without them."""
    from ml import checkpoint
    from ml.calibration import Calibration

    loaded = checkpoint.load(tiny_weights[0], arch="ser-whisper")
    bias = np.array([0.5, 0, 0, 0, -0.5, 0, 0.25, -0.25])
    Calibration("temperature_bias", log_scale=float(np.log(1 / 4)), bias=bias.tolist()).install(loaded.model)
    calibrated = checkpoint.save(tmp_path / "ser.pt", loaded.model, labels=EMOTIONS, data=loaded.meta["data"])
    send = {"content": clip_bytes(), "headers": {"Content-Type": "audio/flac"}}
    raw = client.post("/emotion", **send).json()
    with make_client(calibrated, tiny_weights[1]) as c:
        wait_ready(c)
        got = c.post("/emotion", **send).json()
    z = np.log([raw["probabilities"][e] for e in EMOTIONS]) / 4 + bias
    want = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    np.testing.assert_allclose([got["probabilities"][e] for e in EMOTIONS], want, atol=5e-6)  # both rounded to 1e-6
    assert got["confidence"] == got["probabilities"][got["emotion"]] and got["confidence"] < raw["confidence"]


def test_favicon_is_the_pages_icon(client):
    r = client.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and png(r.content).size == (32, 32)
    assert '<link rel="icon" href="/favicon.ico"' in client.get("/").text


def test_emotion_reports_input_format(client):
    x = speechlike(1.5, sr=48_000)
    r = client.post("/emotion", files={"file": ("s.wav", wav_bytes(np.stack([x, x, x], 1), 48_000, "PCM_24"))})
    assert r.status_code == 200
    assert (r.json()["sample_rate"], r.json()["channels"], r.json()["duration_s"]) == (48000, 3, 1.5)


def test_generate_png_headers_and_aliases(client):
    r = client.get("/generate", params={"emotion": "Surprise", "seed": 5})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-emotion"] == "surprised" and r.headers["x-seed"] == "5"
    img = png(r.content)
    assert img.size == (48, 48) and img.mode == "L"
    assert client.get("/generate?emotion=fear&seed=5").headers["x-emotion"] == "fearful"


def test_generate_random_seed_is_reported_and_reproducible(client):
    r = client.get("/generate?emotion=happy")
    seed = int(r.headers["x-seed"])
    assert 0 <= seed < 2**32
    assert client.get(f"/generate?emotion=happy&seed={seed}").content == r.content


def test_generate_same_seed_same_bytes_and_calm_is_neutral(client):
    a = client.get("/generate?emotion=angry&seed=123&size=100").content
    assert client.get("/generate?emotion=angry&seed=123&size=100").content == a
    assert client.get("/generate?emotion=angry&seed=124&size=100").content != a
    assert png(a).size == (100, 100)
    calm = client.get("/generate?emotion=calm&seed=9").content
    assert calm == client.get("/generate?emotion=neutral&seed=9").content


def test_generate_enlarges_with_the_upsampler(client, tiny_weights):
    """A face above 48 px is the learned 2x (ml.enlarge), then Lanczos: not Lanczos from 48 px."""
    from ml.enlarge import Enlarger, lanczos
    from ml.generate import FaceGenerator
    from ml.labels import fer_index

    face = FaceGenerator.from_checkpoint(tiny_weights[1])[0].render([fer_index("happy")], [5])
    enlarger = Enlarger.from_checkpoint(SHIPPED_UPSAMPLER)[0]
    for size in (64, 96, 200):
        got = np.array(png(client.get(f"/generate?emotion=happy&seed=5&size={size}").content))
        assert np.array_equal(got, enlarger.enlarge(face, size)[0])
        assert not np.array_equal(got, lanczos(face, size)[0])
    assert np.array_equal(np.array(png(client.get("/generate?emotion=happy&seed=5").content)), face[0])  # 48 px: as drawn


def test_generate_grid(client):
    r = client.get("/generate?emotion=sad&seed=10&count=5&size=64")
    assert png(r.content).size == (3 * 64, 2 * 64)
    singles = [np.array(png(client.get(f"/generate?emotion=sad&seed={s}&size=64").content)) for s in (10, 11)]
    grid = np.array(png(r.content))
    assert np.array_equal(grid[:64, :64], singles[0]) and np.array_equal(grid[:64, 64:128], singles[1])


@pytest.mark.parametrize("query, param", [
    ("emotion=bored", "emotion"), ("", "emotion"), ("emotion=happy&seed=-1", "seed"),
    (f"emotion=happy&seed={2**32}", "seed"), ("emotion=happy&seed=abc", "seed"), ("emotion=happy&size=47", "size"),
    ("emotion=happy&size=1025", "size"), ("emotion=happy&count=0", "count"), ("emotion=happy&count=65", "count"),
    ("emotion=happy&count=64&size=1024", "count"),
])
def test_generate_invalid_parameters(client, query, param):
    assert_problem(client.get(f"/generate?{query}"), 422, "invalid-parameter", param)


def test_speech_to_face_png(client):
    data = clip_bytes("angry")
    r = client.post("/speech-to-face", files={"file": ("clip.flac", data)})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-emotion"] in EMOTIONS and 0 < float(r.headers["x-emotion-confidence"]) <= 1
    assert png(r.content).size == (48, 48)
    assert r.headers["x-face"] == "voice" and "x-seed" not in r.headers  # no seed: the voice's own face
    again = client.post("/speech-to-face", files={"file": ("other-name.flac", data)})
    assert again.content == r.content and again.headers["x-face"] == "voice"


def test_speech_to_face_seed_size_and_json(client):
    data = clip_bytes("happy")
    r = client.post("/speech-to-face?seed=77&size=128", files={"file": ("c.flac", data)})
    assert r.headers["x-seed"] == "77" and r.headers["x-face"] == "seed" and png(r.content).size == (128, 128)
    j = client.post("/speech-to-face?seed=77&size=128", files={"file": ("c.flac", data)},
                    headers={"Accept": "application/json"})
    body = j.json()
    assert set(body) == {"emotion", "confidence", "probabilities", "duration_s", "sample_rate", "channels", "seed",
                         "face", "image_png_base64"}
    assert body["seed"] == 77 and body["face"] == "seed" and base64.b64decode(body["image_png_base64"]) == r.content
    expected = client.get(f"/generate?emotion={body['emotion']}&seed=77&size=128").content
    assert r.content == expected
    assert_problem(client.post("/speech-to-face?size=9", files={"file": ("c.flac", data)}), 422, mentions="size")


def test_api_key(tiny_weights):
    with make_client(*tiny_weights, api_key="s3cret") as c:
        from tests.conftest import wait_ready

        wait_ready(c)
        assert_problem(c.get("/generate?emotion=happy"), 401, "unauthorized")
        assert_problem(c.get("/generate?emotion=happy", headers={"X-API-Key": "wrong"}), 401)
        assert c.get("/generate?emotion=happy", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/generate?emotion=happy", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert_problem(c.post("/emotion", files={"file": ("c.flac", clip_bytes())}), 401)
        assert c.get("/health").status_code == 200 and c.get("/ready").status_code == 200  # probes carry no key
        assert_problem(c.get("/metrics"), 401)  # operational detail: Prometheus sends the key as a Bearer token
        assert c.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/openapi.json").status_code == 200  # the API's shape is public, as in this repository


def test_body_limit(tiny_weights):
    with make_client(*tiny_weights, max_body_mb=0.05) as c:
        from tests.conftest import wait_ready

        wait_ready(c)
        big = wav_bytes(speechlike(3.0))  # 96 kB > 50 kB
        assert_problem(c.post("/emotion", content=big, headers={"Content-Type": "audio/wav"}), 413, "body-too-large")

        def chunks():  # no Content-Length: the limit is enforced while streaming
            for i in range(0, len(big), 8192):
                yield big[i:i + 8192]

        assert_problem(c.post("/emotion", content=chunks(), headers={"Content-Type": "audio/wav"}), 413)
        small = wav_bytes(speechlike(1.0))
        assert c.post("/emotion", content=small, headers={"Content-Type": "audio/wav"}).status_code == 200


def test_unknown_route_and_method(client):
    assert_problem(client.get("/nope"), 404)
    assert_problem(client.get("/emotion"), 405)


def test_cors(tiny_weights):
    with make_client(*tiny_weights, cors_origins=["https://demo.example"]) as c:
        r = c.options("/generate", headers={"Origin": "https://demo.example", "Access-Control-Request-Method": "GET"})
        assert r.headers["access-control-allow-origin"] == "https://demo.example"


@pytest.mark.parametrize("path, budget", [("/generate?emotion=happy", "face_work"), ("/emotion", "clips")])
def test_a_full_budget_refuses_before_routing(client, path, budget):
    """While a model's budget is full, its routes answer 503 in front of FastAPI (ShedMiddleware),
    without reading the body, and serve again once it frees."""
    b = getattr(client.app.state.engines, budget)
    b.used = b.capacity
    try:
        r = client.post(path, content=b"x") if path == "/emotion" else client.get(path)
    finally:
        b.used = 0
    assert_problem(r, 503, "overloaded", f"the {b.name} model is at capacity; retry shortly")
    assert r.headers["retry-after"] == "1"
    assert client.get("/generate?emotion=happy").status_code == 200
