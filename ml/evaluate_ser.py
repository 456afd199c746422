"""Speaker-independent 6-fold cross-validation of the SER recipe, with robustness tests.

    python -m ml.evaluate_ser --data ../shared/data/ravdess --out runs/ser_cv

For each fold of the manifest (4 held-out actors), trains one model per seed (``--seeds``,
default 0, as shipped) on the other 20 actors with the same recipe as the shipped model
(``ml.train_ser.fit``), then scores it (with several seeds: their ensemble, and each seed
alone) through the service's :class:`ml.recognize.EmotionRecognizer`, test-time views included
(``--speeds``; ``--speeds 1.0`` scores one view), on the held-out clips clean and under four
perturbations: white noise at 10 dB SNR, telephone band (300-3400 Hz, sent at 8 kHz), -20 dB
gain, and silence padding to twice the length. Writes ``cv.json`` (every fold and the means),
``confusion_8.png`` / ``confusion_7.png`` (pooled over folds) and ``cv.md`` (the tables for the
README and model card). Interrupted runs resume: fold models (``fold{N}_seed{S}.pt``) and scored folds
(``fold{N}.json``) are reused when their clips and recipe match.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ml import audio, checkpoint, plots
from ml.augment import PERTURBATIONS, perturb, perturbations
from ml.data import ravdess, speech
from ml.embed import SpeechEmbedder, cached_embeddings
from ml.labels import EMOTIONS, merge_calm
from ml.metrics import EMOTIONS_7, confusion, corpus_scores, scores, scores_7
from ml.models.ser import SERHead, SERHeadConfig, SERNet
from ml.recognize import EmotionRecognizer
from ml.runtime import setup_cli
from ml.train_ser import add_head_args, ensemble_of, fit, fit_head, parse_seeds

log = logging.getLogger(__name__)


def head_answers(head: SERHead, features: np.ndarray) -> np.ndarray:
    """The head's 8-way answers (N,) on cached (N, layers, 2, width) features."""
    with torch.inference_mode():
        return head(torch.from_numpy(features.astype(np.float32))).argmax(1).numpy()


