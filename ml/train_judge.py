"""Train an expression classifier on FER-2013 Training, to judge the face generator (never served).

    python -m ml.train_judge --data ../shared/data/fer2013/fer2013.csv.gz --arch vgg --seed 0 \\
        --out weights/eval/fer_classifier.pt
    python -m ml.train_judge --data ../shared/data/fer2013/fer2013.csv.gz --arch resnet --seed 1 \\
        --out weights/eval/fer_judge_resnet.pt
    python -m ml.train_judge --data ../shared/data/fer2013/fer2013.csv.gz --arch k5 --seed 2 \\
        --out weights/eval/fer_judge_k5.pt

Every judge has the same recipe: 10 epochs, batch 128, AdamW with a one-cycle learning rate,
label smoothing 0.1, flips and small shifts, and a class-weighted loss, so that a judge that
never says "disgust" (436 of 28,709 faces) cannot hide whether a generator draws it. This
module trains only: a judge's recall on real faces is reported by ``ml.evaluate_gan`` (the
real-faces column of its table).
"""

from __future__ import annotations

import argparse
import logging

import torch
from torch.nn import functional as F
from tqdm import tqdm

from ml import checkpoint
from ml.data import fer2013
from ml.labels import FER_CLASSES
from ml.models.fer_classifier import JUDGES, FERClassifier
from ml.models.gan import from_uint8
from ml.runtime import seed_everything, setup_cli

log = logging.getLogger(__name__)


def train(args: argparse.Namespace) -> dict:
    g = seed_everything(args.seed)
    images, labels = fer2013.load(args.data, "Training")
    if args.dry_run:
        images, labels = images[:16], labels[:16]
    model = FERClassifier(JUDGES[args.arch])
    x, y = from_uint8(images), torch.from_numpy(labels)
    counts = torch.bincount(y, minlength=len(FER_CLASSES)).float().clamp(min=1)
    class_weight = counts.mean() / counts
    steps = 1 if args.dry_run else args.epochs * steps_per_epoch(len(x), args.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
    model.train()
    losses = []
    for _ in tqdm(range(steps), desc=f"judge {args.arch}", mininterval=15):
        idx = torch.randint(0, len(x), (min(args.batch_size, len(x)),), generator=g)
        xb = x[idx]
        xb = torch.where(torch.rand(len(idx), 1, 1, 1, generator=g) < 0.5, xb.flip(-1), xb)
        shift = torch.randint(-4, 5, (2,), generator=g).tolist()  # small random translation
        xb = torch.roll(xb, shifts=shift, dims=(2, 3))
        loss = F.cross_entropy(model(xb), y[idx], weight=class_weight, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    last = losses[-min(len(losses), steps_per_epoch(len(x), args.batch_size)):]
    metrics = {"steps": steps, "final_epoch_loss": float(sum(last) / len(last)), "purpose": "evaluation only",
               "layout": args.arch, "seed": args.seed}
    checkpoint.save(args.out, model, labels=FER_CLASSES, metrics=metrics,
                    data={"dataset": "FER-2013", "split": "Training", "fingerprint": fer2013.fingerprint(images, labels)})
    log.info("judge %s: %d steps, training loss over the last epoch %.3f", args.arch, steps, metrics["final_epoch_loss"])
    return metrics


def steps_per_epoch(faces: int, batch_size: int) -> int:
    return max(1, faces // batch_size)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="fer2013.csv or fer2013.csv.gz")
    p.add_argument("--arch", choices=sorted(JUDGES), default="vgg", help="the judge's layout (ml/models/fer_classifier.py)")
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--dry-run", action="store_true", help="one step on 16 faces, then write every output")
    args = p.parse_args(argv)
    setup_cli(args.threads, "cpu")
    return train(args)


if __name__ == "__main__":
    main()
