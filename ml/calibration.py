"""Confidence that means what it says on speech the head never heard: fitting the SER head's
calibration (``ml.models.ser.calibrate``) and measuring it.

A calibration is fitted on *held-out* logits only: the logits of heads scored on a corpus they
were not trained on (leave one corpus out), never on the corpus a figure is reported for
(``ml.evaluate_ser``) and never on the training logits of the head it is applied to, which are
overconfident by construction. It is fitted by the weighted negative log-likelihood of the
answers as they are scored (:func:`correct_mask`), each corpus weighing the same.

Kinds (:data:`KINDS`), from fewest parameters up:

- ``none``: the raw logits;
- ``temperature``: one scale for every clip (temperature scaling);
- ``temperature_bias``: the scale plus one bias per class, which also moves the class prior;
- ``distance``: a scale that depends on the clip, ``exp(a + b * log(mean(z**2)))``, where ``z`` are
  its standardised features: a clip far from the training data can be made less sure;
- ``distance_bias``: that, plus the per-class bias.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ml.labels import EMOTIONS
from ml.metrics import on_corpus
from ml.models.ser import SERHead, calibrate

KINDS = ("none", "temperature", "temperature_bias", "distance", "distance_bias")
BINS = 10  # the bins of the expected calibration error and the reliability diagram


@dataclass
class Calibration:
    """The parameters of :func:`ml.models.ser.calibrate`; zeros are the identity."""

    kind: str = "none"
    log_scale: float = 0.0
    slope: float = 0.0
    bias: list[float] = field(default_factory=lambda: [0.0] * len(EMOTIONS))

    def apply(self, logits: np.ndarray, distance: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (N, C) of raw ``logits`` (N, C) with ``distance`` (N,)."""
        with torch.inference_mode():
            out = calibrate(torch.as_tensor(logits, dtype=torch.float64), torch.as_tensor(distance, dtype=torch.float64),
                            torch.tensor(self.log_scale, dtype=torch.float64), torch.tensor(self.slope, dtype=torch.float64),
                            torch.tensor(self.bias, dtype=torch.float64))
            return torch.softmax(out, -1).numpy()

    def install(self, head: SERHead) -> SERHead:
        """Write these parameters into ``head``'s calibration buffers (saved with its weights)."""
        head.cal_log_scale.fill_(self.log_scale)
        head.cal_slope.fill_(self.slope)
        head.cal_bias.copy_(torch.tensor(self.bias))
        return head

    def as_dict(self) -> dict:
        return asdict(self)


def correct_mask(labels: np.ndarray, classes: np.ndarray | list[tuple[int, ...]]) -> np.ndarray:
    """(N, 8) bool: which 8-way answers count as right for each clip, read on its corpus's own
    classes as the scores read them (``ml.metrics.on_corpus``: "calm" is neutral on a corpus
    without calm, "neutral" is calm on one without neutral)."""
    n = len(EMOTIONS)
    out = np.zeros((len(labels), n), bool)
    for i, (label, cls) in enumerate(zip(labels, classes, strict=True)):
        out[i] = on_corpus(np.arange(n), cls) == label
    return out


def fit(kind: str, logits: np.ndarray, distance: np.ndarray, right: np.ndarray, weights: np.ndarray) -> Calibration:
    """The calibration of ``kind`` minimising the weighted negative log-likelihood of the right
    answers (``right``, from :func:`correct_mask`) on held-out ``logits`` (N, C) and ``distance`` (N,)."""
    if kind not in KINDS:
        raise ValueError(f"unknown calibration {kind!r}; known: {', '.join(KINDS)}")
    if kind == "none":
        return Calibration()
    lg = torch.as_tensor(logits, dtype=torch.float64)
    d = torch.as_tensor(distance, dtype=torch.float64)
    ok = torch.as_tensor(right)
    w = torch.as_tensor(weights, dtype=torch.float64)
    w = w / w.sum()
    log_scale = torch.zeros((), dtype=torch.float64, requires_grad=True)
    slope = torch.zeros((), dtype=torch.float64, requires_grad=kind.startswith("distance"))
    bias = torch.zeros(lg.shape[1], dtype=torch.float64, requires_grad=kind.endswith("_bias"))
    params = [p for p in (log_scale, slope, bias) if p.requires_grad]
    opt = torch.optim.LBFGS(params, lr=0.5, max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def nll() -> torch.Tensor:
        opt.zero_grad()
        logp = torch.log_softmax(calibrate(lg, d, log_scale, slope, bias), -1)
        loss = -(w * torch.logsumexp(logp.masked_fill(~ok, float("-inf")), -1)).sum()
        loss = loss + 1e-4 * bias.pow(2).sum()  # keeps the biases of classes no calibration clip has finite
        loss.backward()
        return loss

    opt.step(nll)
    b = bias.detach() - bias.detach().mean()  # a common shift of the logits changes nothing
    return Calibration(kind, float(log_scale.detach()), float(slope.detach()), b.tolist())


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error over ``bins`` equal-width confidence bins."""
    return float(sum(abs(c - a) * n for c, a, n in reliability(confidence, correct, bins) if n) / max(len(confidence), 1))


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, clips) of each of ``bins`` equal-width confidence bins."""
    which = np.clip(np.digitize(confidence, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        m = which == b
        out.append((float(confidence[m].mean()) if m.any() else 0.0, float(correct[m].mean()) if m.any() else 0.0,
                    int(m.sum())))
    return out


def confidence_report(probs: np.ndarray, labels: np.ndarray, classes: tuple[int, ...]) -> dict:
    """What a held-out corpus says about the probabilities: ECE, mean confidence against accuracy,
    the reliability bins, neutral recall (when the corpus has neutral) and each emotion's share of
    the answers."""
    answers = probs.argmax(1)
    mapped = on_corpus(answers, classes)
    correct = mapped == labels
    confidence = probs.max(1)
    neutral = EMOTIONS.index("neutral")
    out = {"ece": ece(confidence, correct), "mean_confidence": float(confidence.mean()),
           "accuracy": float(correct.mean()), "reliability": reliability(confidence, correct),
           "answers": {e: int((answers == i).sum()) for i, e in enumerate(EMOTIONS)}}
    if neutral in classes:
        out["neutral_recall"] = float((mapped[labels == neutral] == neutral).mean())
    return out
