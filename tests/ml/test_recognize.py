"""The SER's two paths: int8 on a CPU, float32 where the encoder runs on a GPU. The float path is
the same code on either device, so running it on the CPU here tests what a CUDA host serves."""

import numpy as np
import pytest

from ml import audio
from ml.recognize import EmotionRecognizer
from tests.conftest import SHIPPED_SER, fixture_clips

#: The stated tolerance between the paths (weights/ser.md): no probability moves by more than
#: this, and at most one fixture clip of eight changes its answer. Measured on 240 clips of the
#: corpora (docs/experiments/scripts/float_path.py): 99.6% equal answers, largest gap 0.116.
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
