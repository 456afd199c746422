"""The multi-corpus SER path: the speech manifest, balanced sampling, leave-one-corpus-out
splits, corpus scoring, and the frozen front end (the pinned encoder, Whisper's log-mel, its
features alone and in batches)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ml import audio, pretrained
from ml.data import speech
from ml.embed import SpeechEmbedder, cached_embeddings
from ml.labels import EMOTIONS
from ml.metrics import corpus_scores, on_corpus
from tests.conftest import DATA, FIXTURE_AUDIO, speechlike, wav_bytes


def _clip(corpus: str, emotion: str, speaker: int = 0) -> speech.SpeechClip:
    return speech.SpeechClip(Path(f"{corpus}/{emotion}{speaker}.opus"), corpus, "x", f"{corpus}-{speaker}", emotion)


def test_balanced_weights_equalise_corpora_and_their_classes():
    clips = ([_clip("big", "happy")] * 90 + [_clip("big", "sad")] * 10 + [_clip("small", "angry")] * 3
             + [_clip("small", "happy")] * 1)
    w = speech.balanced_weights(clips)
    assert w.mean() == pytest.approx(1.0)
    corpus = np.array([c.corpus for c in clips])
    emotion = np.array([c.emotion for c in clips])
    assert w[corpus == "big"].sum() == pytest.approx(w[corpus == "small"].sum())  # 100 clips weigh as 4 do
    assert w[(corpus == "big") & (emotion == "happy")].sum() == pytest.approx(w[(corpus == "big") & (emotion == "sad")].sum())
    assert w[(corpus == "small") & (emotion == "happy")].sum() == pytest.approx(
        w[(corpus == "small") & (emotion == "angry")].sum())


def test_class_weighting_equalises_classes_across_corpora_and_keeps_their_proportions():
    clips = ([_clip("a", "happy")] * 50 + [_clip("a", "sad")] * 50 + [_clip("b", "happy")] * 10
             + [_clip("b", "disgust")] * 2)
    w = speech.balanced_weights(clips, by="class")
    corpus = np.array([c.corpus for c in clips])
    emotion = np.array([c.emotion for c in clips])
    assert w.mean() == pytest.approx(1.0)
    totals = [w[emotion == e].sum() for e in ("happy", "sad", "disgust")]
    assert totals == pytest.approx([totals[0]] * 3)  # disgust, in one corpus and 2 clips, weighs as happy
    by_corpus = speech.balanced_weights(clips)
    happy = emotion == "happy"  # within happy, corpus a and b keep the corpus weighting's proportion
    ratio = lambda v: v[happy & (corpus == "a")].sum() / v[happy & (corpus == "b")].sum()  # noqa: E731
    assert ratio(w) == pytest.approx(ratio(by_corpus))
    with pytest.raises(ValueError, match="by must be"):
        speech.balanced_weights(clips, by="speaker")


def test_sampling_by_the_weights_draws_corpora_evenly():
    clips = [_clip("big", "happy")] * 200 + [_clip("small", "sad")] * 10
    w = torch.as_tensor(speech.balanced_weights(clips))
    draws = torch.multinomial(w, 20_000, replacement=True, generator=torch.Generator().manual_seed(0))
    assert abs(float((draws >= 200).float().mean()) - 0.5) < 0.02


def test_scores_on_a_corpus_merge_calm_and_neutral_only_where_one_is_missing():
    neutral, calm, happy = (EMOTIONS.index(e) for e in ("neutral", "calm", "happy"))
    assert on_corpus(np.array([calm, neutral, happy]), (neutral, happy)).tolist() == [neutral, neutral, happy]
    assert on_corpus(np.array([calm, neutral, happy]), (calm, happy)).tolist() == [calm, calm, happy]
    assert on_corpus(np.array([calm, neutral]), (neutral, calm)).tolist() == [calm, neutral]
    s = corpus_scores(np.array([neutral, happy]), np.array([calm, EMOTIONS.index("disgust")]), (neutral, happy))
    assert s["ua"] == pytest.approx(0.5)  # calm heard as neutral is right; disgust, a class the corpus lacks, is wrong


@pytest.mark.data
def test_speech_manifest_loads_every_corpus_with_speakers_and_classes():
    clips = speech.load_speech_manifest(DATA / "speech")
    assert len(clips) == 9143 - 2  # the two clips under 0.5 s are left out
    corpora = {c.corpus for c in clips}
    assert corpora == {"emodb", "ased", "nemo", "turev"}
    assert all(c.speaker.startswith(c.corpus + "-") and c.path.is_file() for c in clips[::97])
    speakers = {k: len({c.speaker for c in clips if c.corpus == k}) for k in corpora}
    assert speakers == {"emodb": 10, "ased": 65, "nemo": 9, "turev": 6}
    classes = speech.corpus_classes(clips)
    assert [EMOTIONS[i] for i in classes["turev"]] == ["calm", "happy", "sad", "angry"]
    assert "disgust" in [EMOTIONS[i] for i in classes["emodb"]]


@pytest.mark.data
def test_leave_one_corpus_out_keeps_every_held_out_speaker_out_of_training():
    clips = speech.load_all(DATA)
    assert {c.corpus for c in clips} == set(speech.CORPORA)
    for held in speech.CORPORA:
        train, test = speech.leave_one_corpus_out(clips, held)
        assert len(train) + len(test) == len(clips) and len(test) > 0
        assert {clips[i].corpus for i in test} == {held}
        assert not {clips[i].speaker for i in train} & {clips[i].speaker for i in test}


def test_the_pinned_encoder_is_checked_and_loads():
    enc = pretrained.load_encoder("whisper-tiny-en")
    states = enc(audio.whisper_log_mel(torch.from_numpy(speechlike(2.0))))
    assert states.shape == (5, 100, 384) and torch.isfinite(states).all()
    assert all(not p.requires_grad for p in enc.parameters())


def test_an_altered_encoder_file_is_refused(monkeypatch):
    spec = pretrained.ENCODERS["whisper-tiny-en"]
    (module, rel, _), = spec.parts
    altered = pretrained.Encoder(spec.name, spec.package, spec.version, ((module, rel, "0" * 64),), spec.config)
    monkeypatch.setitem(pretrained.ENCODERS, "whisper-tiny-en", altered)
    with pytest.raises(pretrained.PretrainedError, match="sha256"):
        pretrained.load_encoder("whisper-tiny-en")


def test_whisper_log_mel_is_whispers_front_end():
    """Checked against the same computation with librosa's mel filters, as openai/whisper does it."""
    import librosa

    x = torch.from_numpy(speechlike(1.3, seed=3))
    spec = torch.stft(x, 400, 160, window=torch.hann_window(400), return_complex=True)[..., :-1].abs() ** 2
    mel = torch.from_numpy(librosa.filters.mel(sr=16_000, n_fft=400, n_mels=80)) @ spec
    ref = torch.clamp(mel, min=1e-10).log10()
    ref = (torch.maximum(ref, ref.max() - 8.0) + 4.0) / 4.0
    torch.testing.assert_close(audio.whisper_log_mel(x)[0], ref, atol=1e-5, rtol=1e-5)