def parse_speeds(text: str) -> list[float]:
    """``"0.9,1.0,1.1"`` -> [0.9, 1.0, 1.1]; an argparse type, so a bad list is a usage error."""
    try:
        speeds = [float(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"speeds must be comma-separated numbers, got {text!r}") from None
    if not all(0.5 <= s <= 2.0 for s in speeds):
        raise argparse.ArgumentTypeError(f"speed factors must lie in 0.5-2.0, got {text!r}")
    return speeds


def fold_members(fold: int, clips: list[ravdess.RavdessClip], waves: list[np.ndarray],
                 args: argparse.Namespace) -> list[SERNet]:
    """One model per seed trained on every fold but ``fold``; reused from ``fold{N}_seed{S}.pt``
    when an earlier run trained it on the same clips with the same recipe."""
    out = Path(args.out)
    train = [i for i, c in enumerate(clips) if c.fold != fold]
    data = {"dataset": "RAVDESS speech", "split": f"train folds != {fold}",
            "fingerprint": ravdess.fingerprint([clips[i] for i in train])}
    members = []
    for seed in args.seeds:
        path = out / f"fold{fold}_seed{seed}.pt"
        recipe = {"epochs": args.epochs, "seed": seed, "dry_run": args.dry_run}
        if path.exists():
            loaded = checkpoint.load(path, arch="ser-cnn")
            if loaded.meta["data"] == data and loaded.meta["metrics"].get("recipe") == recipe:
                log.info("fold %d seed %d: reusing %s", fold, seed, path)
                members.append(loaded.model)
                continue
        t0 = time.time()
        model = fit([waves[i] for i in train], np.array([clips[i].label for i in train]), epochs=args.epochs,
                    seed=seed, dry_run=args.dry_run, desc=f"fold {fold} seed {seed}")
        checkpoint.save(path, model, labels=EMOTIONS, data=data,
                        metrics={"recipe": recipe, "train_seconds": round(time.time() - t0, 1)})
        members.append(model)
    return members


def run_fold(fold: int, clips: list[ravdess.RavdessClip], waves: list[np.ndarray], args: argparse.Namespace) -> dict:
    """Score the fold's models (the ensemble of its seeds, and each seed alone) on its held-out actors."""
    members = fold_members(fold, clips, waves, args)
    test = [i for i, c in enumerate(clips) if c.fold == fold][::30 if args.dry_run else 1]
    y = np.array([clips[i].label for i in test])
    result: dict = {"fold": fold, "actors": sorted({clips[i].actor for i in test}), "seeds": args.seeds,
                    "epochs": args.epochs, "speeds": args.speeds, "dry_run": args.dry_run, "true": y.tolist()}

    kinds = perturbations(args.dry_run)
    views = {kind: [perturb(waves[i], kind, seed=i) for i in test] for kind in kinds}  # once, for every model

    def score(model: torch.nn.Module) -> dict:
        recognizer = EmotionRecognizer(model, speeds=args.speeds)
        scored = {}
        for kind, clips_of_kind in views.items():
            pred = recognizer.predict(clips_of_kind).argmax(1)
            scored[kind] = {"8": scores(y, pred), "7": scores_7(y, pred), "pred": pred.tolist()}
        return scored

    singles = [score(m) for m in members]
    result.update(score(ensemble_of(members)) if len(members) > 1 else singles[0])
    result["members"] = [{"seed": seed, **{kind: single[kind]["8"]["ua"] for kind in kinds}}
                         for seed, single in zip(args.seeds, singles)]
    log.info("fold %d: UA8 %s; single seeds clean %s", fold,
             " ".join(f"{k} {result[k]['8']['ua']:.3f}" for k in kinds), [round(m["clean"], 3) for m in result["members"]])
    return result


def summarise(results: list[dict], out: Path) -> dict:
    summary: dict = {"folds": [], "mean": {}}
    kinds = [k for k in PERTURBATIONS if k in results[0]]
    for r in results:
        summary["folds"].append({"fold": r["fold"], "actors": r["actors"],
                                 **{k: {n: r[k][n] for n in ("8", "7")} for k in kinds}})
    summary["single_seed_mean_ua8"] = {
        str(seed): {kind: float(np.mean([r["members"][j][kind] for r in results])) for kind in kinds}
        for j, seed in enumerate(results[0]["seeds"])
    }
    for kind in kinds:
        summary["mean"][kind] = {
            n: {m: float(np.mean([r[kind][n][m] for r in results])) for m in ("ua", "wa", "macro_f1")} for n in ("8", "7")
        }
    y = np.concatenate([r["true"] for r in results])
    p = np.concatenate([r["clean"]["pred"] for r in results])
    plots.confusion_matrix_image(confusion(y, p, 8), list(EMOTIONS), out / "confusion_8.png",
                                 title=f"RAVDESS 6-fold speaker-independent, 8 classes (pooled, {len(y)} clips)")
    m = np.vectorize(merge_calm)
    plots.confusion_matrix_image(confusion(m(y), m(p), 7), list(EMOTIONS_7), out / "confusion_7.png",
                                 title="calm merged into neutral, 7 classes")
    (out / "cv.json").write_text(json.dumps(summary, indent=1))
    (out / "cv.md").write_text(markdown(summary))
    return summary


def markdown(summary: dict) -> str:
    lines = ["| fold | held-out actors | UA 8 | WA 8 | F1 8 | UA 7 | WA 7 | F1 7 |", "|---|---|---|---|---|---|---|---|"]
    rows = [(str(f["fold"]), " ".join(f"{a:02d}" for a in f["actors"]), f["clean"]) for f in summary["folds"]]
    rows.append(("**mean**", "", summary["mean"]["clean"]))
    for name, actors, s in rows:
        lines.append(f"| {name} | {actors} | " + " | ".join(f"{100 * s[n][m]:.1f}" for n in ("8", "7") for m in ("ua", "wa", "macro_f1")) + " |")
    singles = summary["single_seed_mean_ua8"]
    if len(singles) == 1:  # one seed: its column would repeat UA 8
        singles = {}
    lines += ["", "| condition | UA 8 | drop vs clean (points) | UA 7 |"
              + "".join(f" UA 8, seed {seed} alone |" for seed in singles),
              "|---|---|---|---|" + "---|" * len(singles)]
    clean = summary["mean"]["clean"]["8"]["ua"]
    for kind in summary["mean"]:
        s = summary["mean"][kind]
        lines.append(f"| {kind} | {100 * s['8']['ua']:.1f} | {100 * (clean - s['8']['ua']):+.1f} | {100 * s['7']['ua']:.1f} |"
                     + "".join(f" {100 * single[kind]:.1f} |" for single in singles.values()))
    return "\n".join(lines) + "\n"


def head_split(clips: list[speech.SpeechClip], X: np.ndarray, views: np.ndarray, train: np.ndarray,
               test: np.ndarray, config: SERHeadConfig, args: argparse.Namespace) -> tuple[np.ndarray, SERHead]:
    """Train a head on ``train`` (balanced over its corpora and classes), each clip heard clean and
    as its training view (``views``); its 8-way answers on the clean ``test`` clips, and it."""
    y = np.array([c.label for c in clips])
    w = speech.balanced_weights([clips[i] for i in train], by=args.weighting)
    head = fit_head(np.concatenate([X[train], views[train]]), np.concatenate([y[train], y[train]]),
                    np.concatenate([w, w]), config, steps=args.steps, seed=args.seed, dry_run=args.dry_run)
    return head_answers(head, X[test]), head


def nested_criterion(clips: list[speech.SpeechClip], X: np.ndarray, views: np.ndarray, config: SERHeadConfig,
                     args: argparse.Namespace) -> dict:
    """The criterion head settings are chosen by, which never sees a held-out corpus: for each
    corpus held out, leave-one-corpus-out among the other four only (train on three, score the
    fourth), averaged; then the mean over the five held-out corpora."""
    y = np.array([c.label for c in clips])
    corpus = np.array([c.corpus for c in clips])
    classes = speech.corpus_classes(clips)
    inner: dict[str, dict[str, float]] = {}
    for held in speech.CORPORA:
        inner[held] = {}
        for probe in speech.CORPORA:
            if probe == held:
                continue
            train = np.flatnonzero((corpus != held) & (corpus != probe))
            test = np.flatnonzero(corpus == probe)
            inner[held][probe] = corpus_scores(y[test], head_split(clips, X, views, train, test, config, args)[0],
                                               classes[probe])["ua"]
        log.info("nested, %s held out: inner mean %.4f", held, np.mean(list(inner[held].values())))
    means = {held: float(np.mean(list(v.values()))) for held, v in inner.items()}
    return {"inner": inner, "inner_means": means, "nested_mean": float(np.mean(list(means.values())))}


def evaluate_head(args: argparse.Namespace) -> dict:
    """Leave-one-corpus-out over the five corpora, and RAVDESS's six folds with the other
    corpora in training, for the frozen-encoder recipe (``ml.train_ser --recipe whisper``)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kinds = perturbations(args.dry_run)  # a missing encoder stops the run here, not after the LOCO
    clips = speech.load_all(args.data)
    if args.dry_run:  # one clip of every corpus, class and RAVDESS fold
        clips = speech.first_of_each(clips)
    embedder = SpeechEmbedder(args.encoder, band_limit_hz=args.band_limit_hz)
    X = cached_embeddings([c.path for c in clips], embedder, Path(args.cache))
    views = cached_embeddings([c.path for c in clips], embedder, Path(args.cache), perturbation=args.views)
    config = SERHeadConfig(encoder=args.encoder, layers=X.shape[1], width=X.shape[3], hidden=args.hidden)
    if args.nested:
        result = {"config": asdict(config), "steps": args.steps, "weighting": args.weighting, "seed": args.seed,
                  "views": args.views, "band_limit_hz": args.band_limit_hz, "dry_run": args.dry_run,
                  **nested_criterion(clips, X, views, config, args)}
        (out / "nested.json").write_text(json.dumps(result, indent=1))
        print(f"nested criterion: {100 * result['nested_mean']:.2f} "
              + " ".join(f"{k} {100 * v:.1f}" for k, v in result["inner_means"].items()))
        return result
    y = np.array([c.label for c in clips])
    classes = speech.corpus_classes(clips)
    summary: dict = {"encoder": args.encoder, "front_end": embedder.key, "steps": args.steps, "seed": args.seed,
                     "hidden": args.hidden, "weighting": args.weighting, "views": args.views,
                     "band_limit_hz": args.band_limit_hz, "dry_run": args.dry_run,
                     "clips": len(clips),
                     "fingerprint": speech.fingerprint(clips), "loco": {}, "ravdess_folds": []}
    for held in speech.CORPORA:
        train, test = speech.leave_one_corpus_out(clips, held)
        assert not {clips[i].speaker for i in train} & {clips[i].speaker for i in test}
        s = corpus_scores(y[test], head_split(clips, X, views, train, test, config, args)[0], classes[held])
        names = [EMOTIONS[k] for k in classes[held]]
        summary["loco"][held] = {"classes": names, "clips": len(test), "speakers": len({clips[i].speaker for i in test}), **s}
        cm = np.array(s["confusion"])[np.ix_(classes[held], classes[held])]
        plots.confusion_matrix_image(cm, names, out / f"confusion_{held}.png",
                                     title=f"{held} held out (trained on the other four corpora)")
        log.info("LOCO %s: UA %.3f", held, s["ua"])
    uas = {k: v["ua"] for k, v in summary["loco"].items()}
    summary["loco_mean_ua"] = float(np.mean(list(uas.values())))
    summary["loco_worst"] = min(uas, key=uas.get)
    corpus = np.array([c.corpus for c in clips])
    folds = np.array([c.fold for c in clips])
    pooled_true, pooled_pred = [], []
    rav = np.flatnonzero(corpus == "ravdess")
    perturbed = {kind: cached_embeddings([clips[i].path for i in rav], embedder, Path(args.cache), perturbation=kind)
                 for kind in kinds if kind != "clean"}  # the RAVDESS clips, heard otherwise
    for fold in range(1, 7):
        test = np.flatnonzero((corpus == "ravdess") & (folds == fold))
        if not len(test):
            continue
        train = np.flatnonzero((corpus != "ravdess") | (folds != fold))  # the fold's actors never in training
        pred, head = head_split(clips, X, views, train, test, config, args)
        row = {"fold": fold, "8": scores(y[test], pred), "7": scores_7(y[test], pred)}
        in_rav = np.searchsorted(rav, test)
        for kind, feats in perturbed.items():
            heard = head_answers(head, feats[in_rav])
            row[kind] = scores(y[test], heard)["ua"]
            row[f"{kind}_same"] = float(np.mean(heard == pred))  # answers the perturbation leaves as they were
        summary["ravdess_folds"].append(row)
        pooled_true.append(y[test])
        pooled_pred.append(pred)
    summary["ravdess_mean"] = {n: {m: float(np.mean([f[n][m] for f in summary["ravdess_folds"]]))
                                   for m in ("ua", "wa", "macro_f1")} for n in ("8", "7")}
    summary["ravdess_perturbed_ua8"] = {kind: float(np.mean([f[kind] for f in summary["ravdess_folds"]]))
                                        for kind in perturbed}
    summary["ravdess_perturbed_same"] = {kind: float(np.mean([f[f"{kind}_same"] for f in summary["ravdess_folds"]]))
                                         for kind in perturbed}
    yt, yp = np.concatenate(pooled_true), np.concatenate(pooled_pred)
    plots.confusion_matrix_image(confusion(yt, yp, 8), list(EMOTIONS), out / "confusion_ravdess_8.png",
                                 title=f"RAVDESS 6-fold, other corpora in training (pooled, {len(yt)} clips)")
    (out / "eval.json").write_text(json.dumps(summary, indent=1))
    (out / "eval.md").write_text(head_markdown(summary))
    print(head_markdown(summary))
    return summary


def head_markdown(summary: dict) -> str:
    lines = ["| held-out corpus | language | classes | clips | speakers | UA | WA | macro-F1 |", "|---|---|---|---|---|---|---|---|"]
    for name, r in summary["loco"].items():
        lines.append(f"| {name} | {speech.LANGUAGES[name]} | {len(r['classes'])} | {r['clips']} | {r['speakers']} | "
                     f"{100 * r['ua']:.1f} | {100 * r['wa']:.1f} | {100 * r['macro_f1']:.1f} |")
    lines.append(f"| **mean** | | | | | **{100 * summary['loco_mean_ua']:.1f}** | | |")
    lines += ["", f"Worst corpus: {summary['loco_worst']} ({100 * summary['loco'][summary['loco_worst']]['ua']:.1f}).", "",
              "| RAVDESS fold | UA 8 | WA 8 | F1 8 | UA 7 |", "|---|---|---|---|---|"]
    for f in summary["ravdess_folds"]:
        lines.append(f"| {f['fold']} | {100 * f['8']['ua']:.1f} | {100 * f['8']['wa']:.1f} | {100 * f['8']['macro_f1']:.1f} | "
                     f"{100 * f['7']['ua']:.1f} |")
    m = summary["ravdess_mean"]
    lines.append(f"| **mean** | **{100 * m['8']['ua']:.1f}** | {100 * m['8']['wa']:.1f} | {100 * m['8']['macro_f1']:.1f} | "
                 f"{100 * m['7']['ua']:.1f} |")
    lines += ["", "| RAVDESS folds, held-out clips heard as | UA 8 | drop vs clean (points) | answer unchanged (%) |",
              "|---|---|---|---|", f"| clean | {100 * m['8']['ua']:.1f} | +0.0 | 100.0 |"]
    for kind, ua in summary["ravdess_perturbed_ua8"].items():
        lines.append(f"| {kind} | {100 * ua:.1f} | {100 * (m['8']['ua'] - ua):+.1f} | "
                     f"{100 * summary['ravdess_perturbed_same'][kind]:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True,
                   help="the data root holding ravdess/ and speech/ (recipe whisper), or RAVDESS's root (recipe cnn)")
    p.add_argument("--out", default="runs/ser_eval")
    p.add_argument("--recipe", choices=("whisper", "cnn"), default="whisper",
                   help="whisper: the shipped frozen-encoder recipe, LOCO + RAVDESS folds; cnn: the log-mel CNN, RAVDESS folds")
    add_head_args(p)
    p.add_argument("--nested", action="store_true",
                   help="recipe whisper: only the nested criterion that head settings are chosen by (nested.json)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", default="1,2,3,4,5,6")
    p.add_argument("--epochs", type=int, default=90)
    p.add_argument("--seeds", type=parse_seeds, default=[0],
                   help="one model per seed and fold; the folds are scored with their seeds' ensemble")
    p.add_argument("--speeds", type=parse_speeds, default=list(audio.SPEED_FACTORS),
                   help="test-time views, comma-separated speed factors (as served: 0.9,1.0,1.1; 1.0: one view)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--band-limit-hz", type=float, default=None,
                   help="recipe whisper: drop the spectrum above this before the encoder, in training and test "
                        "(an experiment; the shipped front end has no band limit)")
    p.add_argument("--dry-run", action="store_true", help="one training batch per model, a few clips")
    args = p.parse_args(argv)
    setup_cli(args.threads, "cpu")
    if args.recipe == "whisper":
        return evaluate_head(args)
    return evaluate_cnn(args)


def evaluate_cnn(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clips = ravdess.load_manifest(ravdess.resolve_root(args.data))
    waves = ravdess.load_waves(clips)
    results = []
    for fold in [int(f) for f in args.folds.split(",")]:
        path = out / f"fold{fold}.json"
        done = json.loads(path.read_text()) if path.exists() else {}
        recipe = ("seeds", "epochs", "speeds", "dry_run")  # a fold scored otherwise is scored again
        if [done.get(k) for k in recipe] != [getattr(args, k) for k in recipe]:
            done = run_fold(fold, clips, waves, args)
            path.write_text(json.dumps(done))
        results.append(done)
    summary = summarise(results, out)
    print(markdown(summary))
    return summary


if __name__ == "__main__":
    main()
