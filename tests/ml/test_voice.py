"""One face per voice (ml.voice): the speaker encoder's file is checked, a clip's embedding is the
same alone and in a batch and does not hear the level or the silence around it, and the latent map
keeps one speaker's recordings together and different speakers apart."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from ml import audio, checkpoint
from ml.data import ravdess
from ml.import_voice import fit_map, read_wheel
from ml.models.voice import VoiceEncoder, VoiceEncoderConfig
from ml.voice import VoicePrint, centre_partial
from tests.conftest import DATA, ROOT, fixture_clips

SHIPPED_VOICE = ROOT / "weights" / "voice.pt"


@pytest.fixture(scope="module")
def voice() -> VoicePrint:
    return VoicePrint.from_checkpoint(SHIPPED_VOICE)[0]


@pytest.fixture(scope="module")
def waves() -> dict[str, np.ndarray]:
    return {e: audio.decode(p).samples for e, p in fixture_clips().items()}


def test_a_wheel_whose_hash_differs_is_refused(tmp_path):
    fake = tmp_path / "Resemblyzer-0.1.4-py3-none-any.whl"
    fake.write_bytes(b"PK not the wheel")
    with pytest.raises(checkpoint.CheckpointError, match="sha256"):
        read_wheel(fake, 128)


def test_the_partial_is_the_clips_centre_and_a_short_clip_is_padded_with_silence():
    mel = torch.arange(300, dtype=torch.float32)[:, None].repeat(1, 40)
    assert centre_partial(mel, 160)[:, 0].tolist() == list(range(70, 230))
    short = centre_partial(mel[:100], 160)
    assert short.shape == (160, 40) and short[:100, 0].tolist() == list(range(100)) and short[100:].abs().sum() == 0


def test_the_shipped_file_maps_to_the_generators_latent(voice):
    generator = checkpoint.read(ROOT / "weights" / "generator.pt")
    assert voice.model.config.latent_dim == generator["config"]["latent_dim"]
    meta = checkpoint.read(SHIPPED_VOICE)
    assert meta["feature_params"] == audio.VOICE_FEATURE_PARAMS and meta["data"]["pretrained"]["licence"] == "Apache-2.0"


def test_an_embedding_is_the_same_alone_and_in_a_batch(voice, waves):
    """As the service hears voices: clip by clip on one thread (service.engines.hear)."""
    clips = list(waves.values())
    with ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        together = list(pool.map(voice.embed, clips))
        alone = [pool.submit(voice.embed, w).result() for w in clips]
    assert all(np.array_equal(a, b) for a, b in zip(together, alone))
    assert all(abs(np.linalg.norm(e) - 1) < 1e-5 for e in alone)


def test_the_level_and_the_silence_around_a_voice_do_not_change_it(voice, waves):
    wave = waves["happy"]
    e = voice.embed(wave)
    quiet = voice.embed(wave * 0.1)
    padded = voice.embed(np.concatenate([np.zeros(16_000, np.float32), wave, np.zeros(8_000, np.float32)]))
    assert float(e @ quiet) > 0.999 and float(e @ padded) > 0.99


def test_one_speakers_emotions_give_one_face(voice, waves):
    """The 8 fixture clips are one actor in 8 emotions: their latents lie far closer together
    than random seeds' latents do (sqrt(2 * 128) = 16 apart on average)."""
    z = voice.latents(np.stack([voice.embed(w) for w in waves.values()]))
    assert torch.allclose(z.norm(dim=1), torch.full((len(z),), 128 ** 0.5), atol=1e-3)
    within = torch.pdist(z).mean().item()
    assert within < 0.5 * (2 * 128) ** 0.5, within


def test_the_map_separates_speakers_and_ignores_what_varies_within_one():
    """Synthetic speakers: a small spread between them, a larger nuisance (the emotion) within each."""
    rng = np.random.default_rng(0)
    speakers, dim = 30, 32
    centres = rng.standard_normal((speakers, dim))
    nuisance = rng.standard_normal(dim)
    E, who = [], []
    for s in range(speakers):
        for _ in range(12):
            E.append(centres[s] + 3 * rng.standard_normal() * nuisance + 0.2 * rng.standard_normal(dim))
            who.append(s)
    E, who = np.array(E, np.float32), np.array(who)
    center, to_latent = fit_map(E, who, latent_dim=16, dims=8)
    model = VoiceEncoder(VoiceEncoderConfig(embedding=dim, latent_dim=16))
    model.center.copy_(torch.from_numpy(center))
    model.to_latent.copy_(torch.from_numpy(to_latent))
    z = model.latent(torch.from_numpy(E))
    D = torch.cdist(z, z).numpy()
    same, off = who[:, None] == who[None], ~np.eye(len(who), dtype=bool)
    assert D[same & off].mean() < 0.3 * D[~same].mean()
    raw = torch.cdist(torch.from_numpy(E), torch.from_numpy(E)).numpy()
    assert raw[same & off].mean() > 0.5 * raw[~same].mean()  # the nuisance dominates before the map


@pytest.mark.data
def test_two_actors_get_two_faces(voice):
    """RAVDESS actors 1 and 2, 8 clips each: each actor's latents are closer together than to the other's."""
    clips = [c for c in ravdess.load_manifest(DATA / "ravdess") if c.actor in (1, 2)]
    pick = [c for a in (1, 2) for c in [c for c in clips if c.actor == a][::6][:8]]
    z = voice.latents(np.stack([voice.embed(audio.decode(c.path).samples) for c in pick]))
    who = np.array([c.actor for c in pick])
    D = torch.cdist(z, z).numpy()
    same, off = who[:, None] == who[None], ~np.eye(len(who), dtype=bool)
    assert D[same & off].mean() < 0.6 * D[~same].mean()
