"""Prototype (docs/experiments/ser.md, 2026-12-04): the SER head trained on each clip clean, as
its random training view and through AMR-WB (23.85 kbit/s). It patches ml.evaluate_ser; nothing
in the recipe changes. From the repo root:

    python docs/experiments/scripts/multiview.py nested|outer OUT_DIR [AMR_WB_WEIGHT]

AMR_WB_WEIGHT (default 1) scales how often the AMR-WB copies are drawn into a batch, against
the clean and training-view copies.
"""
import sys
import numpy as np
from ml import evaluate_ser as ev
from ml.data import speech
from ml.train_ser import fit_head

KEY = "train_view+amr_wb"
WEIGHT = 1.0
orig = ev.cached_embeddings


def cached(paths, embedder, cache, perturbation="clean", **kw):
    if perturbation == KEY:
        return [orig(paths, embedder, cache, perturbation="train_view", **kw),
                orig(paths, embedder, cache, perturbation="amr_wb", **kw)]
    return orig(paths, embedder, cache, perturbation=perturbation, **kw)


def head_split(clips, X, views, train, test, config, args):
    parts = views if isinstance(views, list) else [views]
    y = np.array([c.label for c in clips])
    w = speech.balanced_weights([clips[i] for i in train], by=args.weighting)
    k = 1 + len(parts)
    scale = [1.0] * (k - 1) + [WEIGHT] if len(parts) > 1 else [1.0] * k  # the AMR-WB copy is the last
    head = fit_head(np.concatenate([X[train]] + [v[train] for v in parts]), np.concatenate([y[train]] * k),
                    np.concatenate([w * c for c in scale]), config, steps=args.steps, seed=args.seed,
                    dry_run=args.dry_run)
    return ev.head_answers(head, X[test]), head


if __name__ == "__main__":
    mode, out = sys.argv[1], sys.argv[2]
    WEIGHT = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    argv = ["--data", "../shared/data", "--out", out, "--weighting", "class", "--threads", "1"]
    args = ev.parse_args(argv + (["--nested"] if mode == "nested" else []))
    args.views = KEY
    ev.evaluate_head(args, features=cached, split=head_split)
