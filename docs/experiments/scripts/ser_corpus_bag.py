"""Corpus bagging for the SER head: does the disagreement of heads trained on different corpora
tell a corpus the head hears well from one it does not? (docs/experiments/ser.md, 2026-12-07)

Phase ``heads`` trains the recipe's head (``ml.ser_head.train_on``, shipped settings, seed 0) on
every set of corpora the probe needs and keeps each head's raw logits and distance on the
corpora it never heard, one ``.npz`` per head under OUT (resumable; ``SHARD/SHARDS`` splits the
heads between processes):

- outer sub-heads: for each corpus C held out and each other corpus D, trained on the three
  corpora left, scored on C (20 heads);
- inner sub-heads: for each C, each probe D and each third corpus E, trained on the two corpora
  left, scored on D (60 heads).

Phase ``report`` reads them with ``runs/ser_eval_tiny/held_out_logits.npz`` (the single heads of
``ml.evaluate_ser``: outer, trained on four, and inner, trained on three) and compares, by the
nested criterion only (inner level: the held-out corpus never seen), then on LOCO:

- ``single``: the recipe as shipped (one head on all the training corpora);
- ``bag``: the mean probabilities of the sub-heads (each trained with one more corpus left out);
- ``bag+single``: those and the single head.

    PYTHONPATH=. python docs/experiments/scripts/ser_corpus_bag.py heads ../shared/data runs/ser_bag 0 2
    PYTHONPATH=. python docs/experiments/scripts/ser_corpus_bag.py report ../shared/data runs/ser_bag
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from ml import calibration
from ml.data import speech
from ml.embed import SpeechEmbedder, cached_embeddings
from ml.evaluate_ser import calibration_criterion, load_logits
from ml.metrics import corpus_scores
from ml.models.ser import SERHeadConfig
from ml.ser_head import HeldOut, fit_calibration, head_raw, train_on

C = speech.CORPORA


def jobs() -> list[tuple[tuple[str, ...], str]]:
    """(corpora left out of training, corpus scored) for every head the probe needs."""
    out = [((c, d), c) for c in C for d in C if d != c]
    out += [((c, d, e), d) for c in C for d in C if d != c for e in C if e not in (c, d)]
    return out


def name(left_out: tuple[str, ...], scored: str) -> str:
    return "-".join(left_out) + "_on_" + scored


def features(data: str) -> tuple[list[speech.SpeechClip], np.ndarray, np.ndarray]:
    """The clips and the shipped recipe's cached encoder features: clean, and one training view each."""
    clips = speech.load_all(data)
    embedder = SpeechEmbedder("whisper-tiny-en")
    paths = [c.path for c in clips]
    return (clips, cached_embeddings(paths, embedder, Path("runs/ser_cache")),
            cached_embeddings(paths, embedder, Path("runs/ser_cache"), perturbation="train_view"))


def run_heads(data: str, out: Path, shard: int, shards: int, todo: list[tuple[tuple[str, ...], str]],
              head_logits) -> None:
    """For each (corpora left out, corpus scored) of ``todo`` in this shard and not yet saved:
    ``head_logits(clips, X, V, train, test)`` -> (raw logits, distance), saved under ``out``."""
    torch.set_num_threads(1)
    clips, X, V = features(data)
    corpus = np.array([c.corpus for c in clips])
    out.mkdir(parents=True, exist_ok=True)
    for i, (left, scored) in enumerate(todo):
        path = out / f"{name(left, scored)}.npz"
        if i % shards != shard or path.exists():
            continue
        train = np.flatnonzero(~np.isin(corpus, left))
        test = np.flatnonzero(corpus == scored)
        logits, distance = head_logits(clips, X, V, train, test)
        np.savez(path, index=test, logits=logits, distance=distance)
        print("done", path.name, flush=True)


def recipe_head(clips, X, V, train, test) -> tuple[np.ndarray, np.ndarray]:
    """The shipped recipe's head on ``train``, its raw logits and distances on ``test``."""
    config = SERHeadConfig(encoder="whisper-tiny-en", layers=X.shape[1], width=X.shape[3])
    args = argparse.Namespace(steps=1000, seed=0, dry_run=False, weighting="class")
    return head_raw(train_on(clips, X, V, train, config, args), X[test])


