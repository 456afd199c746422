"""The two head candidates the 2026-12-02 comparison dropped unscored (docs/experiments/ser.md,
2026-12-07): label smoothing 0.1, and dropout 0.5 with weight decay 0.1, each otherwise the
shipped recipe (``ml.ser_head.fit_head``: class weighting, 1000 steps, each clip clean and as its
training view). Phase ``heads`` trains the nested criterion's 20 inner heads and the 5 LOCO heads of
one candidate and keeps their raw logits (resumable, ``ser_corpus_bag.run_heads``); ``report``
prints the nested criterion (UA of the raw answers; ECE of the ``distance`` calibration) for the
shipped recipe and the candidates, and with ``--loco`` the LOCO figures.

    PYTHONPATH=. python docs/experiments/scripts/ser_head_regularisation.py heads ../shared/data runs/ser_reg smooth 0 2
    PYTHONPATH=. python docs/experiments/scripts/ser_head_regularisation.py heads ../shared/data runs/ser_reg decay 0 2
    PYTHONPATH=. python docs/experiments/scripts/ser_head_regularisation.py report ../shared/data runs/ser_reg
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ml import calibration
from ml.data import speech
from ml.evaluate_ser import calibration_criterion, load_logits
from ml.metrics import corpus_scores
from ml.models.ser import SERHeadConfig
from ml.ser_head import HeldOut, fit_calibration, fit_head, head_raw
from ser_corpus_bag import name, run_heads  # this directory's: the same features, files and loop

C = speech.CORPORA
CANDIDATES = {"smooth": ({"label_smoothing": 0.1}, 0.2), "decay": ({"weight_decay": 0.1}, 0.5)}


def jobs() -> list[tuple[tuple[str, ...], str]]:
    return [((c, d), d) for c in C for d in C if d != c] + [((c,), c) for c in C]


def head_for(candidate: str):
    options, dropout = CANDIDATES[candidate]

    def head_logits(clips, X, V, train, test) -> tuple[np.ndarray, np.ndarray]:
        y = np.array([c.label for c in clips])
        w = speech.balanced_weights([clips[i] for i in train], by="class")
        config = SERHeadConfig(encoder="whisper-tiny-en", layers=X.shape[1], width=X.shape[3], dropout=dropout)
        head = fit_head(np.concatenate([X[train], V[train]]), np.concatenate([y[train], y[train]]),
                        np.concatenate([w, w]), config, **options)
        return head_raw(head, X[test])
    return head_logits


def report(data: str, out: Path, loco: bool) -> None:
    clips = speech.load_all(data)
    y = np.array([c.label for c in clips])
    classes = speech.corpus_classes(clips)

    def load(folder: Path, left: tuple[str, ...], scored: str) -> HeldOut:
        z = np.load(folder / f"{name(left, scored)}.npz")
        return HeldOut(scored, z["index"], z["logits"], z["distance"])

    candidates = {"shipped": load_logits(Path("runs/ser_eval_tiny/held_out_logits.npz"))}
    for cand in CANDIDATES:
        if (out / cand).exists():
            candidates[cand] = ({c: load(out / cand, (c,), c) for c in C},
                                {c: {d: load(out / cand, (c, d), d) for d in C if d != c} for c in C})
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
            print(f"  {c:8s} UA {100 * rows[-1][0]:.1f} ECE {r['ece']:.3f}")
        a = np.array(rows)
        print(f"  LOCO mean UA {100 * a[:, 0].mean():.1f}, mean ECE {a[:, 1].mean():.3f}")


if __name__ == "__main__":
    phase, data, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    if phase == "heads":
        run_heads(data, out / sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), jobs(), head_for(sys.argv[4]))
    else:
        report(data, out, "--loco" in sys.argv)
