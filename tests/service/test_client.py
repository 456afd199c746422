"""service.client against the real app over real HTTP: the same answers as raw requests."""

import asyncio
import io

import httpx
import pytest
from PIL import Image

from ml.labels import EMOTIONS
from service.client import AsyncClient, Client, EmofaceError
from tests.conftest import fixture_clips, live_server


@pytest.fixture(scope="module")
def server(tiny_weights):
    with live_server(*tiny_weights, log_level="WARNING") as (_, base):
        yield base


def test_emotion_from_a_path_bytes_or_a_file_matches_the_route(server):
    clip = fixture_clips()["happy"]
    raw = httpx.post(server + "/emotion", files={"file": (clip.name, clip.read_bytes())}).json()
    with Client(server) as emoface:
        results = [emoface.emotion(clip), emoface.emotion(clip.read_bytes())]
        with open(clip, "rb") as fh:
            results.append(emoface.emotion(fh))
    for r in results:
        assert r.probabilities == raw["probabilities"] and set(r.probabilities) == set(EMOTIONS)
        assert r.emotion == raw["emotion"] == max(r.probabilities, key=r.probabilities.get)
        assert (r.duration_s, r.sample_rate, r.channels) == (raw["duration_s"], raw["sample_rate"], raw["channels"])


def test_generate_and_speech_to_face_return_the_png_and_its_headers(server):
    with Client(server) as emoface:
        face = emoface.generate("happy", seed=7, size=64)
        raw = httpx.get(server + "/generate", params={"emotion": "happy", "seed": 7, "size": 64})
        assert face.png == raw.content and (face.emotion, face.seed, face.confidence) == ("happy", 7, None)
        grid = emoface.generate("sad", seed=1, count=4)
        assert Image.open(io.BytesIO(grid.png)).size == (96, 96)
        clip = fixture_clips()["angry"]
        spoken = emoface.speech_to_face(clip, size=96)
        heard = emoface.emotion(clip)
        assert spoken.emotion == heard.emotion and spoken.confidence == pytest.approx(heard.confidence, abs=1e-6)
        assert Image.open(io.BytesIO(spoken.png)).size == (96, 96)
        assert emoface.speech_to_face(clip, size=96).png == spoken.png  # the voice chooses the face
        assert (spoken.seed, spoken.face) == (None, "voice")
        seeded = emoface.speech_to_face(clip, seed=8, size=96)
        assert (seeded.seed, seeded.face) == (8, "seed") and seeded.png != spoken.png


def test_edit_and_speech_to_face_on_a_photo(server, tmp_path):
    from tests import hostile

    photo = tmp_path / "me.png"
    hostile.face_photo().save(photo)
    clip = fixture_clips()["sad"]
    with Client(server) as emoface:
        edited = emoface.edit(photo, "surprised")
        raw = httpx.post(server + "/edit", params={"emotion": "surprised"}, files={"photo": ("me.png", photo.read_bytes())})
        assert edited.png == raw.content and (edited.emotion, edited.seed) == ("surprised", None)
        assert emoface.edit(photo.read_bytes(), "surprised") == edited
        spoken = emoface.speech_to_face(clip, photo=photo)
        assert spoken.seed is None and spoken.emotion == emoface.emotion(clip).emotion
        assert Image.open(io.BytesIO(spoken.png)).size == Image.open(photo).size
        with pytest.raises(EmofaceError) as no_face:
            emoface.edit(hostile.bad_photos()["no face (a gradient)"][0], "happy")
        assert no_face.value.status == 422 and no_face.value.problem_type.endswith("/no-face")

    async def run():
        async with AsyncClient(server) as emoface:
            return await emoface.edit(photo, "surprised"), await emoface.speech_to_face(clip, photo=photo)

    assert asyncio.run(run()) == (edited, spoken)


def test_errors_raise_with_the_problem_fields(server):
    with Client(server) as emoface:
        with pytest.raises(EmofaceError) as bad:
            emoface.generate("bored")
        assert bad.value.status == 422 and bad.value.problem_type.startswith("https://") and "bored" in bad.value.detail
        with pytest.raises(EmofaceError) as silent:
            emoface.emotion(b"not audio at all")
        assert 400 <= silent.value.status < 500


def test_api_key_is_sent_when_given(tiny_weights):
    with live_server(*tiny_weights, log_level="WARNING", api_key="s3cret") as (_, base):
        with Client(base) as anonymous, pytest.raises(EmofaceError) as refused:
            anonymous.generate("happy")
        assert refused.value.status == 401
        with Client(base, api_key="s3cret") as emoface:
            assert emoface.generate("happy", seed=1).seed == 1


def test_async_client_gives_the_same_answers(server):
    clip = fixture_clips()["sad"]

    async def run():
        async with AsyncClient(server) as emoface:
            return await asyncio.gather(emoface.emotion(clip), emoface.generate("happy", seed=7, size=64),
                                        emoface.speech_to_face(clip), emoface.ready())

    heard, face, spoken, ready = asyncio.run(run())
    with Client(server) as emoface:
        assert heard == emoface.emotion(clip) and face == emoface.generate("happy", seed=7, size=64)
        assert spoken == emoface.speech_to_face(clip)
    assert ready["status"] == "ready"


def test_the_readme_example_runs(server, tmp_path, capsys):
    import re

    from tests.conftest import ROOT

    (block,) = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), flags=re.M | re.S)
    (tmp_path / "clip.wav").write_bytes(fixture_clips()["happy"].read_bytes())
    code = block.replace('"http://localhost:8000"', repr(server)).replace('"clip.wav"', repr(str(tmp_path / "clip.wav")))
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.split()[0] in EMOTIONS and printed.rstrip().endswith(" 7")


def test_live_stream_helper_yields_faces_with_one_seed(server):
    import numpy as np

    from ml import audio

    wave = audio.decode(fixture_clips()["happy"]).samples
    pcm = (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()

    async def chunks():
        for i in range(0, len(pcm), 3200):  # 0.1 s messages at 5x real time
            yield pcm[i:i + 3200]
            await asyncio.sleep(0.02)

    async def run():
        async with AsyncClient(server) as emoface:
            return [a async for a in emoface.live(chunks(), rate=16_000, seed=5, linger_s=1.0)]

    answers = asyncio.run(run())
    faces = [a for a in answers if a.kind == "face"]
    assert faces and all(a.seed == 5 and a.emotion in EMOTIONS for a in faces)
    assert Image.open(io.BytesIO(faces[-1].png)).size == (48, 48) and faces[-1].t <= len(wave) / 16_000 + 0.2

    async def bad_rate():
        async with AsyncClient(server) as emoface:
            return [a async for a in emoface.live([b"\x00\x00"], rate=1000)]

    with pytest.raises(EmofaceError) as closed:
        asyncio.run(bad_rate())
    assert closed.value.status == 1008 and "rate" in closed.value.detail
