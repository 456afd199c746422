"""Classification scores shared by training (held-out fold) and evaluation: unweighted accuracy
(mean per-class recall, the SER field's headline), weighted accuracy, macro-F1, confusion."""

from __future__ import annotations

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
