"""The generator's judges and figures: the classifiers of ml.train_judge, the distances of
ml.face_metrics and the report of ml.evaluate_gan."""

import numpy as np
import pytest
import torch
from PIL import Image

from ml import checkpoint, evaluate_gan, train_judge
from ml.face_metrics import (frechet_distance, identity_ratio, kernel_distance, label_weights, precision_recall,
                             share_sample)
from ml.labels import FER_CLASSES
from ml.models.fer_classifier import JUDGES, FERClassifier
from tests.conftest import tiny_fer_csv


@pytest.mark.parametrize("arch", sorted(JUDGES))
def test_every_judge_layout_trains_and_loads(tmp_path, arch):
    csv = tiny_fer_csv(tmp_path / "fer.csv", gz=False)
    metrics = train_judge.main(["--data", str(csv), "--arch", arch, "--out", str(tmp_path / "j.pt"), "--dry-run"])
    loaded = checkpoint.load(tmp_path / "j.pt", arch="fer-classifier", labels=FER_CLASSES)
    assert loaded.model.config == JUDGES[arch] and loaded.meta["metrics"]["layout"] == arch
    assert metrics["steps"] == 1 and metrics["final_epoch_loss"] > 0
    x = torch.randn(3, 1, 48, 48)
    assert loaded.model(x).shape == (3, 7) and loaded.model.features(x).shape == (3, JUDGES[arch].feature_dim)


def test_judges_differ_in_layout():
    """Not one network with three seeds: each layout has its own parameters."""
    shapes = {arch: sorted(tuple(p.shape) for p in FERClassifier(c).parameters()) for arch, c in JUDGES.items()}
    assert len({tuple(s) for s in shapes.values()}) == len(JUDGES)
    assert any(n.startswith("shortcuts.") for n, _ in FERClassifier(JUDGES["resnet"]).named_parameters())


def test_frechet_distance_properties():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2000, 4))
    assert frechet_distance(a, a) < 1e-6
    assert abs(frechet_distance(a, a + 3.0) - 36.0) < 0.5  # a mean shift of 3 in 4 dims


def test_frechet_distance_weights_classes_by_their_share():
    """Two classes, 1:3 in the reference but drawn 1:1: unweighted the mix is the distance; weighted
    to the reference's shares the distance is the sampling noise, like resampling in proportion."""
    rng = np.random.default_rng(0)
    centres = np.array([[4.0, 0, 0], [0, 4.0, 0]])
    ref = centres[np.repeat([0, 1], [1000, 3000])] + rng.standard_normal((4000, 3))
    gen_y = np.repeat([0, 1], [2000, 2000])
    gen = centres[gen_y] + rng.standard_normal((4000, 3))
    weights = label_weights(gen_y, np.array([0.25, 0.75]))
    assert np.allclose(np.bincount(gen_y, weights=weights), [0.25, 0.75])
    assert frechet_distance(gen, ref) > 1.0 and frechet_distance(gen, ref, weights) < 0.05
    assert abs(frechet_distance(gen, ref, np.full(len(gen), 1 / len(gen))) - frechet_distance(gen, ref)) < 1e-9


def test_kernel_distance_is_unbiased_near_zero_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3000, 8)), rng.standard_normal((3000, 8))
    same = kernel_distance(a, b, subsets=20, size=500)
    assert abs(same) < 0.01  # unbiased: two samples of one distribution score about 0, either sign
    shifted = [kernel_distance(a, b + s, subsets=20, size=500) for s in (0.5, 1.0)]
    assert 0.05 < shifted[0] < shifted[1]
    # weighted rows: drawn 1:1 from two clusters, weighted to the reference's 1:3 mix
    centres = np.array([[3.0] + [0] * 7, [0, 3.0] + [0] * 6])
    ref = centres[np.repeat([0, 1], [750, 2250])] + rng.standard_normal((3000, 8))
    gen_y = np.repeat([0, 1], [1500, 1500])
    gen = centres[gen_y] + rng.standard_normal((3000, 8))
    weights = label_weights(gen_y, np.array([0.25, 0.75]))
    assert kernel_distance(gen, ref, weights, subsets=20, size=500) < kernel_distance(gen, ref, subsets=20, size=500) / 3


def test_identity_ratio_is_low_when_a_seed_keeps_its_face():
    rng = np.random.default_rng(0)
    people = rng.integers(0, 256, (1, 30, 48, 48))
    same_person = np.clip(people + rng.integers(-5, 6, (7, 30, 48, 48)), 0, 255).astype(np.uint8)
    strangers = rng.integers(0, 256, (7, 30, 48, 48)).astype(np.uint8)
    assert identity_ratio(same_person) < 0.2 and 0.9 < identity_ratio(strangers) < 1.1


def test_precision_and_recall_tell_quality_from_coverage():
    """Samples of the real distribution: both high (0.87 here: k = 3 neighbours in 2,000 samples of
    8 dimensions). Samples of one of its two modes: the same precision, recall near a half.
    Samples far from it: both 0."""
    rng = np.random.default_rng(0)
    centres = np.array([[6.0] + [0] * 7, [-6.0] + [0] * 7])
    real = centres[rng.integers(0, 2, 2000)] + rng.standard_normal((2000, 8))
    same = centres[rng.integers(0, 2, 2000)] + rng.standard_normal((2000, 8))
    one_mode = centres[np.zeros(2000, int)] + rng.standard_normal((2000, 8))
    p, r = precision_recall(real, same)
    assert p > 0.8 and r > 0.8
    p, r = precision_recall(real, one_mode)
    assert p > 0.8 and 0.35 < r < 0.55
    assert precision_recall(real, real + 50) == (0.0, 0.0)


