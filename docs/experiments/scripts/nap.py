"""Prototype (docs/experiments/ser.md, 2026-12-04): nuisance attribute projection (NAP) for the
SER head. The directions along which a clip's features move when the clip is heard otherwise
(its random training view; optionally also AMR-WB at 23.85 kbit/s) are estimated on the
training clips of each split, and the top RANK of them are projected out of every feature
vector, in training and test, before the head is trained. It patches ml.evaluate_ser; nothing
in the recipe changes unless this ships. From the repository root:

    python docs/experiments/scripts/nap.py nested|outer OUT_DIR RANK generic|generic+amr_wb
"""
import sys

import numpy as np
import torch

from ml import evaluate_ser as ev
from ml.data import speech
from ml.train_ser import fit_head

RANK, PAIRS = 16, "generic"
orig = ev.cached_embeddings
AMR_WB: dict[int, np.ndarray] = {}


def cached(paths, embedder, cache, perturbation="clean", **kw):
    out = orig(paths, embedder, cache, perturbation=perturbation, **kw)
    if perturbation == "train_view" and PAIRS == "generic+amr_wb":
        AMR_WB[id(out)] = orig(paths, embedder, cache, perturbation="amr_wb", **kw)
    return out


def projector(X: np.ndarray, views: list[np.ndarray], train: np.ndarray):
    """The affine map that removes the top RANK nuisance directions, in the training set's
    standardised space: x -> mu + sd * P((x - mu) / sd)."""
    x = torch.from_numpy(X[train].reshape(len(train), -1).astype(np.float32))
    mu, sd = x.mean(0), x.std(0).clamp(min=1e-4)
    diffs = torch.cat([torch.from_numpy(v[train].reshape(len(train), -1).astype(np.float32)) - x for v in views]) / sd
    torch.manual_seed(0)  # the randomised SVD's start: the same directions on every run
    # the top right singular vectors of the uncentred differences (a mean shift is nuisance too)
    u = torch.svd_lowrank(diffs, q=RANK + 16, niter=4)[2][:, :RANK]  # (F, RANK)

    def apply(feats: np.ndarray) -> np.ndarray:
        z = (torch.from_numpy(feats.reshape(len(feats), -1).astype(np.float32)) - mu) / sd
        z = z - (z @ u) @ u.T
        return (mu + sd * z).reshape(feats.shape).numpy()
    return apply


def head_split(clips, X, views, train, test, config, args):
    y = np.array([c.label for c in clips])
    w = speech.balanced_weights([clips[i] for i in train], by=args.weighting)
    pairs = [views] + ([AMR_WB[id(views)]] if PAIRS == "generic+amr_wb" else [])
    project = projector(X, pairs, train)
    head = fit_head(np.concatenate([project(X[train]), project(views[train])]), np.concatenate([y[train], y[train]]),
                    np.concatenate([w, w]), config, steps=args.steps, seed=args.seed, dry_run=args.dry_run)
    return ev.head_answers(head, project(X[test])), ProjectedHead(head, project)


class ProjectedHead:
    """What head_answers needs of a head, with the projection in front (the perturbed folds)."""

    def __init__(self, head, project):
        self.head, self.project = head, project

    def __call__(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(torch.from_numpy(self.project(feats.numpy())))


ev.cached_embeddings, ev.head_split = cached, head_split
if __name__ == "__main__":
    mode, out, RANK, PAIRS = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    assert PAIRS in ("generic", "generic+amr_wb"), PAIRS
    argv = ["--data", "../shared/data", "--out", out, "--weighting", "class", "--threads", "1"]
    ev.main(argv + (["--nested"] if mode == "nested" else []) + sys.argv[5:])
