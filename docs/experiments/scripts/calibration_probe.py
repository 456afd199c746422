"""How confident, and how neutral, the shipped SER recipe is on corpora it never heard: leave one
corpus out (the shipped recipe, ``ml.ser_head.fit_head``, seed 0), then per held-out corpus the
expected calibration error (10 bins) of the 8-way answers as the service gives them, mean
confidence against accuracy, neutral recall, and the share of answers each emotion takes; and the
same with one temperature per held-out corpus fitted (NLL) on the other four corpora's held-out
logits only, so it never sees the corpus it is scored on. An analysis: nothing ships from it.

    python docs/experiments/scripts/calibration_probe.py ../shared/data runs/ser_cache runs/calibration_probe.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from ml.data import speech
from ml.embed import SpeechEmbedder, cached_embeddings
from ml.labels import EMOTIONS
from ml.metrics import on_corpus
from ml.models.ser import SERHeadConfig
from ml.ser_head import fit_head


def ece(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    return float(sum(abs(conf[which == b].mean() - correct[which == b].mean()) * (which == b).mean()
                     for b in range(bins) if (which == b).any()))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of ``labels`` (a grid, then refined)."""
    lg, y = torch.from_numpy(logits).double(), torch.from_numpy(labels)
    grid = np.exp(np.linspace(np.log(0.25), np.log(8), 200))
    nll = [float(torch.nn.functional.cross_entropy(lg / t, y)) for t in grid]
    return float(grid[int(np.argmin(nll))])


def report(probs: np.ndarray, y: np.ndarray, classes: tuple[int, ...]) -> dict:
    answers = probs.argmax(1)
    mapped = on_corpus(answers, classes)
    correct = (mapped == y).astype(float)
    conf = probs.max(1)
    neutral = EMOTIONS.index("neutral")
    out = {"ece": round(ece(conf, correct), 4), "mean_confidence": round(float(conf.mean()), 4),
           "accuracy": round(float(correct.mean()), 4),
           "answer_shares": {e: round(float((answers == i).mean()), 4) for i, e in enumerate(EMOTIONS)}}
    if neutral in classes:
        out["neutral_recall"] = round(float((mapped[y == neutral] == neutral).mean()), 4)
    return out


def main() -> None:
    data, cache, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    torch.set_num_threads(2)
    clips = speech.load_all(data)
    paths = [c.path for c in clips]
    embedder = SpeechEmbedder("whisper-tiny-en")
    X = cached_embeddings(paths, embedder, cache)
    V = cached_embeddings(paths, embedder, cache, perturbation="train_view")
    y = np.array([c.label for c in clips])
    classes = speech.corpus_classes(clips)
    config = SERHeadConfig(encoder="whisper-tiny-en", layers=X.shape[1], width=X.shape[3])
    logits: dict[str, np.ndarray] = {}
    tests: dict[str, np.ndarray] = {}
    for held in speech.CORPORA:
        train, test = speech.leave_one_corpus_out(clips, held)
        w = speech.balanced_weights([clips[i] for i in train], by="class")
        head = fit_head(np.concatenate([X[train], V[train]]), np.concatenate([y[train], y[train]]),
                        np.concatenate([w, w]), config, steps=1000, seed=0)
        with torch.inference_mode():
            logits[held] = head(torch.from_numpy(X[test].astype(np.float32))).numpy()
        tests[held] = np.asarray(test)
        print(held, "done", flush=True)
    result: dict = {"as_shipped": {}, "temperature_from_the_other_corpora": {}}
    for held in speech.CORPORA:
        yt = y[tests[held]]
        result["as_shipped"][held] = report(torch.softmax(torch.from_numpy(logits[held]), -1).numpy(), yt, classes[held])
        others = [c for c in speech.CORPORA if c != held]
        t = fit_temperature(np.concatenate([logits[c] for c in others]), np.concatenate([y[tests[c]] for c in others]))
        calibrated = torch.softmax(torch.from_numpy(logits[held]) / t, -1).numpy()
        result["temperature_from_the_other_corpora"][held] = {"temperature": round(t, 3),
                                                               **report(calibrated, yt, classes[held])}
    for key in result:
        result[key]["mean_ece"] = round(float(np.mean([v["ece"] for v in result[key].values()])), 4)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