def test_a_band_limit_drops_the_spectrum_above_it_and_nothing_below():
    """``band_limit_hz`` (an evaluation option): mel bins wholly above the limit hear the floor
    whatever the clip has there; those wholly below are as without it."""
    t = np.arange(16_000) / 16_000
    low = np.sin(2 * np.pi * 500 * t)
    both = torch.from_numpy((0.3 * (low + np.sin(2 * np.pi * 6_000 * t))).astype(np.float32))
    full, limited = audio.whisper_log_mel(both)[0], audio.whisper_log_mel(both, band_limit_hz=4_000)[0]
    centres = audio.mel_filterbank(400, 80, 0.0, 8_000).argmax(1) * 40  # each bin's peak, Hz
    above, below = centres > 4_400, centres < 3_600
    floor = limited.max() - 2.0  # 8 decades below the peak, on the (x + 4) / 4 scale
    torch.testing.assert_close(limited[above], torch.full_like(limited[above], float(floor)))
    assert (full[above].max(0).values > floor + 1).any()  # the 6 kHz tone was there
    torch.testing.assert_close(limited[below], full[below], atol=1e-4, rtol=1e-4)
    plain, banded = SpeechEmbedder.__new__(SpeechEmbedder), SpeechEmbedder.__new__(SpeechEmbedder)
    plain.name = banded.name = "whisper-tiny-en"
    plain.quantized = banded.quantized = True
    plain.band_limit_hz, banded.band_limit_hz = None, 4_000.0
    assert plain.key != banded.key  # its features are cached apart from the shipped front end's


