"""--dry-run of each training entry point: one batch, every output written, checkpoint loadable."""

import json

import numpy as np
import pytest
import torch

from ml import checkpoint, codecs, train_editor, train_gan, train_ser
from ml.augment import perturbations
from tests.conftest import DATA, tiny_fer_csv


def test_a_missing_encoder_stops_a_real_evaluation_and_a_dry_run_leaves_its_perturbation_out(monkeypatch):
    """Without VisualOn's AMR-WB library a real evaluation stops at once, naming the install line;
    the README's --dry-run lines still run, without the amr_wb perturbation."""
    monkeypatch.setattr(codecs, "available", lambda kind: kind != "awb")
    with pytest.raises(codecs.CodecUnavailable, match="apt-get install libvo-amrwbenc0"):
        perturbations()
    assert "amr_wb" not in perturbations(dry_run=True) and "amr_nb" in perturbations(dry_run=True)
    monkeypatch.setattr(codecs, "available", lambda kind: True)
    assert perturbations() == perturbations(dry_run=True) and "amr_wb" in perturbations()


def test_gan_dry_run(tmp_path):
    """One step of the shipped recipe at full size, then every output, loadable and drawing."""
    csv = tiny_fer_csv(tmp_path / "fer.csv", gz=False)
    train_gan.main(["--data", str(csv), "--out", str(tmp_path / "run"), "--dry-run"])
    for name in ("generator.pt", "last.pt", "losses.png", "history.json", "samples/latest.png", "samples/step_000001.png"):
        assert (tmp_path / "run" / name).exists(), name
    loaded = checkpoint.load(tmp_path / "run" / "generator.pt", arch="cgan-generator")
    assert loaded.meta["data"]["faces"] == 14 and loaded.meta["drawing"] == {"latent_scale": None}
    assert loaded.meta["metrics"] == {"steps": 1, "recipe": "emoface", "phase": 1}
    assert loaded.model.config.base_channels == train_gan.RECIPES["emoface"].channels
    assert json.loads((tmp_path / "run" / "history.json").read_text())["step"] == 1