def test_share_sample_matches_the_real_class_mix():
    labels = np.repeat(np.arange(3), 100)
    idx = share_sample(labels, np.array([0.5, 0.25, 0.25]), np.random.default_rng(0))
    assert len(set(idx)) == len(idx) == 200 and np.bincount(labels[idx]).tolist() == [100, 50, 50]


def test_the_realness_test_tells_apart_what_differs_and_not_what_does_not():
    """Noise against smooth gradients: it tells them apart, surely. Noise against the same noise:
    about chance, and sure of almost nothing."""
    from ml.realness import two_sample_test

    rng = np.random.default_rng(0)

    def noise(n):
        return rng.integers(0, 256, (n, 48, 48)).astype(np.uint8)

    smooth = np.broadcast_to(np.linspace(0, 255, 48, dtype=np.float32), (48, 48))
    gradients = (smooth[None] * rng.uniform(0.3, 1.0, (400, 1, 1))).astype(np.uint8)
    differ = two_sample_test(noise(400), gradients[:200], noise(200), gradients[200:], epochs=3)
    assert differ.accuracy > 0.95 and differ.sure_share > 0.9
    alike = two_sample_test(noise(400), noise(400), noise(200), noise(200), epochs=3)
    assert 0.35 < alike.accuracy < 0.65 and alike.sure_share < 0.2


def test_evaluation_reports_every_judge_and_floor(tmp_path, tiny_weights):
    """Two judges, one generator drawn two ways: every figure present and finite, each judge's
    floors from the other split, and the drawing changing the faces changes the figures."""
    csv = tiny_fer_csv(tmp_path / "fer.csv", gz=False)
    for arch in ("vgg", "k5"):
        train_judge.main(["--data", str(csv), "--arch", arch, "--out", str(tmp_path / f"{arch}.pt"), "--dry-run"])
    gen = tiny_weights[1]
    result = evaluate_gan.main(["--data", str(csv), "--generator", f"a={gen}", f"wide={gen}@3",
                                "--judge", f"vgg={tmp_path / 'vgg.pt'}", f"k5={tmp_path / 'k5.pt'}",
                                "--per-class", "6", "--out", str(tmp_path / "eval"), "--sheet", str(tmp_path / "sheet.png")])
    assert result["split"] == "PrivateTest" and result["floor_split"] == "PublicTest"
    assert list(result["judges"]) == ["vgg", "k5"] and list(result["generators"]) == ["a", "wide"]
    assert result["generators"]["wide"]["latent_scale"] == 3.0 and result["generators"]["a"]["latent_scale"] is None
    for judge in result["judges"].values():
        real = judge["real"]
        assert set(real["recall"]) == set(FER_CLASSES) and abs(sum(real["share"]) - 1) < 1e-9
        assert 0 <= real["accuracy"] <= 1
        assert all(np.isfinite(real[k]) for k in ("fd_floor", "kid_floor", "diversity_floor_min"))
        a, wide = judge["generators"]["a"], judge["generators"]["wide"]
        assert set(a["accuracy"]) == set(FER_CLASSES) and 0 <= a["accuracy_mean"] <= 1
        assert all(np.isfinite(a[k]) and a[k] >= 0 for k in ("fd", "diversity_min"))
        assert a["fd"] != wide["fd"] and a["diversity_min"] < wide["diversity_min"]  # a wider latent varies more
    for name in ("a", "wide"):
        realness = result["generators"][name]["realness"]
        assert 0 <= realness["accuracy"] <= 1 and 0 <= realness["sure_share"] <= 1 and realness["test_generated"] == 30 and realness["test_real"] == 5  # PrivateTest: 5 faces, 5 classes
        assert realness["epochs"] == 30  # the judge trained long enough to be sharp (docs/experiments/gan.md)
        assert Image.open(tmp_path / "eval" / f"surest_{name}.png").size[0] > 8 * 96  # 8 faces a row, at 96 px
        for judge in result["judges"].values():
            assert 0 <= judge["generators"][name]["precision"] <= 1 and 0 <= judge["generators"][name]["recall"] <= 1
    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.size[0] > 16 * 96 and 8 * 96 < sheet.size[1] < 9 * 96 + 40  # 8 emotions by 16 seeds at 96 px
    table = (tmp_path / "eval" / "gan_eval.md").read_text()
    assert "| vgg (chooses) | accuracy, mean of 7 |" in table and "| k5 | KID x 1000 |" in table
    assert "| k5 | precision / recall |" in table and "generated faces it is over 90% sure of" in table
    assert "| realness CNN (30 epochs) | accuracy" in table
    assert "(seeds 0-5) against the PrivateTest faces" in table
    public = evaluate_gan.main(["--data", str(csv), "--generator", f"a={gen}", "--judge", f"vgg={tmp_path / 'vgg.pt'}",
                                "--split", "PublicTest", "--first-seed", "1000000", "--per-class", "6",
                                "--out", str(tmp_path / "public")])
    assert public["floor_split"] == "PrivateTest"
    assert public["judges"]["vgg"]["generators"]["a"]["fd"] != result["judges"]["vgg"]["generators"]["a"]["fd"]
