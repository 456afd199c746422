"""Classification scores shared by training (held-out fold) and evaluation: unweighted accuracy
(mean per-class recall, the SER field's headline), weighted accuracy, macro-F1, confusion; and how
every evaluation writes its report (:func:`write_report`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ml.labels import EMOTIONS, merge_calm

EMOTIONS_7 = tuple(e for e in EMOTIONS if e != "calm")


def scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = len(EMOTIONS)) -> dict[str, float]:
    """Unweighted accuracy (mean per-class recall), weighted accuracy, macro-F1."""
    cm = confusion(y_true, y_pred, n_classes)
    support = cm.sum(1)
    recall = np.divide(np.diag(cm), support, out=np.zeros(n_classes), where=support > 0)
    predicted = cm.sum(0)
    precision = np.divide(np.diag(cm), predicted, out=np.zeros(n_classes), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n_classes), where=(precision + recall) > 0)
    present = support > 0
    return {"ua": float(recall[present].mean()), "wa": float(np.trace(cm) / cm.sum()), "macro_f1": float(f1[present].mean())}


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def scores_7(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """The same scores with calm merged into neutral (7 classes)."""
    m = np.vectorize(merge_calm)
    return scores(m(y_true), m(y_pred), len(EMOTIONS_7))


def on_corpus(y_pred: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    """8-way answers read on a corpus that holds only ``classes``: a "calm" answer counts as
    neutral on a corpus without calm, and a "neutral" answer as calm on one without neutral
    (the two are one state in every corpus that has only one of them). Other answers stay."""
    neutral, calm = EMOTIONS.index("neutral"), EMOTIONS.index("calm")
    out = np.asarray(y_pred).copy()
    if calm not in classes and neutral in classes:
        out[out == calm] = neutral
    if neutral not in classes and calm in classes:
        out[out == neutral] = calm
    return out


def corpus_scores(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[int, ...]) -> dict:
    """Scores of 8-way answers on a corpus over its own ``classes`` (:func:`on_corpus`), with the
    8x8 confusion matrix of the mapped answers."""
    mapped = on_corpus(y_pred, classes)
    out = scores(np.asarray(y_true), mapped)
    out["confusion"] = confusion(np.asarray(y_true), mapped, len(EMOTIONS)).tolist()
    return out


def write_report(out: Path, stem: str, result: dict, table: str) -> None:
    """An evaluation's figures as ``stem.json``, its tables as ``stem.md`` under ``out``; the tables printed."""
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    (out / f"{stem}.md").write_text(table)
    print(table)
