"""Measure a face generator against FER-2013 with an expression classifier trained here.

    # once: train the evaluation-only classifier on Training, report PrivateTest accuracy
    python -m ml.evaluate_gan train-classifier --data ../shared/data/fer2013/fer2013.csv.gz \\
        --out weights/fer_classifier.pt
    # then, for any generator checkpoint
    python -m ml.evaluate_gan evaluate --data ../shared/data/fer2013/fer2013.csv.gz \\
        --classifier weights/fer_classifier.pt --generator weights/generator.pt --out runs/gan_eval

``evaluate`` draws ``--per-class`` faces per emotion (seeds 0..n-1) and reports:
  * recognisability: the classifier's accuracy per requested emotion, next to its accuracy on
    real PrivateTest faces;
  * realism: the Frechet distance between the classifier's penultimate features of generated
    faces and of PrivateTest faces, next to the real-vs-real floor (PublicTest vs PrivateTest);
  * diversity: mean pairwise feature distance within each emotion, generated / real;
  * identity: for the same seed drawn as all 7 emotions, mean pixel distance (at 12x12, i.e.
    layout, pose, lighting) between its faces, divided by the same distance between different
    seeds of one emotion (below 1: the seed keeps the person).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from ml import checkpoint
from ml.data import fer2013
from ml.generate import FaceGenerator
from ml.labels import FER_CLASSES
from ml.models.fer_classifier import FERClassifier, FERClassifierConfig
from ml.runtime import seed_everything, setup_cli

log = logging.getLogger(__name__)


def to_input(images: np.ndarray) -> torch.Tensor:
    """(N, 48, 48) uint8 -> (N, 1, 48, 48) float in [-1, 1], the generator's range."""
    return torch.from_numpy(images).float().div(127.5).sub(1).unsqueeze(1)


@torch.no_grad()
def classify(model: FERClassifier, images: np.ndarray, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Predicted classes (N,) and penultimate features (N, D)."""
    model.eval()
    preds, feats = [], []
    for i in range(0, len(images), batch):
        f = model.features(to_input(images[i:i + batch]))
        feats.append(f.numpy())
        preds.append(model.head(f).argmax(1).numpy())
    return np.concatenate(preds), np.concatenate(feats)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N, D)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # trace of sqrt(cov_a cov_b) via the eigenvalues of the (similar) symmetric product
    sa = _sqrtm_psd(cov_a)
    eig = np.linalg.eigvalsh(sa @ cov_b @ sa)
    tr_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_sqrt)


def _sqrtm_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def mean_pairwise(x: np.ndarray, limit: int = 500) -> float:
    """Mean Euclidean distance over all pairs of the first ``limit`` rows (0 for fewer than 2)."""
    n = min(len(x), limit)
    if n < 2:
        return 0.0
    flat = torch.from_numpy(np.ascontiguousarray(x[:n]).reshape(n, -1)).float()
    return float(torch.cdist(flat, flat).sum() / (n * (n - 1)))


def train_classifier(args: argparse.Namespace) -> dict:
    g = seed_everything(args.seed)
    images, labels = fer2013.load(args.data, "Training")
    test_x, test_y = fer2013.load(args.data, "PrivateTest")
    if args.dry_run:
        images, labels, test_x, test_y = images[:16], labels[:16], test_x[:8], test_y[:8]
    model = FERClassifier(FERClassifierConfig())
    x, y = to_input(images), torch.from_numpy(labels)
    steps = 1 if args.dry_run else args.epochs * (len(x) // args.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
    model.train()
    for _ in tqdm(range(steps), desc="classifier", mininterval=15):
        idx = torch.randint(0, len(x), (min(args.batch_size, len(x)),), generator=g)
        xb = x[idx]
        xb = torch.where(torch.rand(len(idx), 1, 1, 1, generator=g) < 0.5, xb.flip(-1), xb)
        shift = torch.randint(-4, 5, (2,), generator=g).tolist()  # small random translation
        xb = torch.roll(xb, shifts=shift, dims=(2, 3))
        loss = F.cross_entropy(model(xb), y[idx], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    preds, _ = classify(model, test_x)
    metrics = {"private_test_accuracy": float((preds == test_y).mean()),
               "per_class_recall": {c: float((preds[test_y == i] == i).mean()) if (test_y == i).any() else None
                                    for i, c in enumerate(FER_CLASSES)}}
    checkpoint.save(args.out, model, labels=FER_CLASSES, metrics={**metrics, "purpose": "evaluation only"},
                    data={"dataset": "FER-2013", "split": "Training", "fingerprint": fer2013.fingerprint(images, labels)})
    log.info("classifier PrivateTest accuracy %.3f", metrics["private_test_accuracy"])
    return metrics


def evaluate(args: argparse.Namespace) -> dict:
    clf = checkpoint.load(args.classifier, arch="fer-classifier", labels=FER_CLASSES).model
    gen = FaceGenerator.from_checkpoint(args.generator)[0]
    public_x, _ = fer2013.load(args.data, "PublicTest")
    private_x, private_y = fer2013.load(args.data, "PrivateTest")
    n = args.per_class
    real_pred, real_feat = classify(clf, private_x)
    report: dict = {"per_class": {}, "classifier_real_accuracy": float((real_pred == private_y).mean())}
    fakes, fake_feats = [], []
    for c, name in enumerate(FER_CLASSES):
        faces = np.concatenate([gen.render([c] * len(s), s) for s in np.array_split(np.arange(n), max(1, n // 256))])
        pred, feat = classify(clf, faces)
        fakes.append(faces)
        fake_feats.append(feat)
        real_c = real_feat[private_y == c]
        report["per_class"][name] = {
            "accuracy": float((pred == c).mean()),
            "diversity_ratio": mean_pairwise(feat) / max(mean_pairwise(real_c), 1e-8),
        }
    fake_feat = np.concatenate(fake_feats)
    _, public_feat = classify(clf, public_x)
    report["generated_accuracy_mean"] = float(np.mean([v["accuracy"] for v in report["per_class"].values()]))
    report["frechet_to_private"] = frechet_distance(fake_feat, real_feat)
    report["frechet_floor_public_vs_private"] = frechet_distance(public_feat, real_feat)
    report["frechet_ratio"] = report["frechet_to_private"] / max(report["frechet_floor_public_vs_private"], 1e-8)
    small = F.avg_pool2d(to_input(np.concatenate(fakes)), 4).reshape(len(FER_CLASSES), n, -1)  # (7, n, 144)
    seeds = min(n, 200)
    same_seed = np.mean([mean_pairwise(small[:, s].numpy()) for s in range(seeds)])
    same_class = np.mean([mean_pairwise(small[c, :seeds].numpy()) for c in range(len(FER_CLASSES))])
    report["identity_ratio"] = float(same_seed / max(same_class, 1e-8))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gan_eval.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return report


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train-classifier")
    t.add_argument("--data", required=True)
    t.add_argument("--out", default="weights/fer_classifier.pt")
    t.add_argument("--epochs", type=int, default=15)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--dry-run", action="store_true")
    e = sub.add_parser("evaluate")
    e.add_argument("--data", required=True)
    e.add_argument("--classifier", default="weights/fer_classifier.pt")
    e.add_argument("--generator", default="weights/generator.pt")
    e.add_argument("--per-class", type=int, default=500)
    e.add_argument("--out", default="runs/gan_eval")
    for s in (t, e):
        s.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    setup_cli(args.threads, "cpu")
    return train_classifier(args) if args.command == "train-classifier" else evaluate(args)


if __name__ == "__main__":
    main()
