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

from ml import calibration, plots
from ml.augment import perturbations
from ml.data import speech
from ml.embed import SpeechEmbedder, cached_embeddings
from ml.labels import EMOTIONS
from ml.metrics import confusion, corpus_scores, scores, scores_7
from ml.models.ser import SERHeadConfig
from ml.runtime import setup_cli
from ml.ser_head import HeldOut, add_head_args, fit_calibration, head_answers, held_out_logits, train_on

log = logging.getLogger(__name__)
#: What an experiment may put in place of the recipe's feature function (``evaluate_head``'s
#: keyword; ``ml.embed.cached_embeddings``'s signature).
Features = Callable[..., np.ndarray]


def calibration_criterion(inner: dict[str, dict[str, HeldOut]], clips: list[speech.SpeechClip]) -> dict:
    """The criterion a calibration's kind is chosen by, which never sees a held-out corpus: for
    each corpus held out, and each other corpus probed, the calibration is fitted on the inner
    held-out logits of the remaining three and scored (ECE, UA) on the probe's; then the means."""
    y = np.array([c.label for c in clips])
    classes = speech.corpus_classes(clips)
    out: dict = {}
    for kind in calibration.KINDS:
        eces, uas = [], []
        for held, probes in inner.items():
            for probe, h in probes.items():
                cal = fit_calibration(kind, [o for k, o in probes.items() if k != probe], clips)
                probs = cal.apply(h.logits, h.distance)
                eces.append(calibration.confidence_report(probs, y[h.index], classes[probe])["ece"])
                uas.append(corpus_scores(y[h.index], probs.argmax(1), classes[probe])["ua"])
        out[kind] = {"mean_ece": float(np.mean(eces)), "worst_ece": float(np.max(eces)), "mean_ua": float(np.mean(uas))}
        log.info("calibration criterion %s: mean ECE %.4f, worst %.4f, UA %.4f", kind, *out[kind].values())
    return out


def nested_criterion(clips: list[speech.SpeechClip], X: np.ndarray, views: np.ndarray, config: SERHeadConfig,
                     args: argparse.Namespace, inner: dict[str, dict[str, HeldOut]] | None = None) -> dict:
    """The criterion head settings are chosen by, which never sees a held-out corpus: for each
    corpus held out, leave-one-corpus-out among the other four only (train on three, score the
    fourth), averaged; then the mean over the five held-out corpora. The UA is of the raw
    answers; :func:`calibration_criterion` scores the calibrations on the same logits."""
    inner = inner or {held: held_out_logits(clips, X, views, config, args, exclude=(held,)) for held in speech.CORPORA}
    y = np.array([c.label for c in clips])
    classes = speech.corpus_classes(clips)
    uas = {held: {probe: corpus_scores(y[h.index], h.logits.argmax(1), classes[probe])["ua"] for probe, h in probes.items()}
           for held, probes in inner.items()}
    means = {held: float(np.mean(list(v.values()))) for held, v in uas.items()}
    return {"inner": uas, "inner_means": means, "nested_mean": float(np.mean(list(means.values()))),
            "calibration": calibration_criterion(inner, clips)}


def save_logits(path: Path, outer: dict[str, HeldOut], inner: dict[str, dict[str, HeldOut]]) -> None:
    """Every held-out logit of a run, for analyses that should not train the heads again:
    ``outer/<corpus>/…`` and ``inner/<held>/<probe>/…`` (index, logits, distance)."""
    arrays = {}
    for prefix, held in [("outer", outer), *((f"inner/{k}", v) for k, v in inner.items())]:
        for name, h in held.items():
            arrays.update({f"{prefix}/{name}/index": h.index, f"{prefix}/{name}/logits": h.logits,
                           f"{prefix}/{name}/distance": h.distance})
    np.savez_compressed(path, **arrays)


def load_logits(path: Path) -> tuple[dict[str, HeldOut], dict[str, dict[str, HeldOut]]]:
    """The (outer, inner) held-out logits :func:`save_logits` wrote."""
    saved = np.load(path)

    def held(prefix: str, name: str) -> HeldOut:
        return HeldOut(name, *(saved[f"{prefix}/{name}/{part}"] for part in ("index", "logits", "distance")))

    outer = {c: held("outer", c) for c in speech.CORPORA if f"outer/{c}/index" in saved}
    inner = {c: {d: held(f"inner/{c}", d) for d in speech.CORPORA if f"inner/{c}/{d}/index" in saved}
             for c in speech.CORPORA}
    return outer, {c: probes for c, probes in inner.items() if probes}