def bag(parts: list[HeldOut]) -> HeldOut:
    """The mean probabilities of heads scored on the same clips, as log-probabilities (logits)."""
    p = np.mean([torch.softmax(torch.from_numpy(h.logits).double(), -1).numpy() for h in parts], 0)
    return HeldOut(parts[0].corpus, parts[0].index, np.log(p), np.mean([h.distance for h in parts], 0))


def report(data: str, out: Path) -> None:
    clips = speech.load_all(data)
    y = np.array([c.label for c in clips])
    classes = speech.corpus_classes(clips)
    single_outer, single_inner = load_logits(Path("runs/ser_eval_tiny/held_out_logits.npz"))

    def load(left: tuple[str, ...], scored: str) -> HeldOut:
        z = np.load(out / f"{name(left, scored)}.npz")
        return HeldOut(scored, z["index"], z["logits"], z["distance"])

    def subs_outer(c: str) -> list[HeldOut]:
        return [load((c, d), c) for d in C if d != c]

    def subs_inner(c: str, d: str) -> list[HeldOut]:
        return [load((c, d, e), d) for e in C if e not in (c, d)]

    kinds = {
        "single": (lambda c: single_outer[c], lambda c, d: single_inner[c][d]),
        "bag": (lambda c: bag(subs_outer(c)), lambda c, d: bag(subs_inner(c, d))),
        "bag+single": (lambda c: bag(subs_outer(c) + [single_outer[c]]),
                       lambda c, d: bag(subs_inner(c, d) + [single_inner[c][d]])),
    }
    for label, (outer_of, inner_of) in kinds.items():
        inner = {c: {d: inner_of(c, d) for d in C if d != c} for c in C}
        # the nested criterion: inner level only
        nested_ua = np.mean([corpus_scores(y[h.index], h.logits.argmax(1), classes[d])["ua"]
                             for c in C for d, h in inner[c].items()])
        crit = {k: (r["mean_ece"], r["worst_ece"], 100 * r["mean_ua"]) for k, r in calibration_criterion(inner, clips).items()}
        print(f"\n== {label}: nested UA {100 * nested_ua:.2f}; nested calibration (mean, worst ECE, UA): "
              + ", ".join(f"{k} {m:.3f}/{w:.3f}/{u:.2f}" for k, (m, w, u) in crit.items()), flush=True)
        if "--nested-only" in sys.argv:
            continue
        kind = sys.argv[4] if len(sys.argv) > 4 and not sys.argv[4].startswith('-') else min(crit, key=lambda k: crit[k][0])
        rows = []
        answers = []
        for c in C:
            h = outer_of(c)
            cal = fit_calibration(kind, list(inner[c].values()), clips)
            probs = cal.apply(h.logits, h.distance)
            raw = calibration.Calibration().apply(h.logits, h.distance)
            r = calibration.confidence_report(probs, y[h.index], classes[c])
            r0 = calibration.confidence_report(raw, y[h.index], classes[c])
            ua = corpus_scores(y[h.index], probs.argmax(1), classes[c])["ua"]
            rows.append((ua, r["ece"]))
            answers.append(probs.argmax(1))
            print(f"{c:8s} UA {100 * ua:5.1f}  ECE {r['ece']:.3f}  conf/acc {r['mean_confidence']:.2f}/{r['accuracy']:.2f}"
                  f"  raw ECE {r0['ece']:.3f} raw conf {r0['mean_confidence']:.2f}"
                  f"  neutral recall {100 * r.get('neutral_recall', float('nan')):.1f}", flush=True)
        a = np.array(rows)
        shares = np.bincount(np.concatenate(answers), minlength=8) / sum(len(x) for x in answers)
        print(f"LOCO ({kind}) mean UA {100 * a[:, 0].mean():.1f}, mean ECE {a[:, 1].mean():.3f}, worst ECE "
              f"{a[:, 1].max():.3f}; shares " + " ".join(f"{100 * s:.1f}" for s in shares))


if __name__ == "__main__":
    phase, data, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    if phase == "heads":
        run_heads(data, out, int(sys.argv[4]), int(sys.argv[5]), jobs(), recipe_head)
    else:
        report(data, out)
