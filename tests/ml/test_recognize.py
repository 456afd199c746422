"""The SER's two paths: int8 on a CPU, float32 where the encoder runs on a GPU. The float path is
the same code on either device, so running it on the CPU here tests what a CUDA host serves."""

import numpy as np
import pytest

from ml import audio
from ml.recognize import EmotionRecognizer
from tests.conftest import SHIPPED_SER, fixture_clips

#: The stated tolerance between the paths (weights/ser.md): no probability moves by more than
#: this, and at most one fixture clip of eight changes its answer. Measured on 240 clips of the
#: corpora (docs/experiments/scripts/float_path.py): 99.6% equal answers, largest gap 0.114.
MAX_PROBABILITY_GAP = 0.12


@pytest.fixture(scope="module")
def waves():
    return [audio.decode(p).samples for p in fixture_clips().values()]


def test_the_float_path_answers_as_the_int8_path_within_the_stated_tolerance(waves):
    int8, _ = EmotionRecognizer.from_checkpoint(SHIPPED_SER)
    float32, _ = EmotionRecognizer.from_checkpoint(SHIPPED_SER, quantized=False)
    assert int8.embedder.quantized and not float32.embedder.quantized
    a, b = int8.predict(waves), float32.predict(waves)
    assert np.abs(a - b).max() <= MAX_PROBABILITY_GAP, np.abs(a - b).max(1)
    assert (a.argmax(1) != b.argmax(1)).sum() <= 1
    assert not np.array_equal(a, b)  # two paths, not one taken twice


def test_the_int8_encoder_is_refused_on_another_device():
    from ml.embed import SpeechEmbedder

    with pytest.raises(ValueError, match="CPU only"):
        SpeechEmbedder("whisper-tiny-en", device="meta")


def test_a_stream_speaker_is_heard_relative_to_its_running_mean():
    """SpeakerNorm: the first window moves a quarter of the way to the training mean (a prior of
    3 windows); after it, a voice's constant offset fades as 3 / (n + 3): two speakers who differ
    only by an offset are heard alike once each has said enough."""
    import torch

    from ml.models.ser import SERHead, SERHeadConfig
    from ml.recognize import SPEAKER_PRIOR_WINDOWS, SpeakerNorm

    assert SPEAKER_PRIOR_WINDOWS == 3
    head = SERHead(SERHeadConfig(layers=2, width=3))
    head.mean.copy_(torch.arange(12, dtype=torch.float32) / 10)
    prior = head.mean.reshape(2, 2, 3)
    g = torch.Generator().manual_seed(0)
    windows = torch.randn(40, 2, 2, 3, generator=g)
    one, other = SpeakerNorm(head), SpeakerNorm(head)
    first = one(windows[0])
    assert torch.allclose(first, 0.75 * windows[0] + 0.25 * prior, atol=1e-6)
    offset = torch.full((2, 2, 3), 5.0)
    other(windows[0] + offset)
    gaps = [(one(w) - other(w + offset)).abs().max().item() for w in windows[1:]]
    assert gaps[0] == pytest.approx(5.0 * 3 / 5, rel=1e-5) and gaps[-1] == pytest.approx(5.0 * 3 / 43, rel=1e-5)


def test_a_stream_window_is_heard_alike_alone_and_in_any_batch(waves):
    """Speakers' windows batched with clips heard alone: each answer is what it is one by one."""
    recognizer, _ = EmotionRecognizer.from_checkpoint(SHIPPED_SER)
    a, b = recognizer.speaker(), recognizer.speaker()
    one_by_one = [recognizer.predict([waves[0]], [a])[0], recognizer.predict([waves[1]])[0],
                  recognizer.predict([waves[2]], [a])[0]]
    batched = recognizer.predict([waves[0], waves[1], waves[2]], [b, None, None])
    assert np.array_equal(batched[0], one_by_one[0]) and np.array_equal(batched[1], one_by_one[1])
    assert np.array_equal(recognizer.predict([waves[2]], [b])[0], one_by_one[2])
    assert not np.array_equal(one_by_one[2], recognizer.predict([waves[2]])[0])
