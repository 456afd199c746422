"""The demo page in a real browser: headless Chromium (Debian's, driven by Playwright) uploads a
fixture clip and sees the emotion, the probability bars and the face appear."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHIPPED_GENERATOR, SHIPPED_SER, fixture_clips, live_server

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("EMOFACE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(scope="module")
def live_server_url():
    with live_server(SHIPPED_SER, SHIPPED_GENERATOR) as (_, base):
        yield base


ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def playwright():
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            raise AssertionError(f"{CHROMIUM} is missing in CI: .ci/run installs Debian's chromium")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium); CI runs this test")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    yield b
    b.close()


def test_upload_shows_emotion_bars_and_face(live_server_url, browser):
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(live_server_url + "/")
    clip = fixture_clips()["angry"]
    page.set_input_files("#upload", str(clip))
    page.wait_for_selector("#result:not([hidden])", timeout=20_000)
    page.wait_for_function("document.getElementById('face').naturalWidth > 0", timeout=20_000)
    emotion = page.text_content("#emotion")
    assert emotion in ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    assert page.locator("#bars .bar").count() == 8
    assert page.evaluate("document.getElementById('face').naturalWidth") == 192
    assert page.text_content("#status") == "Done."
    # the generate panel draws a grid of faces
    page.select_option("#gen-emotion", "surprised")
    page.fill("#gen-count", "4")
    page.click("#gen-form button[type=submit]")
    page.wait_for_function("document.getElementById('gen-image').naturalWidth > 0", timeout=20_000)
    assert page.evaluate("document.getElementById('gen-image').naturalWidth") == 256
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo-page.png"), full_page=True)
    assert (ARTIFACTS / "demo-page.png").stat().st_size > 10_000
    page.close()


def test_a_phone_recording_uploads_like_a_wav(live_server_url, browser, tmp_path):
    """An iPhone-style voice memo (M4A/AAC) through the demo page's upload field."""
    import soundfile as sf

    from tests.conftest import container_bytes

    data, sr = sf.read(fixture_clips()["angry"])
    memo = tmp_path / "memo.m4a"
    memo.write_bytes(container_bytes(data, sr, "m4a"))
    page = browser.new_page()
    page.goto(live_server_url + "/")
    assert ".m4a" in page.get_attribute("#upload", "accept")
    page.set_input_files("#upload", str(memo))
    page.wait_for_function("document.getElementById('face').naturalWidth > 0", timeout=20_000)
    assert page.text_content("#status") == "Done." and page.locator("#bars .bar").count() == 8
    page.close()


def test_error_is_shown_for_a_bad_file_and_the_last_result_goes(live_server_url, browser, tmp_path):
    """Nothing of a result shows before an upload; a bad file after a good one shows the problem's
    detail alone, and the previous face and bars go."""
    page = browser.new_page()
    page.goto(live_server_url + "/")
    assert not page.is_visible("#result") and not page.is_visible("#face")
    page.set_input_files("#upload", str(fixture_clips()["sad"]))
    page.wait_for_selector("#result", state="visible", timeout=20_000)
    bad = tmp_path / "not-audio.wav"
    bad.write_bytes(b"this is not audio" * 100)
    page.set_input_files("#upload", str(bad))
    page.wait_for_selector("#status.error", timeout=20_000)
    status = page.text_content("#status")
    assert status.startswith("not decodable audio") and "Errno" not in status, status
    assert not page.is_visible("#result")
    page.close()


