"""Learned-weight pooling over the encoder's layers for the SER head (docs/experiments/ser.md,
2026-12-07; the SER issue's "attentive or learned-weight pooling").

The shipped head reads all five hidden states' pooled mean and standard deviation at once
(3,840 standardised numbers, one linear layer). Here the layers are first mixed by learned
softmax weights (one set for the means, one for the deviations, ELMo's "scalar mix"), so the
linear layer reads 768 numbers: fewer parameters, one view of the speech per statistic. Same
recipe otherwise (``ml.ser_head.fit_head``'s steps, batches, class weights, training views).

Phase ``heads`` trains, per shard, the 20 inner heads of the nested criterion and the 5 LOCO heads
and saves their raw logits (resumable); phase ``report`` prints the nested criterion (UA of the raw
answers; ECE of the ``distance`` calibration fitted on three inner probes, scored on the fourth)
and, with ``--loco``, the LOCO figures.

    PYTHONPATH=. python docs/experiments/scripts/ser_layer_mix.py heads ../shared/data runs/ser_mix 0 2
    PYTHONPATH=. python docs/experiments/scripts/ser_layer_mix.py report ../shared/data runs/ser_mix
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ml import calibration
from ml.data import speech
from ml.evaluate_ser import calibration_criterion, load_logits
from ml.metrics import corpus_scores
from ml.runtime import seed_everything
from ml.ser_head import HeldOut, fit_calibration
from ser_corpus_bag import name, run_heads  # this directory's: the same features, files and loop

C = speech.CORPORA


class LayerMix(nn.Module):
    def __init__(self, layers: int, width: int, n_classes: int = 8, dropout: float = 0.2) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(layers * 2 * width))
        self.register_buffer("std", torch.ones(layers * 2 * width))
        self.mix = nn.Parameter(torch.zeros(2, layers))  # per statistic, per layer
        self.shape = (layers, 2, width)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * width, n_classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # standardised (B, F)
        x = z.view(-1, *self.shape)  # (B, L, 2, W)
        w = torch.softmax(self.mix, -1)  # (2, L)
        mixed = torch.einsum("blsw,sl->bsw", x, w).flatten(1)
        return self.fc(self.dropout(mixed))


def fit(X: np.ndarray, y: np.ndarray, weights: np.ndarray, steps: int = 1000, seed: int = 0) -> LayerMix:
    g = seed_everything(seed)
    x = torch.from_numpy(np.ascontiguousarray(X)).flatten(1).float()
    model = LayerMix(X.shape[1], X.shape[3])
    model.mean.copy_(x.mean(0))
    model.std.copy_(x.std(0).clamp(min=1e-4))
    x = (x - model.mean) / model.std
    yt = torch.as_tensor(y, dtype=torch.long)
    p = torch.as_tensor(weights, dtype=torch.float64)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    model.train()
    for _ in range(steps):
        idx = torch.multinomial(p, min(1024, len(p)), replacement=True, generator=g)
        loss = F.cross_entropy(model(x[idx]), yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def jobs() -> list[tuple[tuple[str, ...], str]]:
    return [((c, d), d) for c in C for d in C if d != c] + [((c,), c) for c in C]


def mix_head(clips, X, V, train, test) -> tuple[np.ndarray, np.ndarray]:
    """A layer-mix head on ``train``, its raw logits and distances on ``test``."""
    y = np.array([c.label for c in clips])
    w = speech.balanced_weights([clips[i] for i in train], by="class")
    model = fit(np.concatenate([X[train], V[train]]), np.concatenate([y[train], y[train]]), np.concatenate([w, w]))
    print("layer weights", torch.softmax(model.mix, -1).detach().numpy().round(2).tolist(), flush=True)
    with torch.inference_mode():
        z = (torch.from_numpy(X[test].astype(np.float32)).flatten(1) - model.mean) / model.std
        return model(z).numpy(), z.pow(2).mean(1).log().numpy()


def print_candidates(candidates: dict[str, tuple[dict, dict]], clips, loco: bool) -> None:
    """For each candidate's (outer, inner) held-out logits: the nested criterion (UA of the raw
    answers; ECE of the ``distance`` calibration fitted on three inner probes, scored on the fourth)
    and, with ``loco``, the LOCO figures."""
    y = np.array([c.label for c in clips])
    classes = speech.corpus_classes(clips)
    for label, (outer, inner) in candidates.items():
        uas = [corpus_scores(y[h.index], h.logits.argmax(1), classes[d])["ua"] for c in C for d, h in inner[c].items()]
        crit = calibration_criterion(inner, clips)["distance"]
        print(f"{label}: nested UA {100 * np.mean(uas):.2f}, nested distance ECE {crit['mean_ece']:.3f} "
              f"(worst {crit['worst_ece']:.3f})", flush=True)
        if not loco:
            continue
        rows = []
        for c in C:
            h = outer[c]
            probs = fit_calibration("distance", list(inner[c].values()), clips).apply(h.logits, h.distance)
            r = calibration.confidence_report(probs, y[h.index], classes[c])
            rows.append((corpus_scores(y[h.index], probs.argmax(1), classes[c])["ua"], r["ece"]))
            print(f"  {c:8s} UA {100 * rows[-1][0]:.1f} ECE {r['ece']:.3f} neutral recall {r.get('neutral_recall', float('nan')):.2f}")
        a = np.array(rows)
        print(f"  LOCO mean UA {100 * a[:, 0].mean():.1f}, mean ECE {a[:, 1].mean():.3f}")


def load_heads(folder: Path) -> tuple[dict, dict]:
    """The (outer, inner) held-out logits that ``run_heads`` saved under ``folder`` for :func:`jobs`."""
    def load(left: tuple[str, ...], scored: str) -> HeldOut:
        z = np.load(folder / f"{name(left, scored)}.npz")
        return HeldOut(scored, z["index"], z["logits"], z["distance"])
    return {c: load((c,), c) for c in C}, {c: {d: load((c, d), d) for d in C if d != c} for c in C}


def report(data: str, out: Path, loco: bool) -> None:
    print_candidates({"concat (shipped)": load_logits(Path("runs/ser_eval_tiny/held_out_logits.npz")),
                      "layer mix": load_heads(out)}, speech.load_all(data), loco)


if __name__ == "__main__":
    phase, data, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    if phase == "heads":
        run_heads(data, out, int(sys.argv[4]), int(sys.argv[5]), jobs(), mix_head)
    else:
        report(data, out, "--loco" in sys.argv)