def test_editor_dry_run_and_resume(tmp_path, monkeypatch):
    """A warm-up step and a full step of the shipped recipe, every output loadable and editing; a
    run stopped by --steps goes on from last.pt to the same end as one run straight through."""
    csv = tiny_fer_csv(tmp_path / "fer.csv", gz=False)
    train_editor.main(["--data", str(csv), "--out", str(tmp_path / "dry"), "--dry-run"])
    for name in ("editor.pt", "last.pt", "losses.png", "history.json", "samples/latest.png", "samples/step_000002.png"):
        assert (tmp_path / "dry" / name).exists(), name
    loaded = checkpoint.load(tmp_path / "dry" / "editor.pt", arch="expression-editor")
    assert loaded.meta["data"]["faces"] == 14 and loaded.meta["metrics"] == {"steps": 2}
    x = torch.zeros(2, 1, 48, 48)
    assert loaded.model(x, torch.tensor([0, 3])).shape == x.shape

    monkeypatch.setattr(train_editor, "RECIPE", train_editor.EditorRecipe(
        steps=4, batch_size=4, warmup=1, mask_ramp=2, channels=4, res_blocks=1))
    args = ["--data", str(csv), "--save-every-min", "0"]
    train_editor.main([*args, "--out", str(tmp_path / "straight")])
    train_editor.main([*args, "--out", str(tmp_path / "resumed"), "--steps", "2"])
    train_editor.main([*args, "--out", str(tmp_path / "resumed")])
    a, b = (checkpoint.load(tmp_path / run / "editor.pt").model.state_dict() for run in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_shipped_recipe_holds_the_phases_of_the_run_that_made_the_file():
    """docs/experiments/gan.md's phase table, step for step: the auxiliary weight, its margin, the
    learning rate and the minibatch-std channel change where that run changed them."""
    recipe = train_gan.RECIPES["emoface"]
    ends = [p.until for p in recipe.phases]
    assert ends == sorted(ends) and ends[-1] == 34_948  # the shipped file's step count
    at = {step: recipe.phase(step) for step in (0, 2_035, 2_036, 7_975, 9_786, 19_071, 19_967, 27_223, 27_224, 34_947)}
    assert at[0].aux == at[2_035].aux == 0 and at[2_036].aux == 0.5 and at[7_975].aux == 0.1 and at[9_786].aux == 0.25
    assert at[19_071].lr == 1e-4 and at[19_071].aux_margin == pytest.approx(0.693, abs=1e-3)
    assert at[19_967].aux_margin == 1.2 and at[19_967].aux == 0.35
    assert not at[27_223].minibatch_std and at[27_224].minibatch_std and at[34_947].minibatch_std
    assert all(p.lr == 2e-4 for p in recipe.phases[:4])


def test_gan_resumes_across_phases_and_switches_the_std_channel_on(tmp_path, monkeypatch):
    """A two-phase recipe stopped after phase 1 resumes where it stopped: until the phase that
    turns it on, D's minibatch-std weights stay exactly zero (as if the channel were added then),
    and after it they have trained; the learning rate is the phase's."""
    monkeypatch.setitem(train_gan.RECIPES, "tiny", train_gan.Recipe("emoface", (
        train_gan.Phase(2), train_gan.Phase(4, lr=1e-4, aux=0.5, minibatch_std=True)), batch_size=8, channels=4))
    csv = tiny_fer_csv(tmp_path / "fer.csv", gz=False)
    args = ["--recipe", "tiny", "--data", str(csv), "--out", str(tmp_path / "run")]
    train_gan.main([*args, "--steps", "2"])
    state = checkpoint.read(tmp_path / "run" / "last.pt")["training_state"]
    assert state["step"] == 2 and state["D"]["convs.5.weight"][:, -1].abs().sum() == 0
    assert state["opt_d"]["param_groups"][0]["lr"] == 2e-4
    history = train_gan.main(args)
    state = checkpoint.read(tmp_path / "run" / "last.pt")["training_state"]
    assert state["step"] == 4 and state["D"]["convs.5.weight"][:, -1].abs().sum() > 0
    assert state["opt_d"]["param_groups"][0]["lr"] == 1e-4 and len(history["loss_d"]) == 4  # one epoch is 1 step here
    assert checkpoint.read(tmp_path / "run" / "generator.pt")["metrics"] == {"steps": 4, "recipe": "tiny", "phase": 2}


def test_gan_aux_margin_drops_the_auxiliary_term_for_recognised_faces(tmp_path, monkeypatch):
    """G's auxiliary loss counts only cross-entropy above the margin. Same seed and batch: a
    margin above any cross-entropy of the batch gives the loss without the term."""
    csv = tiny_fer_csv(tmp_path / "fer.csv", gz=False)
    losses = {}
    for margin in (0.0, 100.0):
        monkeypatch.setitem(train_gan.RECIPES, "tiny", train_gan.Recipe(
            "emoface", (train_gan.Phase(1, aux=0.5, aux_margin=margin),), batch_size=8, channels=4))
        losses[margin] = train_gan.main(["--recipe", "tiny", "--data", str(csv), "--out", str(tmp_path / str(margin))])
    assert losses[100.0]["loss_g"][0] < losses[0.0]["loss_g"][0] - 0.5 * 0.1  # 7 classes at random: CE near ln 7
    assert losses[100.0]["loss_d"] == losses[0.0]["loss_d"]  # D's step does not see G's margin


def test_baseline_gan_dry_run(tmp_path):
    """The student-project baseline trains through the same entry point and loads as a generator."""
    from ml.generate import FaceGenerator

    csv = tiny_fer_csv(tmp_path / "fer.csv", gz=False)
    train_gan.main(["--recipe", "baseline", "--data", str(csv), "--out", str(tmp_path / "run"), "--dry-run"])
    loaded = checkpoint.load(tmp_path / "run" / "generator.pt", arch="baseline-generator")
    assert loaded.meta["metrics"]["recipe"] == "baseline"
    faces = FaceGenerator.from_checkpoint(tmp_path / "run" / "generator.pt")[0].render([0, 6], [1, 1])
    assert faces.shape == (2, 48, 48)


@pytest.mark.data
def test_ser_head_dry_run_trains_on_every_corpus_and_serves(tmp_path):
    from ml.data import speech
    from ml.recognize import EmotionRecognizer

    out = tmp_path / "ser.pt"
    metrics = train_ser.main(["--data", str(DATA), "--out", str(out), "--cache", str(tmp_path / "cache"), "--dry-run"])
    loaded = checkpoint.load(out, arch="ser-whisper")
    assert set(loaded.meta["data"]["corpora"]) == set(speech.CORPORA) and all(loaded.meta["data"]["corpora"].values())
    assert metrics["recipe"]["recipe"] == "whisper" and metrics["train_clips"] == sum(loaded.meta["data"]["corpora"].values())
    cal = metrics["calibration"]
    assert loaded.model.cal_log_scale.item() == pytest.approx(cal["log_scale"]) and cal["kind"] == "distance"
    np.testing.assert_allclose(loaded.model.cal_bias.numpy(), cal["bias"], atol=1e-6)
    recognizer, _ = EmotionRecognizer.from_checkpoint(out)
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
    assert set(summary["ravdess_perturbed_ua8"]) == set(perturbations(dry_run=True)) - {"clean"}
    for corpus in speech.CORPORA:
        assert (tmp_path / "eval" / f"confusion_{corpus}.png").exists()
    saved = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert saved["loco_mean_ua"] == summary["loco_mean_ua"] and "| **mean** |" in (tmp_path / "eval" / "eval.md").read_text()
    assert (tmp_path / "eval" / "reliability.png").exists() and 0 <= summary["loco_mean_ece"] <= 1
    assert sum(summary["loco_answer_shares"].values()) == pytest.approx(1.0)
    outer, inner = evaluate_ser.load_logits(tmp_path / "eval" / "held_out_logits.npz")  # what save_logits wrote
    assert list(outer) == list(speech.CORPORA) and all(len(probes) == 4 and c not in probes for c, probes in inner.items())
    assert len(inner) == 5 and all(len(h.logits) == len(h.index) == len(h.distance) for h in outer.values())
    for r in summary["loco"].values():
        assert ("neutral_recall" in r) == ("neutral" in r["classes"]) and sum(n for *_, n in r["reliability"]) == r["clips"]


@pytest.mark.data
def test_ser_nested_criterion_never_trains_on_the_corpus_it_leaves_out(tmp_path, monkeypatch):
    """--nested, with a hidden layer: 20 inner heads, each trained on three corpora; every
    calibration the criterion scores is fitted on three corpora's held-out logits."""
    from ml import evaluate_ser, ser_head
    from ml.calibration import KINDS
    from ml.data import speech

    trained: list[set] = []
    fitted: list[list[str]] = []
    real_train, real_fit = ser_head.train_on, evaluate_ser.fit_calibration

    def spy_train(clips, X, views, train, config, args):
        trained.append({clips[i].corpus for i in train})
        assert config.hidden == 16
        return real_train(clips, X, views, train, config, args)

    def spy_fit(kind, held, clips):
        fitted.append([h.corpus for h in held])
        return real_fit(kind, held, clips)

    monkeypatch.setattr(ser_head, "train_on", spy_train)
    monkeypatch.setattr(evaluate_ser, "fit_calibration", spy_fit)
    result = evaluate_ser.main(["--data", str(DATA), "--out", str(tmp_path / "n"), "--cache", str(tmp_path / "c"),
                                "--dry-run", "--nested", "--hidden", "16"])
    assert len(trained) == 20 and all(len(t) == 3 for t in trained)
    assert len(fitted) == 20 * len(KINDS) and all(len(f) == 3 for f in fitted)
    assert set(result["inner_means"]) == set(speech.CORPORA) and 0 <= result["nested_mean"] <= 1
    for held, probes in result["inner"].items():
        assert held not in probes and len(probes) == 4
    assert set(result["calibration"]) == set(KINDS)
    assert json.loads((tmp_path / "n" / "nested.json").read_text())["nested_mean"] == result["nested_mean"]


@pytest.mark.data
def test_ser_loco_calibration_never_sees_the_corpus_it_reports(tmp_path, monkeypatch):
    """In the full evaluation, the calibration reported for a held-out corpus is fitted on the
    other four corpora's logits, from heads never trained on it; the folds' on the four that are
    not RAVDESS."""
    from ml import evaluate_ser, ser_head
    from ml.data import speech

    excluded: list[tuple] = []
    fitted: list[set] = []
    real_logits, real_fit = ser_head.held_out_logits, evaluate_ser.fit_calibration

    def spy_logits(clips, X, views, config, args, *, exclude=()):
        excluded.append(exclude)
        return real_logits(clips, X, views, config, args, exclude=exclude)

    def spy_fit(kind, held, clips):
        if kind == "temperature":
            fitted.append({h.corpus for h in held})
        return real_fit(kind, held, clips)

    monkeypatch.setattr(evaluate_ser, "held_out_logits", spy_logits)
    monkeypatch.setattr(evaluate_ser, "fit_calibration", spy_fit)
    summary = evaluate_ser.main(["--data", str(DATA), "--out", str(tmp_path / "e"), "--cache", str(tmp_path / "c"),
                                 "--dry-run", "--calibration", "temperature"])
    assert excluded == [(c,) for c in speech.CORPORA] + [()]  # inner for each corpus, then the outer LOCO
    reported = [f for f in fitted if len(f) == 4]  # the nested criterion's own fits use three
    assert reported == [set(speech.CORPORA) - {c} for c in speech.CORPORA] + [set(speech.CORPORA) - {"ravdess"}]
    for corpus, r in summary["loco"].items():
        assert r["calibration_fitted"]["kind"] == "temperature" and 0 <= r["ece"] <= 1


def test_ser_entry_points_take_one_seed_and_no_cnn_options():
    """The head has one seed (--seed); the log-mel CNN's options went with it."""
    assert train_ser.parse_args(["--data", "x", "--out", "y", "--seed", "5"]).seed == 5
    for gone in (["--seeds", "0,1"], ["--recipe", "cnn"], ["--epochs", "3"]):
        with pytest.raises(SystemExit):
            train_ser.parse_args(["--data", "x", "--out", "y", *gone])


def test_sample_grid_from_a_checkpoint_matches_the_training_run(tmp_path):
    """`python -m ml.generate` redraws the run's last grid from its generator.pt, and cell (row r,
    column c) is emotion r drawn for seed c."""
    import numpy as np
    from PIL import Image

    from ml import generate

    train_gan.main(["--data", str(tiny_fer_csv(tmp_path / "fer.csv.gz", gz=True)), "--out", str(tmp_path / "run"),
                    "--dry-run"])
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
