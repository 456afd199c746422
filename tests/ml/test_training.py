"""--dry-run of each training entry point: one batch, every output written, checkpoint loadable."""

import json

import numpy as np
import pytest
import torch

from ml import checkpoint, train_gan, train_ser
from ml.labels import FER_CLASSES
from tests.conftest import DATA, tiny_fer_csv


def test_gan_dry_run(tmp_path):
    csv = tiny_fer_csv(tmp_path / "fer.csv", gz=False)
    train_gan.main(["--data", str(csv), "--out", str(tmp_path / "run"), "--dry-run", "--batch-size", "4",
                    "--g-channels", "4", "--d-channels", "4"])
    for name in ("generator.pt", "last.pt", "losses.png", "history.json", "samples/latest.png"):
        assert (tmp_path / "run" / name).exists(), name
    loaded = checkpoint.load(tmp_path / "run" / "generator.pt", arch="cgan-generator")
    assert loaded.meta["data"]["faces"] == 14
    assert json.loads((tmp_path / "run" / "history.json").read_text())["step"] == 1


def test_gan_mode_seeking_pairs_share_a_class_and_enter_the_loss(tmp_path):
    """--mode-seeking trains (one batch) and records itself in the shipped generator's recipe."""
    csv = tiny_fer_csv(tmp_path / "fer.csv", gz=False)
    history = train_gan.main(["--data", str(csv), "--out", str(tmp_path / "run"), "--dry-run", "--batch-size", "4",
                              "--g-channels", "4", "--d-channels", "4", "--mode-seeking", "1"])
    plain = train_gan.main(["--data", str(csv), "--out", str(tmp_path / "plain"), "--dry-run", "--batch-size", "4",
                            "--g-channels", "4", "--d-channels", "4"])
    assert history["loss_g"][0] > plain["loss_g"][0]  # same seed and batch: the term adds a positive loss
    loaded = checkpoint.load(tmp_path / "run" / "generator.pt", arch="cgan-generator")
    assert "mode seeking 1.0" in loaded.meta["metrics"]["recipe"]


def test_gan_aux_margin_drops_the_auxiliary_term_for_recognised_faces(tmp_path):
    """--aux-margin: G's auxiliary loss counts only cross-entropy above the margin. Same seed and batch:
    a margin above any cross-entropy of the batch gives the loss without the term."""
    csv = tiny_fer_csv(tmp_path / "fer.csv", gz=False)
    common = ["--data", str(csv), "--dry-run", "--batch-size", "4", "--g-channels", "4", "--d-channels", "4"]
    full = train_gan.main([*common, "--out", str(tmp_path / "full"), "--aux", "0.5"])
    margin = train_gan.main([*common, "--out", str(tmp_path / "margin"), "--aux", "0.5", "--aux-margin", "100"])
    assert margin["loss_g"][0] < full["loss_g"][0] - 0.5 * 0.1  # 7 classes at random: cross-entropy near ln 7
    loaded = checkpoint.load(tmp_path / "margin" / "generator.pt", arch="cgan-generator")
    assert "(margin 100.0)" in loaded.meta["metrics"]["recipe"]


def test_gan_init_generator_starts_g_from_the_file_and_d_afresh(tmp_path):
    """--init-generator: a new run's G starts as the given trained file; during --d-warmup only D
    trains, so the saved generator keeps the file's weights; a calibrated file is refused."""
    from ml.models.gan import Generator, GeneratorConfig

    csv = tiny_fer_csv(tmp_path / "fer.csv", gz=False)
    source = Generator(GeneratorConfig(base_channels=4))
    torch.nn.init.normal_(source.fc.weight)  # unlike a fresh network of the run's seed
    checkpoint.save(tmp_path / "trained.pt", source, labels=FER_CLASSES, metrics={"steps": 123})
    common = ["--data", str(csv), "--dry-run", "--batch-size", "4", "--g-channels", "4", "--d-channels", "4",
              "--init-generator", str(tmp_path / "trained.pt")]
    train_gan.main([*common, "--out", str(tmp_path / "warm"), "--d-warmup", "1"])
    saved = checkpoint.read(tmp_path / "warm" / "generator.pt")
    for name, value in source.state_dict().items():
        if "bn." not in name:  # batch-norm statistics are recomputed for the average
            assert torch.equal(saved["state_dict"][name], value), name
    assert saved["data"]["init_generator"]["steps"] == 123
    state = checkpoint.read(tmp_path / "warm" / "last.pt")["training_state"]
    assert not state["opt_g"]["state"] and state["opt_d"]["state"]  # D stepped, G did not

    train_gan.main([*common, "--out", str(tmp_path / "joint")])  # no warm-up: G moves on the first step
    moved = checkpoint.read(tmp_path / "joint" / "generator.pt")["state_dict"]["fc.weight"]
    assert not torch.equal(moved, source.fc.weight.detach())

    calibrated = Generator(GeneratorConfig(base_channels=4))
    checkpoint.save(tmp_path / "calibrated.pt", calibrated, labels=FER_CLASSES, metrics={"calibration": {"scale": 1.3}})
    with pytest.raises(SystemExit, match="calibrated"):
        train_gan.main([*common[:-1], str(tmp_path / "calibrated.pt"), "--out", str(tmp_path / "cal")])


