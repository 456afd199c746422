"""Prototype (docs/experiments/ser.md, 2026-12-04): nuisance attribute projection (NAP) for the
SER head. The directions along which a clip's features move when the clip is heard otherwise
(its random training view; optionally also AMR-WB at 23.85 kbit/s) are estimated on the
training clips of each split, in the head's standardised space, and the top RANK of them are
projected out before the head is trained; afterwards the projection is folded into the head's
linear layer, so the head it returns is an ordinary SERHead. The head still trains on each
clip as recorded and as its training view only: AMR-WB copies, when used, only define
directions. It patches ml.evaluate_ser; nothing in the recipe changes unless this ships. From
the repository root:

    python docs/experiments/scripts/nap.py nested|outer OUT_DIR RANK generic|generic+amr_wb
"""
import sys

import numpy as np
import torch
from torch.nn import functional as F

from ml import evaluate_ser as ev
from ml.data import speech
from ml.models.ser import SERHead
from ml.runtime import seed_everything

RANK, PAIRS = 16, "generic"
orig = ev.cached_embeddings
AMR_WB: dict[int, np.ndarray] = {}


def cached(paths, embedder, cache, perturbation="clean", **kw):
    out = orig(paths, embedder, cache, perturbation=perturbation, **kw)
    if perturbation == "train_view" and PAIRS == "generic+amr_wb":
        AMR_WB[id(out)] = orig(paths, embedder, cache, perturbation="amr_wb", **kw)
    return out


def rows(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).flatten(1).float()


def nuisance_directions(clean: torch.Tensor, others: list[torch.Tensor], rank: int) -> torch.Tensor:
    """(F, rank) orthonormal: the top right singular vectors of (other - clean) over all pairs,
    uncentred (a mean shift is nuisance too), in the standardised space the rows are given in."""
    torch.manual_seed(0)  # the randomised SVD's start: the same directions on every run
    return torch.svd_lowrank(torch.cat([o - clean for o in others]), q=rank + 16, niter=4)[2][:, :rank]


def fit_head(clean, views, extra, labels, weights, config, *, steps=1000, batch_size=1024, lr=1e-3,
             weight_decay=1e-2, seed=0, dry_run=False):
    """ml.train_ser.fit_head on clean + views (labels and weights repeated), with the projection."""
    x = torch.cat([rows(clean), rows(views)])
    y = torch.as_tensor(np.concatenate([labels, labels]), dtype=torch.long)
    mean, std = x.mean(0), x.std(0).clamp(min=1e-4)

    def standard(a):
        return (rows(a) - mean) / std
    u = nuisance_directions(standard(clean), [standard(views)] + [standard(e) for e in extra], RANK)
    g = seed_everything(seed)  # after the SVD's own seed: the training draws are the shipped ones
    model = SERHead(config)  # initialised after seeding, as in ml.train_ser.fit_head
    model.mean.copy_(mean)
    model.std.copy_(std)
    x = (x - model.mean) / model.std
    x = x - (x @ u) @ u.T
    p = torch.as_tensor(np.concatenate([weights, weights]), dtype=torch.float64)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    for _ in range(1 if dry_run else steps):
        idx = torch.multinomial(p, min(batch_size, len(p)), replacement=True, generator=g)
        loss = F.cross_entropy(model.classify(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    first = model.body[0] if config.hidden else model.fc  # the layer the standardised features enter
    with torch.no_grad():
        first.weight -= (first.weight @ u) @ u.T  # W P: the projection, folded in
    return model.eval()


def head_split(clips, X, views, train, test, config, args):
    y = np.array([c.label for c in clips])
    w = speech.balanced_weights([clips[i] for i in train], by=args.weighting)
    extra = [AMR_WB[id(views)][train]] if PAIRS == "generic+amr_wb" else []
    head = fit_head(X[train], views[train], extra, y[train], w, config, steps=args.steps, seed=args.seed,
                    dry_run=args.dry_run)
    return ev.head_answers(head, X[test]), head


if __name__ == "__main__":
    mode, out, RANK, PAIRS = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    assert PAIRS in ("generic", "generic+amr_wb"), PAIRS
    argv = ["--data", "../shared/data", "--out", out, "--weighting", "class", "--threads", "1"]
    ev.evaluate_head(ev.parse_args(argv + (["--nested"] if mode == "nested" else []) + sys.argv[5:]),
                     features=cached, split=head_split)
