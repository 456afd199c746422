"""Held-out scores of the shipped SER recipe (``ml.train_ser``): leave each corpus out, RAVDESS's
six speaker-independent folds, and the RAVDESS folds heard through perturbations.

    python -m ml.evaluate_ser --data ../shared/data --out runs/ser_eval --cache runs/ser_cache
    python -m ml.evaluate_ser --data ../shared/data --out runs/ser_nested --cache runs/ser_cache --nested

For each of the five corpora, a head is trained on the other four and scored on it (unweighted
accuracy over the corpus's own classes); for each RAVDESS fold, on everything but the fold's
actors. The RAVDESS folds are also heard as perturbed copies (``ml.augment.PERTURBATIONS``: noise,
telephone band, gain, padding, AMR-NB and AMR-WB), with the share of answers each leaves as they
were. Writes ``eval.json``, ``eval.md`` (the model card's tables) and the confusion matrices.
``--nested`` computes only the criterion head settings are chosen by, which never sees the corpus
it scores (``nested.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ml import plots
from ml.augment import perturbations
from ml.data import speech
from ml.embed import SpeechEmbedder, cached_embeddings
from ml.labels import EMOTIONS
from ml.metrics import confusion, corpus_scores, scores, scores_7
from ml.models.ser import SERHead, SERHeadConfig
from ml.runtime import setup_cli
from ml.ser_head import add_head_args, fit_head, head_answers

log = logging.getLogger(__name__)
#: What an experiment may put in place of the recipe's parts (``evaluate_head``'s keywords): the
#: feature function (``ml.embed.cached_embeddings``'s signature) and the head's train-and-answer step.
Features = Callable[..., np.ndarray]
Split = Callable[..., tuple[np.ndarray, SERHead]]


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
                     args: argparse.Namespace, split: Split | None = None) -> dict:
    """The criterion head settings are chosen by, which never sees a held-out corpus: for each
    corpus held out, leave-one-corpus-out among the other four only (train on three, score the
    fourth), averaged; then the mean over the five held-out corpora."""
    split = split or head_split
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
            inner[held][probe] = corpus_scores(y[test], split(clips, X, views, train, test, config, args)[0],
                                               classes[probe])["ua"]
        log.info("nested, %s held out: inner mean %.4f", held, np.mean(list(inner[held].values())))
    means = {held: float(np.mean(list(v.values()))) for held, v in inner.items()}
    return {"inner": inner, "inner_means": means, "nested_mean": float(np.mean(list(means.values())))}


def evaluate_head(args: argparse.Namespace, *, features: Features = cached_embeddings, split: Split | None = None) -> dict:
    """Leave-one-corpus-out over the five corpora, and RAVDESS's six folds with the other
    corpora in training, for the shipped recipe (``ml.train_ser``)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kinds = perturbations(args.dry_run)  # a missing encoder stops the run here, not after the LOCO
    clips = speech.load_all(args.data)
    if args.dry_run:  # one clip of every corpus, class and RAVDESS fold
        clips = speech.first_of_each(clips)
    embedder = SpeechEmbedder(args.encoder, band_limit_hz=args.band_limit_hz)
    split = split or head_split
    X = features([c.path for c in clips], embedder, Path(args.cache))
    views = features([c.path for c in clips], embedder, Path(args.cache), perturbation=args.views)
    config = SERHeadConfig(encoder=args.encoder, layers=X.shape[1], width=X.shape[3], hidden=args.hidden)
    if args.nested:
        result = {"config": asdict(config), "steps": args.steps, "weighting": args.weighting, "seed": args.seed,
                  "views": args.views, "band_limit_hz": args.band_limit_hz, "dry_run": args.dry_run,
                  **nested_criterion(clips, X, views, config, args, split)}
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
        s = corpus_scores(y[test], split(clips, X, views, train, test, config, args)[0], classes[held])
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
    perturbed = {kind: features([clips[i].path for i in rav], embedder, Path(args.cache), perturbation=kind)
                 for kind in kinds if kind != "clean"}  # the RAVDESS clips, heard otherwise
    for fold in range(1, 7):
        test = np.flatnonzero((corpus == "ravdess") & (folds == fold))
        if not len(test):
            continue
        train = np.flatnonzero((corpus != "ravdess") | (folds != fold))  # the fold's actors never in training
        pred, head = split(clips, X, views, train, test, config, args)
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the data root holding ravdess/ and speech/")
    p.add_argument("--out", default="runs/ser_eval")
    add_head_args(p)
    p.add_argument("--nested", action="store_true",
                   help="only the nested criterion that head settings are chosen by (nested.json)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--band-limit-hz", type=float, default=None,
                   help="drop the spectrum above this before the encoder, in training and test "
                        "(an experiment; the shipped front end has no band limit)")
    p.add_argument("--dry-run", action="store_true", help="one training step per head, a few clips")
    args = p.parse_args(argv)
    setup_cli(args.threads, "cpu")
    return args


def main(argv: list[str] | None = None) -> dict:
    return evaluate_head(parse_args(argv))


if __name__ == "__main__":
    main()
