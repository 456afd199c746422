"""Does a live stream hear better when its features are normalised by its own speaker's running
statistics? A stream is one speaker: each held-out speaker's clips are replayed as a stream, in a
random order (seed 0), and every clip is heard with the mean of the speaker's features so far
(this clip included, as a stream's hop has its own features before it is answered), shrunk toward
the head's training mean (the mean it standardises with, ``SERHead.mean``) by a prior of K clips:
m = (sum of the speaker's features + K * training mean) / (n + K). This is ``ml.recognize.SpeakerNorm``.

Leave one corpus out, the shipped recipe's heads (ml.ser_head.train_on), uncalibrated argmax UA:

- ``clip``: each clip alone, as /emotion hears it (the reference);
- ``shift K``: the same head, each clip's features moved by (train mean - m): the speaker's offset
  removed before the head's own standardisation;
- ``spk-trained K``: a head trained on features with each training speaker's own mean replaced by
  the training mean (what it will hear at test time), then tested like ``shift K``;
- ``oracle``: the same, with the speaker's mean over all of its clips (not causal: a bound).

K is not chosen here on what is reported: the table prints K = 1, 3 and 10 side by side, and
UA after 1, 2-5 and 6+ clips of a stream. With LOGITS (the ``held_out_logits.npz`` that
``python -m ml.evaluate_ser`` writes), each corpus's probabilities are also calibrated as that
evaluation calibrates them (the ``distance`` rule fitted on the inner heads' logits, never on the
corpus itself), and their ECE and mean confidence are reported, clip by clip and shifted.

    PYTHONPATH=. python docs/experiments/scripts/stream_norm.py ../shared/data runs/ser_cache OUT.json [LOGITS]
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from ml.data import speech
from ml.embed import SpeechEmbedder, cached_embeddings
from ml import calibration
from ml.evaluate_ser import load_logits, parse_args
from ml.metrics import corpus_scores
from ml.models.ser import SERHeadConfig
from ml.ser_head import fit_calibration, fit_head, head_raw, train_on

PRIORS = (1, 3, 10)


def speaker_means(X: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """Each clip's speaker's mean over all of that speaker's clips."""
    out = np.empty_like(X)
    for s in np.unique(speakers):
        idx = speakers == s
        out[idx] = X[idx].mean(0)
    return out


def running_means(X: np.ndarray, speakers: np.ndarray, prior: np.ndarray, k: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each clip's speaker mean so far in a random replay order, shrunk to ``prior`` by ``k`` clips;
    and each clip's position in its stream (1 = first)."""
    out, position = np.empty_like(X), np.zeros(len(X), np.int64)
    for s in np.unique(speakers):
        order = rng.permutation(np.flatnonzero(speakers == s))
        total = np.zeros(X.shape[1], np.float64)
        for n, i in enumerate(order, start=1):
            total += X[i]
            out[i] = (total + k * prior) / (n + k)
            position[i] = n
    return out, position


def ua(head, X, y, classes) -> tuple[float, np.ndarray]:
    answers = head_raw(head, X)[0].argmax(1)
    return corpus_scores(y, answers, classes)["ua"], answers


def main() -> None:
    data, cache, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
    inner = load_logits(Path(sys.argv[4]))[1] if len(sys.argv) > 4 else None
    torch.set_num_threads(1)
    args = parse_args(["--data", data, "--cache", cache, "--threads", "1"])
    clips = speech.load_all(data)
    embedder = SpeechEmbedder(args.encoder)
    X4 = cached_embeddings([c.path for c in clips], embedder, Path(cache)).astype(np.float32)
    V4 = cached_embeddings([c.path for c in clips], embedder, Path(cache), perturbation=args.views).astype(np.float32)
    shape = X4.shape[1:]
    X, V = X4.reshape(len(X4), -1), V4.reshape(len(V4), -1)
    config = SERHeadConfig(encoder=args.encoder, layers=shape[0], width=shape[2], hidden=args.hidden)
    y = np.array([c.label for c in clips])
    speakers = np.array([c.speaker for c in clips])
    classes = speech.corpus_classes(clips)
    result: dict = {}
    for held in speech.CORPORA:
        train, test = speech.leave_one_corpus_out(clips, held)
        assert not set(speakers[train]) & set(speakers[test])
        prior = X[train].mean(0)
        r: dict = {}
        head = train_on(clips, X4, V4, train, config, args)
        head_mean = head.mean.double().numpy()
        r["clip"], _ = ua(head, X4[test], y[test], classes[held])
        cal = fit_calibration("distance", list(inner[held].values()), clips) if inner else None

        def confidence(features: np.ndarray, name: str) -> None:
            if cal is not None:
                rep = calibration.confidence_report(cal.apply(*head_raw(head, features)), y[test], classes[held])
                r[f"{name} ece"], r[f"{name} confidence"] = rep["ece"], rep["mean_confidence"]
        confidence(X4[test], "clip")
        # a head trained on speaker-normalised features: each training speaker's mean -> the training mean
        Xn = X[train] - speaker_means(X[train], speakers[train]) + prior
        Vn = V[train] - speaker_means(V[train], speakers[train]) + V[train].mean(0)
        w = speech.balanced_weights([clips[i] for i in train], by=args.weighting)
        spk_head = fit_head(np.concatenate([Xn, Vn]).reshape(-1, *shape), np.concatenate([y[train], y[train]]),
                            np.concatenate([w, w]), config, steps=args.steps, seed=args.seed)
        oracle = X[test] - speaker_means(X[test], speakers[test]) + prior
        r["oracle"], _ = ua(spk_head, oracle.reshape(-1, *shape), y[test], classes[held])
        for k in PRIORS:
            m, position = running_means(X[test], speakers[test], head_mean, k, np.random.default_rng(0))
            shifted = (X[test] - m + head_mean).reshape(-1, *shape)
            r[f"shift {k}"], _ = ua(head, shifted, y[test], classes[held])
            confidence(shifted, f"shift {k}")
            r[f"spk-trained {k}"], answers = ua(spk_head, shifted, y[test], classes[held])
            _, base_answers = ua(head, X4[test], y[test], classes[held])
            for name, lo, hi in (("1", 1, 1), ("2-5", 2, 5), ("6+", 6, 10**9)):
                sel = (position >= lo) & (position <= hi)
                if sel.any():
                    r[f"spk-trained {k} after {name}"] = corpus_scores(y[test][sel], answers[sel], classes[held])["ua"]
                    r[f"clip, same clips {name}"] = corpus_scores(y[test][sel], base_answers[sel], classes[held])["ua"]
        result[held] = r
        print(held, {k: round(100 * v, 1) for k, v in r.items()}, flush=True)
    keys = list(next(iter(result.values())))
    result["mean"] = {k: float(np.mean([result[c][k] for c in speech.CORPORA if k in result[c]])) for k in keys}
    print("mean", {k: round(100 * v, 1) for k, v in result["mean"].items()})
    Path(out_path).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
