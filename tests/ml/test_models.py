import numpy as np
import pytest
import torch

from ml.generate import FaceGenerator
from ml.models.fer_classifier import FERClassifier, FERClassifierConfig
from ml.models.gan import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, latent_for_seed
from ml.models.ser import SERConfig, SERNet
from ml.recognize import EmotionRecognizer
from tests.conftest import speechlike


def test_ser_output_shape_variable_length():
    model = SERNet(SERConfig()).eval()
    feats = torch.randn(3, 64, 300)
    out = model(feats, torch.tensor([300, 120, 64]))
    assert out.shape == (3, 8) and torch.isfinite(out).all()


def test_ser_batched_equals_one_by_one():
    torch.manual_seed(0)
    model = SERNet(SERConfig()).eval()
    clips = [torch.from_numpy(speechlike(s, seed=i)) for i, s in enumerate((1.0, 3.3, 0.7))]
    rec = EmotionRecognizer(model)
    batched = rec.predict(clips)
    for i, clip in enumerate(clips):
        np.testing.assert_allclose(batched[i], rec.predict([clip])[0], atol=1e-5)
    assert np.allclose(batched.sum(1), 1.0, atol=1e-5)


def test_long_audio_is_pooled_over_windows():
    model = SERNet(SERConfig()).eval()
    rec = EmotionRecognizer(model, window_s=2.0)
    long = torch.from_numpy(np.tile(speechlike(1.0), 9))
    assert len(rec.pieces(long)) >= 4
    probs = rec.predict([long])
    assert probs.shape == (1, 8) and probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_generator_shapes_and_range():
    g = Generator(GeneratorConfig(base_channels=8)).eval()
    x = g(torch.randn(5, 128), torch.arange(5))
    assert x.shape == (5, 1, 48, 48) and x.min() >= -1 and x.max() <= 1


@pytest.mark.parametrize("recipe", ["ours", "baseline"])
def test_discriminator_shape(recipe):
    from ml.models.baseline_gan import BaselineDiscriminator, BaselineDiscriminatorConfig

    d = (Discriminator(DiscriminatorConfig(base_channels=8)) if recipe == "ours"
         else BaselineDiscriminator(BaselineDiscriminatorConfig(base_channels=8)))
    assert d(torch.randn(4, 1, 48, 48), torch.tensor([0, 1, 2, 6])).shape == (4,)


def test_baseline_generator_shapes_and_range():
    from ml.models.baseline_gan import BaselineGenerator, BaselineGeneratorConfig

    g = BaselineGenerator(BaselineGeneratorConfig(base_channels=8)).eval()
    x = g(torch.randn(5, 128), torch.arange(5))
    assert x.shape == (5, 1, 48, 48) and x.min() >= -1 and x.max() <= 1


def test_standing_stats_make_eval_mode_match_the_batch_statistics():
    """After standing_stats the eval-mode generator draws what the train-mode one draws on a
    large batch; with stale running statistics (here: shifted on purpose) it would not."""
    from ml.train_gan import standing_stats

    torch.manual_seed(0)
    g = Generator(GeneratorConfig(base_channels=8))
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(3.0)
    z, y = torch.randn(512, 128), torch.randint(0, 7, (512,))
    with torch.no_grad():
        want = g.train()(z, y)
        stale = (g.eval()(z, y) - want).abs().mean()
        standing_stats(g, 7, batch=512, batches=4)
        fresh = (g.eval()(z, y) - want).abs().mean()
    assert not g.training
    assert fresh < 0.02 < stale


def test_fer_classifier_shapes():
    m = FERClassifier(FERClassifierConfig(channels=(4, 8, 8, 8), feature_dim=16)).eval()
    x = torch.randn(2, 1, 48, 48)
    assert m(x).shape == (2, 7) and m.features(x).shape == (2, 16)


def test_latent_depends_only_on_seed():
    assert torch.equal(latent_for_seed(42, 128), latent_for_seed(42, 128))
    assert not torch.equal(latent_for_seed(42, 128), latent_for_seed(43, 128))


def test_face_generator_is_deterministic_and_batch_independent():
    torch.manual_seed(0)
    gen = FaceGenerator(Generator(GeneratorConfig(base_channels=8)).eval())
    a = gen.render([3, 3, 0], [7, 8, 7])
    b = gen.render([3], [7])
    assert a.shape == (3, 48, 48) and a.dtype == np.uint8
    assert np.array_equal(a[0], b[0])
    assert not np.array_equal(a[0], a[1])
