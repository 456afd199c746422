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

from ml.data import speech
from ml.evaluate_ser import load_logits
from ml.models.ser import SERHeadConfig
from ml.ser_head import fit_head, head_raw
from ser_corpus_bag import run_heads  # this directory's: the same features, files and loop
from ser_layer_mix import jobs, load_heads, print_candidates  # the same heads and report

C = speech.CORPORA
CANDIDATES = {"smooth": ({"label_smoothing": 0.1}, 0.2), "decay": ({"weight_decay": 0.1}, 0.5)}


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
    candidates = {"shipped": load_logits(Path("runs/ser_eval_tiny/held_out_logits.npz"))}
    candidates |= {cand: load_heads(out / cand) for cand in CANDIDATES if (out / cand).exists()}
    print_candidates(candidates, speech.load_all(data), loco)


if __name__ == "__main__":
    phase, data, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    if phase == "heads":
        run_heads(data, out / sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), jobs(), head_for(sys.argv[4]))
    else:
        report(data, out, "--loco" in sys.argv)
