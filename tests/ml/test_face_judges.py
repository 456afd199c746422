"""The generator's judges and figures: the classifiers of ml.train_judge, the distances of
ml.face_metrics and the report of ml.evaluate_gan."""

import numpy as np
import pytest
import torch

from ml import checkpoint, evaluate_gan, train_judge
from ml.face_metrics import frechet_distance, identity_ratio, kernel_distance, label_weights
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


def test_evaluation_reports_every_judge_and_floor(tmp_path, tiny_weights):
    """Two judges, one generator drawn two ways: every figure present and finite, each judge's
    floors from the other split, and the drawing changing the faces changes the figures."""
    csv = tiny_fer_csv(tmp_path / "fer.csv", gz=False)
    for arch in ("vgg", "k5"):
        train_judge.main(["--data", str(csv), "--arch", arch, "--out", str(tmp_path / f"{arch}.pt"), "--dry-run"])
    gen = tiny_weights[1]
    result = evaluate_gan.main(["--data", str(csv), "--generator", f"a={gen}", f"wide={gen}@3",
                                "--judge", f"vgg={tmp_path / 'vgg.pt'}", f"k5={tmp_path / 'k5.pt'}",
                                "--per-class", "6", "--out", str(tmp_path / "eval")])
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
    table = (tmp_path / "eval" / "gan_eval.md").read_text()
    assert "| vgg (chooses) | accuracy, mean of 7 |" in table and "| k5 | KID x 1000 |" in table
    assert "(seeds 0-5) against the PrivateTest faces" in table
    public = evaluate_gan.main(["--data", str(csv), "--generator", f"a={gen}", "--judge", f"vgg={tmp_path / 'vgg.pt'}",
                                "--split", "PublicTest", "--first-seed", "1000000", "--per-class", "6",
                                "--out", str(tmp_path / "public")])
    assert public["floor_split"] == "PrivateTest"
    assert public["judges"]["vgg"]["generators"]["a"]["fd"] != result["judges"]["vgg"]["generators"]["a"]["fd"]