def test_a_photo_is_edited_and_drawn_on_by_the_voice(live_server_url, browser, tmp_path):
    """The photo path: choose a photo, edit it to an emotion, then upload speech with "on my photo"
    ticked: the result is the photo (its size), edited to the emotion heard. A photo without a face
    shows the problem's detail, and the last edit goes."""
    from tests import hostile

    photo = tmp_path / "me.png"
    face = hostile.face_photo()
    face.save(photo)
    page = browser.new_page(viewport={"width": 1000, "height": 1200})
    page.goto(live_server_url + "/")
    assert page.is_disabled("#edit") and page.is_disabled("#use-photo") and not page.is_visible("#photo-result")
    page.set_input_files("#photo-file", str(photo))
    page.select_option("#edit-emotion", "surprised")
    page.click("#edit")
    page.wait_for_function("document.getElementById('photo-after').naturalWidth > 0", timeout=20_000)
    assert page.evaluate("document.getElementById('photo-after').naturalWidth") == face.width
    assert page.text_content("#photo-caption") == "edited to surprised"
    assert page.is_checked("#use-photo")
    page.set_input_files("#upload", str(fixture_clips()["happy"]))
    page.wait_for_function("document.getElementById('face').naturalWidth > 0", timeout=20_000)
    assert page.evaluate("document.getElementById('face').naturalWidth") == face.width
    assert page.text_content("#caption").startswith("your photo, edited to " + page.text_content("#emotion"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo-photo.png"), full_page=True)
    blank = tmp_path / "wall.png"
    hostile.Image.new("RGB", (300, 300), (200, 180, 160)).save(blank)
    page.set_input_files("#photo-file", str(blank))
    page.click("#edit")
    page.wait_for_selector("#photo-status.error", timeout=20_000)
    assert page.text_content("#photo-status").startswith("no frontal face was found")
    assert not page.is_visible("#photo-result")
    page.close()


def test_the_page_fits_a_phone_screen(live_server_url, browser):
    """At 390 px wide the face, the bars and their figures stay inside the page and their card."""
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(live_server_url + "/")
    page.set_input_files("#upload", str(fixture_clips()["happy"]))
    page.wait_for_selector("#bars .bar", timeout=20_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    card = page.locator("#speech").bounding_box()
    for box in (page.locator("#bars").bounding_box(), page.locator("#face").bounding_box()):
        assert card["x"] <= box["x"] and box["x"] + box["width"] <= card["x"] + card["width"], (box, card)
    page.close()


def test_api_docs_render_with_no_internet(live_server_url, browser):
    """/docs in a browser that may reach only the service: Swagger UI renders every route."""
    context = browser.new_context()
    offsite = []

    def only_the_service(route):
        if route.request.url.startswith(live_server_url):
            route.continue_()
        else:
            offsite.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_service)
    page = context.new_page()
    page.goto(live_server_url + "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    paths = set(page.locator(".opblock-summary-path").all_text_contents())
    assert {"/emotion", "/generate", "/speech-to-face", "/health", "/ready"} <= {p.strip() for p in paths}, paths
    page.goto(live_server_url + "/redoc")  # ReDoc too, its logo and icon included
    page.wait_for_selector("text=/speech-to-face", timeout=20_000)
    page.wait_for_load_state("networkidle")
    assert offsite == []
    context.close()


def test_live_mode_follows_a_fake_microphone(live_server_url, playwright, tmp_path):
    """Live mode in Chromium, a committed clip as the microphone (looped by Chromium): faces and
    emotions arrive over the WebSocket while it plays, and Stop ends the stream."""
    import soundfile as sf

    data, sr = sf.read(fixture_clips()["happy"])
    mic = tmp_path / "mic.wav"
    sf.write(mic, data, sr, subtype="PCM_16")
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=[
        *ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}", "--autoplay-policy=no-user-gesture-required"])
    try:
        page = b.new_context(permissions=["microphone"]).new_page()
        page.goto(live_server_url + "/")
        page.click("#live")
        page.wait_for_function("/^Live: [3-9] faces/.test(document.getElementById('status').textContent)",
                               timeout=30_000)
        assert page.evaluate("document.getElementById('face').src").startswith("data:image/png;base64,")
        assert page.text_content("#emotion") in ("neutral", "calm", "happy", "sad", "angry", "fearful",
                                                 "disgust", "surprised")
        assert page.locator("#bars .bar").count() == 8
        page.click("#live")
        assert page.text_content("#status") == "Live stopped." and page.text_content("#live") == "Live"
    finally:
        b.close()
