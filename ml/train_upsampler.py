"""Train the 2x face upsampler (``ml/models/upsampler.py``) on FER-2013 Training.

    python -m ml.train_upsampler --data ../shared/data/fer2013/fer2013.csv.gz --out weights/upsampler.pt
    python -m ml.train_upsampler --data ../shared/data/fer2013/fer2013.csv.gz --out runs/dry/upsampler.pt --dry-run

FER-2013 holds no face larger than 48 px, so the network learns 24 -> 48 px: each Training face,
reduced to 24 px by area averaging, is enlarged and compared with itself (L1), with random
horizontal flips. It is then used at 48 -> 96 px (``ml/enlarge.py``), the scale the service asks
for: single-image super-resolution's self-similarity assumption (Shocher et al. 2018). Adam,
learning rate 1e-3 on a cosine schedule, batch 64, 3,000 steps. How well it enlarges faces it
never saw, at the scale it never trained on, is ``ml.evaluate_upsampler``'s.
"""

from __future__ import annotations

import argparse
import logging
import time

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ml import checkpoint
from ml.data import fer2013
from ml.models.gan import from_uint8
from ml.models.upsampler import FaceUpsampler, UpsamplerConfig
from ml.runtime import seed_everything, setup_cli

log = logging.getLogger(__name__)


def reduce(faces: np.ndarray, size: int) -> np.ndarray:
    """uint8 faces (N, H, W) -> (N, size, size) by area averaging: the degradation the network undoes."""
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in faces])


def train(args: argparse.Namespace) -> dict:
    g = seed_everything(args.seed)
    images, labels = fer2013.load(args.data, "Training")
    if args.dry_run:
        images, labels = images[:16], labels[:16]
    x, y = from_uint8(reduce(images, images.shape[-1] // 2)), from_uint8(images)
    model = FaceUpsampler(UpsamplerConfig())
    steps = 1 if args.dry_run else args.steps
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    losses, t0 = [], time.time()
    for _ in tqdm(range(steps), desc="upsampler", mininterval=15):
        idx = torch.randint(0, len(x), (min(args.batch_size, len(x)),), generator=g)
        flip = torch.rand(len(idx), 1, 1, 1, generator=g) < 0.5
        xb, yb = torch.where(flip, x[idx].flip(-1), x[idx]), torch.where(flip, y[idx].flip(-1), y[idx])
        loss = (model(xb) - yb).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    last = losses[-min(len(losses), 500):]
    metrics = {"steps": steps, "final_l1": float(sum(last) / len(last)), "seconds": round(time.time() - t0, 1),
               "seed": args.seed, "trained_scale": "24 -> 48 px", "used_scale": "48 -> 96 px"}
    checkpoint.save(args.out, model.eval(), labels=[], metrics=metrics,
                    data={"dataset": "FER-2013", "split": "Training", "fingerprint": fer2013.fingerprint(images, labels)})
    log.info("upsampler: %d steps in %.0f s, L1 over the last %d steps %.4f", steps, metrics["seconds"], len(last),
             metrics["final_l1"])
    return metrics


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="fer2013.csv or fer2013.csv.gz")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--dry-run", action="store_true", help="one step on 16 faces, then write the file")
    args = p.parse_args(argv)
    setup_cli(args.threads, "cpu")
    return train(args)


if __name__ == "__main__":
    main()