def test_same_class_distance_counts_only_pairs_that_share_a_label():
    h = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0], [30.0, 40.0]])
    assert train_gan.same_class_distance(h, torch.tensor([0, 0, 1, 2])).item() == pytest.approx(5.0)
    assert train_gan.same_class_distance(h, torch.tensor([0, 0, 0, 1])).item() == pytest.approx((5 + 0 + 5) / 3)
    assert train_gan.same_class_distance(h, torch.tensor([0, 1, 2, 3])).item() == 0.0


def test_gan_diversity_term_is_recorded(tmp_path):
    """--diversity trains (one batch), logs the generated/real spread in D's features and names itself
    in the generator's recipe."""
    csv = tiny_fer_csv(tmp_path / "fer.csv", gz=False)
    history = train_gan.main(["--data", str(csv), "--out", str(tmp_path / "run"), "--dry-run", "--batch-size", "8",
                              "--g-channels", "4", "--d-channels", "4", "--diversity", "1"])
    assert history["spread_ratio"][0] > 0
    assert "diversity 1.0" in checkpoint.read(tmp_path / "run" / "generator.pt")["metrics"]["recipe"]


def test_gan_twin_classifier_is_added_on_resume_and_lowers_g_loss(tmp_path):
    """--twin (TAC-GAN): G's loss subtracts the twin's cross-entropy on its faces (same seed and batch:
    lower than without); a run saved without the twin resumes with it, its head appended to D and to
    Adam's parameters; it needs --aux."""
    csv = tiny_fer_csv(tmp_path / "fer.csv", gz=False)
    common = ["--data", str(csv), "--batch-size", "7", "--g-channels", "4", "--d-channels", "4", "--aux", "0.5"]
    plain = train_gan.main([*common, "--out", str(tmp_path / "plain"), "--dry-run"])
    twin = train_gan.main([*common, "--out", str(tmp_path / "twin"), "--dry-run", "--twin", "0.5"])
    assert twin["loss_g"][0] < plain["loss_g"][0] - 0.5 * 1.0  # the twin's cross-entropy starts near ln 7

    run = [*common, "--out", str(tmp_path / "run"), "--epochs"]
    train_gan.main([*run, "1"])
    train_gan.main([*run, "2", "--twin", "0.5"])
    state = checkpoint.read(tmp_path / "run" / "last.pt")["training_state"]
    assert state["step"] == 4 and state["D"]["twin.weight"].shape == (7, 4 * 8)
    n_params = len(state["opt_d"]["param_groups"][0]["params"])
    assert n_params == len(state["D"]) and n_params - 1 in state["opt_d"]["state"]
    assert "twin 0.5" in checkpoint.read(tmp_path / "run" / "generator.pt")["metrics"]["recipe"]
    with pytest.raises(SystemExit):
        train_gan.parse_args(["--data", "x", "--twin", "0.5", "--aux", "0"])


def test_baseline_gan_dry_run(tmp_path):
    """The student-project baseline trains through the same entry point and loads as a generator."""
    from ml.generate import FaceGenerator

    csv = tiny_fer_csv(tmp_path / "fer.csv", gz=False)
    train_gan.main(["--recipe", "baseline", "--data", str(csv), "--out", str(tmp_path / "run"), "--dry-run",
                    "--batch-size", "4", "--g-channels", "4", "--d-channels", "4"])
    loaded = checkpoint.load(tmp_path / "run" / "generator.pt", arch="baseline-generator")
    assert "bce loss" in loaded.meta["metrics"]["recipe"] and "batch 4" in loaded.meta["metrics"]["recipe"]
    faces = FaceGenerator.from_checkpoint(tmp_path / "run" / "generator.pt")[0].render([0, 6], [1, 1])
    assert faces.shape == (2, 48, 48)