@pytest.fixture(scope="module")
def embedder() -> SpeechEmbedder:
    return SpeechEmbedder("whisper-tiny-en")


def test_features_do_not_depend_on_the_batch(embedder):
    from ml.models.ser import SERHead, SERHeadConfig
    from ml.recognize import EmotionRecognizer

    torch.manual_seed(0)
    head = SERHead(SERHeadConfig())
    head.fc.weight.data.normal_()
    recognizer = EmotionRecognizer(head.eval())
    waves = [speechlike(s, seed=i) for i, s in enumerate((1.0, 2.7, 0.6, 9.5))]  # the last spans two windows
    batched = recognizer.predict(waves)
    for i, w in enumerate(waves):
        assert np.array_equal(recognizer.predict([w])[0], batched[i])
    assert np.array_equal(embedder.embed(waves[1]), embedder.embed(waves[1]))
    assert not np.allclose(batched[0], batched[1])
    assert np.allclose(batched.sum(1), 1.0, atol=1e-5) and batched.shape == (4, 8)


def test_feature_cache_is_reused_and_resumes(embedder, tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.wav"
        p.write_bytes(wav_bytes(speechlike(1.0 + i / 2, seed=i)))
        paths.append(p)
    first = cached_embeddings(paths, embedder, tmp_path / "cache", every=2)
    assert first.shape == (3, 5, 2, 384) and first.dtype == np.float16
    (done,) = (tmp_path / "cache").rglob("*.npy")
    np.save(done.with_name(done.stem + ".partial.npy"), first[:2])  # as if interrupted after two clips
    done.unlink()
    for p in paths[:2]:
        p.unlink()  # the resumed run must not need them again
    again = cached_embeddings(paths, embedder, tmp_path / "cache")
    assert np.array_equal(again, first)


def test_fixture_clips_embed_to_finite_features(embedder):
    x = embedder.embed(audio.decode(sorted(FIXTURE_AUDIO.glob("*.flac"))[0]).samples)
    assert x.shape == (5, 2, 384) and np.isfinite(x).all()


def test_features_do_not_depend_on_the_recording_level(embedder):
    x = speechlike(2.0, seed=5)
    loud, quiet = embedder.embed(x), embedder.embed(0.05 * x)
    np.testing.assert_allclose(quiet, loud, atol=0.02 * np.abs(loud).max())


def test_training_views_are_seeded_and_differ_from_the_clip():
    from ml.augment import random_view

    x = speechlike(2.0, seed=1)
    a, b = random_view(x, seed=3), random_view(x, seed=3)
    assert np.array_equal(a, b) and a.dtype == np.float32
    assert not np.array_equal(random_view(x, seed=4), a)
    assert a.shape != x.shape or not np.allclose(a, x)


def test_codec_views_are_seeded_and_half_of_them_go_through_a_codec():
    """With ``codec``, a view is the plain view sent through one of the phone or browser codecs
    about half of the time (and the same every time for a seed); the others are the plain view."""
    from ml.augment import random_view
    from tests.conftest import require_codec

    require_codec("awb")
    x = speechlike(2.0, seed=1)
    seeds = range(16)
    plain = [random_view(x, seed=s) for s in seeds]
    coded = [random_view(x, seed=s, codec=True) for s in seeds]
    assert all(np.array_equal(c, random_view(x, seed=s, codec=True)) for s, c in zip(seeds, coded))
    through = [not (p.shape == c.shape and np.array_equal(p, c)) for p, c in zip(plain, coded)]
    assert 3 <= sum(through) <= 13, through
    assert all(c.dtype == np.float32 and np.isfinite(c).all() for c in coded)
