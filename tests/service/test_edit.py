"""/edit and /speech-to-face's photo field, through the real app with the shipped editor: the
answer is the same photo, same size, changed only around the face; every bad photo is a 4xx
problem naming what was wrong, and the next request is served."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from ml.edit import FaceFinder, luma
from tests import hostile
from tests.conftest import assert_problem, fixture_clips

BAD = hostile.bad_photos()


@pytest.fixture(scope="module")
def face() -> Image.Image:
    return hostile.face_photo()


@pytest.fixture(scope="module")
def face_png(face) -> bytes:
    return hostile.encoded_image(face, "PNG")


def decoded(content: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(content))
    assert img.format == "PNG" and img.mode == "RGB"
    return np.asarray(img)


def test_edit_changes_the_face_and_nothing_else(client, face, face_png):
    r = client.post("/edit?emotion=happy", files={"photo": ("me.png", face_png, "image/png")})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.headers["x-emotion"] == "happy"
    out, before = decoded(r.content), np.asarray(face)
    assert out.shape == before.shape
    box = FaceFinder().find(luma(before))
    changed = np.abs(out.astype(int) - before).sum(2) > 0
    assert changed.any(), "the face did not change"
    ys, xs = np.nonzero(changed)
    a = np.radians(box.angle)
    half = box.side / 2 * (abs(np.cos(a)) + abs(np.sin(a))) + 1  # the rotated face box's extent, and rounding
    assert xs.min() >= box.cx - half and xs.max() <= box.cx + half and ys.min() >= box.cy - half and ys.max() <= box.cy + half


def test_edit_keeps_the_colour(client, face, face_png):
    """The change is added to R, G and B alike: the colour differences of each pixel stay."""
    out = decoded(client.post("/edit?emotion=surprise", files={"photo": ("me.png", face_png, "image/png")}).content)
    before = np.asarray(face).astype(int)
    unclipped = (out > 0).all(2) & (out < 255).all(2)
    diff = out.astype(int) - before
    spread = (diff.max(2) - diff.min(2))[unclipped]
    assert spread.max() <= 1  # the rounding of each channel


def test_edit_is_deterministic_and_follows_the_emotion(client, face_png):
    files = {"photo": ("me.png", face_png, "image/png")}
    a, b = (client.post("/edit?emotion=sad", files=files).content for _ in range(2))
    assert a == b
    assert client.post("/edit?emotion=angry", files=files).content != a
    r = client.post("/edit?emotion=calm", files=files)  # calm is drawn as neutral, as for /generate
    assert r.headers["x-emotion"] == "calm"


def test_edit_reads_jpeg_webp_greyscale_and_exif_orientation(client, face):
    for name, content in (("jpeg", hostile.encoded_image(face, "JPEG", quality=92)),
                          ("webp", hostile.encoded_image(face, "WEBP", quality=90)),
                          ("grey", hostile.encoded_image(face.convert("L"), "PNG"))):
        r = client.post("/edit?emotion=happy", files={"photo": (f"me.{name}", content, "image/*")})
        assert r.status_code == 200, (name, r.text)
        assert decoded(r.content).shape == (face.height, face.width, 3)
    # stored turned a quarter anticlockwise, with EXIF orientation 6 (turn it clockwise to show), as a
    # phone held upright writes it: edited and answered upright
    sideways = face.transpose(Image.Transpose.ROTATE_90)
    r = client.post("/edit?emotion=happy", files={"photo": ("side.jpg", hostile.with_orientation(sideways, 6), "image/jpeg")})
    assert r.status_code == 200, r.text
    assert decoded(r.content).shape == (face.height, face.width, 3)


@pytest.mark.parametrize("name", list(BAD))
def test_bad_photos_are_refused_by_name(client, face_png, name):
    content, status, slug = BAD[name]
    r = client.post("/edit?emotion=happy", files={"photo": ("photo.png", content, "image/png")})
    assert_problem(r, status, slug)
    ok = client.post("/edit?emotion=happy", files={"photo": ("me.png", face_png, "image/png")})
    assert ok.status_code == 200, "the next request is served"


def test_edit_request_errors(client, face_png):
    assert_problem(client.post("/edit?emotion=happy", files={"file": ("me.png", face_png, "image/png")}),
                   422, "invalid-parameter", "photo")
    assert_problem(client.post("/edit?emotion=happy", data={"photo": "not a file"}, files={"other": ("x", b"x")}),
                   422, "invalid-parameter", "photo")
    assert_problem(client.post("/edit?emotion=happy", content=face_png, headers={"content-type": "image/png"}),
                   415, "unsupported-media-type")
    assert_problem(client.post("/edit?emotion=smug", files={"photo": ("me.png", face_png, "image/png")}),
                   422, "invalid-parameter", "smug")
    assert_problem(client.post("/edit", files={"photo": ("me.png", face_png, "image/png")}), 422, "invalid-parameter")


def test_speech_to_face_edits_the_uploaded_photo(client, face, face_png):
    clip = fixture_clips()["happy"].read_bytes()
    files = {"file": ("clip.flac", clip, "audio/flac"), "photo": ("me.png", face_png, "image/png")}
    r = client.post("/speech-to-face", files=files)
    assert r.status_code == 200, r.text
    assert "x-seed" not in r.headers and r.headers["x-emotion"]
    assert decoded(r.content).shape == (face.height, face.width, 3)
    heard = client.post("/emotion", files={"file": ("clip.flac", clip, "audio/flac")}).json()["emotion"]
    alone = client.post(f"/edit?emotion={heard}", files={"photo": ("me.png", face_png, "image/png")})
    assert r.headers["x-emotion"] == heard and r.content == alone.content
    j = client.post("/speech-to-face", files=files, headers={"accept": "application/json"}).json()
    assert j["seed"] is None and j["face"] == "photo" and base64.b64decode(j["image_png_base64"]) == r.content
    assert r.headers["x-face"] == "photo"
    without = client.post("/speech-to-face", files={"file": ("clip.flac", clip, "audio/flac")})
    assert without.headers["x-face"] == "voice" and decoded_size(without.content) == (48, 48)


def decoded_size(content: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(content)).size


def test_speech_to_face_refuses_a_bad_photo_before_hearing(client):
    clip = fixture_clips()["happy"].read_bytes()
    content, status, slug = BAD["PDF named .png"]
    r = client.post("/speech-to-face", files={"file": ("clip.flac", clip, "audio/flac"),
                                              "photo": ("me.png", content, "image/png")})
    assert_problem(r, status, slug, "PDF")
    content, status, slug = BAD["no face (a gradient)"]
    r = client.post("/speech-to-face", files={"file": ("clip.flac", clip, "audio/flac"),
                                              "photo": ("me.png", content, "image/png")})
    assert_problem(r, status, slug)