def test_gan_resumes(tmp_path):
    csv = tiny_fer_csv(tmp_path / "fer.csv", gz=False)
    args = ["--data", str(csv), "--out", str(tmp_path / "run"), "--batch-size", "7", "--g-channels", "4",
            "--d-channels", "4", "--epochs", "1"]
    train_gan.main(args)
    train_gan.main(args[:-1] + ["2"])
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["step"] == 4 and len(history["loss_d"]) == 2  # epoch 2 continued from epoch 1


def test_gan_resume_adds_the_minibatch_std_channel_without_changing_d(tmp_path):
    """A run saved without --minibatch-std resumes with it: D's last convolution gains a zero-weight
    input channel (and zero Adam moments), so the widened D scores faces as the saved one did."""
    import torch

    from ml.models.gan import Discriminator, DiscriminatorConfig

    csv = tiny_fer_csv(tmp_path / "fer.csv", gz=False)
    args = ["--data", str(csv), "--out", str(tmp_path / "run"), "--batch-size", "7", "--g-channels", "4",
            "--d-channels", "4", "--epochs", "1"]
    train_gan.main(args)
    state = checkpoint.read(tmp_path / "run" / "last.pt")["training_state"]
    saved = Discriminator(DiscriminatorConfig(base_channels=4))
    saved.load_state_dict(state["D"])
    widened = Discriminator(DiscriminatorConfig(base_channels=4, minibatch_std=True))
    opt = torch.optim.Adam(widened.parameters())
    train_gan.add_std_channel(widened, state["D"], state["opt_d"])
    widened.load_state_dict(state["D"])
    opt.load_state_dict(state["opt_d"])
    faces, classes = torch.randn(8, 1, 48, 48), torch.arange(8) % 7
    assert torch.allclose(widened(faces, classes), saved(faces, classes), atol=1e-6)
    index = [name for name, _ in widened.named_parameters()].index("convs.5.weight")
    assert opt.state_dict()["state"][index]["exp_avg"].shape[1] == 4 * 8 + 1

    train_gan.main(args[:-1] + ["2", "--minibatch-std"])
    resumed = checkpoint.read(tmp_path / "run" / "last.pt")["training_state"]
    assert resumed["step"] == 4 and resumed["D"]["convs.5.weight"].shape[1] == 4 * 8 + 1
    assert resumed["D"]["convs.5.weight"][:, -1].abs().sum() > 0  # the new channel trained
    assert "minibatch std True" in checkpoint.read(tmp_path / "run" / "generator.pt")["metrics"]["recipe"]


@pytest.mark.data
def test_ser_dry_run(tmp_path):
    out = tmp_path / "ser.pt"
    metrics = train_ser.main(["--recipe", "cnn", "--data", str(DATA / "ravdess"), "--out", str(out), "--dry-run",
                              "--holdout-fold", "1"])
    assert metrics["train_clips"] == 8 and metrics["recipe"]["seeds"] == [0] and "holdout" in metrics
    loaded = checkpoint.load(out, arch="ser-cnn")
    assert loaded.meta["data"]["split"] == "all folds except 1"
    assert json.loads(out.with_name("ser.pt.json").read_text())["train_clips"] == 8


@pytest.mark.data
def test_ser_dry_run_two_seeds_saves_one_ensemble(tmp_path):
    out = tmp_path / "ser.pt"
    metrics = train_ser.main(["--recipe", "cnn", "--data", str(DATA / "ravdess"), "--out", str(out), "--dry-run",
                              "--holdout-fold", "1", "--seeds", "0,1"])
    assert metrics["recipe"]["seeds"] == [0, 1] and len(metrics["holdout"]["members"]) == 2
    assert 0 <= metrics["holdout"]["ua"] <= 1
    assert checkpoint.load(out, arch="ser-ensemble").model.config.size == 2