def evaluate_head(args: argparse.Namespace, *, features: Features = cached_embeddings) -> dict:
    """Leave-one-corpus-out over the five corpora, calibrated by the nested rule, and RAVDESS's
    six folds with the other corpora in training, for the shipped recipe (``ml.train_ser``)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kinds = perturbations(args.dry_run)  # a missing encoder stops the run here, not after the LOCO
    clips = speech.load_all(args.data)
    if args.dry_run:  # one clip of every corpus, class and RAVDESS fold
        clips = speech.first_of_each(clips)
    embedder = SpeechEmbedder(args.encoder, band_limit_hz=args.band_limit_hz)
    X = features([c.path for c in clips], embedder, Path(args.cache))
    views = features([c.path for c in clips], embedder, Path(args.cache), perturbation=args.views)
    config = SERHeadConfig(encoder=args.encoder, layers=X.shape[1], width=X.shape[3], hidden=args.hidden)
    recipe = {"encoder": args.encoder, "front_end": embedder.key, "steps": args.steps, "seed": args.seed,
              "hidden": args.hidden, "weighting": args.weighting, "views": args.views,
              "band_limit_hz": args.band_limit_hz, "dry_run": args.dry_run}
    # the inner held-out logits: for each corpus, leave one out among the other four (20 heads)
    inner = {held: held_out_logits(clips, X, views, config, args, exclude=(held,)) for held in speech.CORPORA}
    if args.nested:
        result = {"config": asdict(config), **recipe, **nested_criterion(clips, X, views, config, args, inner)}
        (out / "nested.json").write_text(json.dumps(result, indent=1))
        print(f"nested criterion: {100 * result['nested_mean']:.2f} "
              + " ".join(f"{k} {100 * v:.1f}" for k, v in result["inner_means"].items()))
        for kind, r in result["calibration"].items():
            print(f"calibration {kind}: mean ECE {r['mean_ece']:.4f}, worst {r['worst_ece']:.4f}, UA {100 * r['mean_ua']:.2f}")
        return result
    y = np.array([c.label for c in clips])
    classes = speech.corpus_classes(clips)
    summary: dict = {**recipe, "calibration": args.calibration, "clips": len(clips),
                     "fingerprint": speech.fingerprint(clips),
                     "nested": nested_criterion(clips, X, views, config, args, inner), "loco": {}, "ravdess_folds": []}
    if args.calibration == "auto":  # the kind with the lowest nested mean ECE, which never saw a reported corpus
        crit = summary["nested"]["calibration"]
        summary["calibration"] = args.calibration = min(crit, key=lambda k: crit[k]["mean_ece"])
        log.info("calibration chosen by the nested criterion: %s", args.calibration)
    outer = held_out_logits(clips, X, views, config, args)  # each corpus, by a head trained on the other four
    save_logits(out / "held_out_logits.npz", outer, inner)
    answers = np.zeros(len(clips), np.int64)
    for held, h in outer.items():
        cal = fit_calibration(args.calibration, list(inner[held].values()), clips)  # never sees `held`
        probs = cal.apply(h.logits, h.distance)
        answers[h.index] = probs.argmax(1)
        s = corpus_scores(y[h.index], answers[h.index], classes[held])
        names = [EMOTIONS[k] for k in classes[held]]
        summary["loco"][held] = {"classes": names, "clips": len(h.index),
                                 "speakers": len({clips[i].speaker for i in h.index}), **s,
                                 "calibration_fitted": cal.as_dict(),
                                 **calibration.confidence_report(probs, y[h.index], classes[held]),
                                 "uncalibrated": calibration.confidence_report(
                                     calibration.Calibration().apply(h.logits, h.distance), y[h.index], classes[held])}
        cm = np.array(s["confusion"])[np.ix_(classes[held], classes[held])]
        plots.confusion_matrix_image(cm, names, out / f"confusion_{held}.png",
                                     title=f"{held} held out (trained on the other four corpora)")
        log.info("LOCO %s: UA %.3f, ECE %.3f", held, s["ua"], summary["loco"][held]["ece"])
    loco = summary["loco"]
    plots.reliability_diagram({k: v["reliability"] for k, v in loco.items()}, out / "reliability.png",
                              title=f"held-out corpora, calibration {args.calibration} fitted on the other four")
    summary["loco_mean_ua"] = float(np.mean([v["ua"] for v in loco.values()]))
    summary["loco_worst"] = min(loco, key=lambda k: loco[k]["ua"])
    summary["loco_mean_ece"] = float(np.mean([v["ece"] for v in loco.values()]))
    summary["loco_answer_shares"] = {e: float(np.mean(answers == i)) for i, e in enumerate(EMOTIONS)}
    corpus = np.array([c.corpus for c in clips])
    folds = np.array([c.fold for c in clips])
    pooled_true, pooled_pred = [], []
    rav = np.flatnonzero(corpus == "ravdess")
    # the folds' calibration: fitted on the other four corpora's held-out logits, never on RAVDESS
    fold_cal = fit_calibration(args.calibration, [h for k, h in outer.items() if k != "ravdess"], clips)
    perturbed = {kind: features([clips[i].path for i in rav], embedder, Path(args.cache), perturbation=kind)
                 for kind in kinds if kind != "clean"}  # the RAVDESS clips, heard otherwise
    for fold in range(1, 7):
        test = np.flatnonzero((corpus == "ravdess") & (folds == fold))
        if not len(test):
            continue
        train = np.flatnonzero((corpus != "ravdess") | (folds != fold))  # the fold's actors never in training
        head = fold_cal.install(train_on(clips, X, views, train, config, args))
        pred = head_answers(head, X[test])
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
    lines += ["", f"Calibration: {summary['calibration']}, fitted for each held-out corpus on the other four's "
              "held-out logits (`ml.calibration`).", "",
              "| held-out corpus | ECE | confidence | accuracy | ECE uncalibrated | confidence uncalibrated | neutral recall |",
              "|---|---|---|---|---|---|---|"]
    for name, r in summary["loco"].items():
        u = r["uncalibrated"]
        neutral = f"{100 * r['neutral_recall']:.1f}" if "neutral_recall" in r else "(no neutral)"
        lines.append(f"| {name} | {r['ece']:.3f} | {r['mean_confidence']:.2f} | {r['accuracy']:.2f} | {u['ece']:.3f} | "
                     f"{u['mean_confidence']:.2f} | {neutral} |")
    lines.append(f"| **mean** | **{summary['loco_mean_ece']:.3f}** | | | "
                 f"{np.mean([r['uncalibrated']['ece'] for r in summary['loco'].values()]):.3f} | | |")
    shares = summary["loco_answer_shares"]
    lines += ["", "Share of all LOCO answers: " + ", ".join(f"{e} {100 * v:.1f}%" for e, v in shares.items()) + "."]
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
    add_head_args(p, auto=True)
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
