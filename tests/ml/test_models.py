import numpy as np
import pytest
import torch

from ml.generate import FaceGenerator, latent_for_seed
from ml.models.fer_classifier import FERClassifier, FERClassifierConfig
from ml.models.gan import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, RowLinear, minibatch_std


def test_generator_shapes_and_range():
    g = Generator(GeneratorConfig(base_channels=8)).eval()
    x = g(torch.randn(5, 128), torch.arange(5))
    assert x.shape == (5, 1, 48, 48) and x.min() >= -1 and x.max() <= 1


def test_row_linear_computes_each_row_alone_with_the_ordinary_gradient():
    """The generator's first layer: a row's output is bit-identical whatever else is in its batch,
    the values are nn.Linear's up to rounding, and so are the gradients."""
    torch.manual_seed(0)
    layer = RowLinear(16, 300)
    x = torch.randn(9, 16, requires_grad=True)
    out = layer(x)
    alone = torch.cat([layer(x[i:i + 1]) for i in range(9)])
    assert torch.equal(out, alone) and torch.equal(layer(x[2:7]), alone[2:7])
    plain = torch.nn.Linear(16, 300)
    plain.load_state_dict(layer.state_dict())
    torch.testing.assert_close(out, plain(x))
    grad = torch.randn(9, 300)
    mine = torch.autograd.grad(out, (x, layer.weight, layer.bias), grad)
    ref = torch.autograd.grad(plain(x), (x, plain.weight, plain.bias), grad)
    for a, b in zip(mine, ref):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("recipe", ["ours", "baseline"])
def test_discriminator_shape(recipe):
    from ml.models.baseline_gan import BaselineDiscriminator, BaselineDiscriminatorConfig

    d = (Discriminator(DiscriminatorConfig(base_channels=8)) if recipe == "ours"
         else BaselineDiscriminator(BaselineDiscriminatorConfig(base_channels=8)))
    assert d(torch.randn(4, 1, 48, 48), torch.tensor([0, 1, 2, 6])).shape == (4,)


def test_minibatch_std_channel_sees_how_much_a_group_varies():
    """One extra channel per face: each group of 4 faces (i, i + B/4, ...) shares the mean feature
    standard deviation across its faces, about 0 for copies of one face."""
    varied = torch.randn(8, 3, 6, 6)
    out = minibatch_std(varied)
    assert out.shape == (8, 4, 6, 6) and torch.equal(out[:, :3], varied)
    stat = out[:, 3]
    assert torch.equal(stat[0], stat[2]) and torch.equal(stat[0], stat[4]) and torch.equal(stat[1], stat[7])
    assert not torch.equal(stat[0], stat[1])  # groups {0, 2, 4, 6} and {1, 3, 5, 7} differ
    expected = varied[0::2].var(dim=0, unbiased=False).sqrt().mean()
    assert torch.allclose(stat[0, 0, 0], expected, atol=1e-4)
    copies = minibatch_std(varied[:1].expand(8, -1, -1, -1))[:, 3]
    assert copies.max() < 1e-3 < stat.min()
    assert minibatch_std(varied[:3]).shape == (3, 4, 6, 6)  # a batch not divisible by 4 is one group


def test_discriminator_with_minibatch_std_scores_a_batch_and_starts_silent():
    """The std channel's weights start at zero, and with the gate at 0 the channel is zeros: D
    scores as one without the channel, and its weights get no gradient (so a recipe can switch
    it on part-way, as if it had been added then)."""
    torch.manual_seed(0)
    d = Discriminator(DiscriminatorConfig(base_channels=8, minibatch_std=True))
    assert d.convs[-1].in_channels == 8 * 8 + 1 and d.convs[-1].weight[:, -1].abs().sum() == 0
    plain = Discriminator(DiscriminatorConfig(base_channels=8))
    plain.load_state_dict({k: v[:, :-1] if k == "convs.5.weight" else v for k, v in d.state_dict().items()})
    x, y = torch.randn(8, 1, 48, 48), torch.arange(8) % 7
    torch.testing.assert_close(d(x, y), plain(x, y))
    d.std_gate = 0.0
    d(x, y).sum().backward()
    assert d.convs[-1].weight.grad[:, -1].abs().sum() == 0 and d.convs[-1].weight.grad[:, :-1].abs().sum() > 0
    d.zero_grad()
    d.std_gate = 1.0
    d(x, y).sum().backward()
    assert d.convs[-1].weight.grad[:, -1].abs().sum() > 0


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
        standing_stats(g, batch=512, batches=4)
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