@pytest.mark.data
def test_ser_head_dry_run_trains_on_every_corpus_and_serves(tmp_path):
    from ml.data import speech
    from ml.recognize import EmotionRecognizer, EncoderRecognizer

    out = tmp_path / "ser.pt"
    metrics = train_ser.main(["--data", str(DATA), "--out", str(out), "--cache", str(tmp_path / "cache"), "--dry-run",
                              "--holdout-fold", "1"])
    loaded = checkpoint.load(out, arch="ser-whisper")
    assert set(loaded.meta["data"]["corpora"]) == set(speech.CORPORA) and all(loaded.meta["data"]["corpora"].values())
    assert metrics["holdout"]["fold"] == 1 and metrics["recipe"]["recipe"] == "whisper"
    recognizer, _ = EmotionRecognizer.from_checkpoint(out)
    assert isinstance(recognizer, EncoderRecognizer)
    probs = recognizer.predict([np.zeros(16_000, np.float32) + 0.01 * np.sin(np.arange(16_000) / 5, dtype=np.float32)])
    assert probs.shape == (1, 8) and abs(float(probs.sum()) - 1) < 1e-5


@pytest.mark.data
def test_ser_loco_dry_run_scores_every_corpus_on_its_own_classes(tmp_path):
    from ml import evaluate_ser
    from ml.data import speech

    summary = evaluate_ser.main(["--data", str(DATA), "--out", str(tmp_path / "eval"), "--cache", str(tmp_path / "c"),
                                 "--dry-run"])
    assert list(summary["loco"]) == list(speech.CORPORA)
    assert summary["loco"]["turev"]["classes"] == ["calm", "happy", "sad", "angry"]
    assert summary["loco_worst"] in speech.CORPORA and 0 <= summary["loco_mean_ua"] <= 1
    assert [f["fold"] for f in summary["ravdess_folds"]] == [1, 2, 3, 4, 5, 6]
    assert set(summary["ravdess_perturbed_ua8"]) == set(evaluate_ser.PERTURBATIONS) - {"clean"}
    for corpus in speech.CORPORA:
        assert (tmp_path / "eval" / f"confusion_{corpus}.png").exists()
    saved = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert saved["loco_mean_ua"] == summary["loco_mean_ua"] and "| **mean** |" in (tmp_path / "eval" / "eval.md").read_text()


@pytest.mark.data
def test_ser_nested_criterion_never_trains_on_the_corpus_it_leaves_out(tmp_path, monkeypatch):
    """--nested, with a hidden layer: 20 inner splits, none training on the held-out corpus or
    the probed one."""
    from ml import evaluate_ser
    from ml.data import speech

    seen: list[tuple[set, set]] = []
    real = evaluate_ser.head_split

    def spy(clips, X, views, train, test, config, args):
        seen.append(({clips[i].corpus for i in train}, {clips[i].corpus for i in test}))
        assert config.hidden == 16
        return real(clips, X, views, train, test, config, args)

    monkeypatch.setattr(evaluate_ser, "head_split", spy)
    result = evaluate_ser.main(["--data", str(DATA), "--out", str(tmp_path / "n"), "--cache", str(tmp_path / "c"),
                                "--dry-run", "--nested", "--hidden", "16"])
    assert len(seen) == 20 and all(len(train) == 3 and len(test) == 1 and not train & test for train, test in seen)
    assert set(result["inner_means"]) == set(speech.CORPORA) and 0 <= result["nested_mean"] <= 1
    for held, probes in result["inner"].items():
        assert held not in probes and len(probes) == 4
    assert json.loads((tmp_path / "n" / "nested.json").read_text())["nested_mean"] == result["nested_mean"]


def test_ser_seed_list_is_checked():
    with pytest.raises(SystemExit):
        train_ser.parse_args(["--data", "x", "--out", "y", "--seeds", "0,0"])
    assert train_ser.parse_args(["--data", "x", "--out", "y", "--seeds", "2,5"]).seeds == [2, 5]


@pytest.mark.data
def test_ser_cross_validation_dry_run_reuses_its_members(tmp_path, caplog):
    """Two folds, two seeds: every table figure present, and a rerun trains nothing again."""
    from ml import evaluate_ser

    args = ["--recipe", "cnn", "--data", str(DATA / "ravdess"), "--out", str(tmp_path / "cv"), "--folds", "1,2",
            "--dry-run", "--seeds", "0,1"]
    summary = evaluate_ser.main(args)
    assert [f["fold"] for f in summary["folds"]] == [1, 2]
    assert set(summary["single_seed_mean_ua8"]) == {"0", "1"}
    for kind in evaluate_ser.PERTURBATIONS:
        assert 0 <= summary["mean"][kind]["8"]["ua"] <= 1 and 0 <= summary["mean"][kind]["7"]["ua"] <= 1
    assert (tmp_path / "cv" / "fold2_seed1.pt").exists() and (tmp_path / "cv" / "confusion_8.png").exists()
    assert "seed 1 alone" in (tmp_path / "cv" / "cv.md").read_text()
    for fold_json in (tmp_path / "cv").glob("fold*.json"):
        fold_json.unlink()  # force scoring again: members must come from disk
    with caplog.at_level("INFO", logger="ml.evaluate_ser"):
        again = evaluate_ser.main(args)
    assert sum("reusing" in r.getMessage() for r in caplog.records) == 4
    assert again["mean"] == summary["mean"]
    caplog.clear()
    with caplog.at_level("INFO", logger="ml.evaluate_ser"):  # other test-time views: scored again, not trained
        evaluate_ser.main(args + ["--speeds", "1.0"])
    assert sum("reusing" in r.getMessage() for r in caplog.records) == 4
    assert json.loads((tmp_path / "cv" / "fold1.json").read_text())["speeds"] == [1.0]


def test_ser_cv_speed_list_is_checked():
    from ml import evaluate_ser

    assert evaluate_ser.parse_speeds("0.9,1.0,1.1") == [0.9, 1.0, 1.1]
    for bad in ("fast", "0.1"):
        with pytest.raises(Exception, match="speed"):
            evaluate_ser.parse_speeds(bad)


def test_ser_cv_table_has_a_seed_column_only_for_several_seeds():
    from ml import evaluate_ser

    fold = {kind: {n: {"ua": 0.5, "wa": 0.5, "macro_f1": 0.5} for n in ("8", "7")} for kind in evaluate_ser.PERTURBATIONS}
    summary = {"folds": [{"fold": 1, "actors": [1, 11], **fold}], "mean": fold,
               "single_seed_mean_ua8": {"0": {kind: 0.5 for kind in evaluate_ser.PERTURBATIONS}}}
    one = evaluate_ser.markdown(summary)
    assert "alone" not in one and "| noise_10db | 50.0 | +0.0 | 50.0 |\n" in one
    summary["single_seed_mean_ua8"]["1"] = {kind: 0.25 for kind in evaluate_ser.PERTURBATIONS}
    two = evaluate_ser.markdown(summary)
    assert "| UA 8, seed 0 alone | UA 8, seed 1 alone |" in two and "| pad_2x | 50.0 | +0.0 | 50.0 | 50.0 | 25.0 |" in two


def test_sample_grid_from_a_checkpoint_matches_the_training_run(tmp_path):
    """`python -m ml.generate` redraws the run's last grid from its generator.pt, and cell (row r,
    column c) is emotion r drawn for seed c."""
    import numpy as np
    from PIL import Image

    from ml import generate

    train_gan.main(["--data", str(tiny_fer_csv(tmp_path / "fer.csv.gz", gz=True)), "--out", str(tmp_path / "run"),
                    "--dry-run", "--g-channels", "4", "--d-channels", "4"])
    out = tmp_path / "grid.png"
    generate.main(["--generator", str(tmp_path / "run" / "generator.pt"), "--out", str(out)])
    grid = np.asarray(Image.open(out))
    assert np.array_equal(grid, np.asarray(Image.open(tmp_path / "run" / "samples" / "latest.png")))
    gen, _ = generate.FaceGenerator.from_checkpoint(tmp_path / "run" / "generator.pt")
    from ml.plots import grid_cell

    r, c = 4, 7
    x, y = grid_cell(r, c, (48, 48), labelled=True)
    assert np.array_equal(grid[y: y + 48, x: x + 48], gen.render([r], [c])[0])
    bottom_right = grid_cell(6, 9, (48, 48), labelled=True)  # 7 emotions x 10 seeds, then the border
    assert np.array_equal(gen.render([6], [9])[0], grid[bottom_right[1]:, bottom_right[0]:][:48, :48])
    assert grid.shape == (bottom_right[1] + 48 + 2, bottom_right[0] + 48 + 2)
