"""Train the speech emotion model on RAVDESS.

    # the shipped model: all 24 actors
    python -m ml.train_ser --data ../shared/data/ravdess --out weights/ser.pt
    # CI smoke test: one batch on a few clips
    python -m ml.train_ser --data ../shared/data/ravdess --out /tmp/ser.pt --dry-run

Robustness is built into the recipe rather than hoped for: every training clip is trimmed of
silence exactly as at inference, then given a random view (``ml.augment``: speed 0.9/1.0/1.1,
gain, telephone band, coloured noise); the log-mel is normalised per clip (gain-invariant),
SpecAugment masks time and frequency, and mixup blends clips. ``ml.evaluate_ser`` measures what
this buys; the figures are in ``weights/ser.md``.

``--seeds 0,1`` trains one network per seed on the same clips and saves them as one
``ser-ensemble`` checkpoint that averages their probabilities. It doubles the model's cost, so
the shipped model is one network (``docs/experiments/ser.md`` has the measurement).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from ml import audio, checkpoint
from ml.augment import augment_wave, spec_augment
from ml.data import ravdess, speech
from ml.embed import TRAIN_VIEWS, SpeechEmbedder, cached_embeddings
from ml.labels import EMOTIONS
from ml.models.ser import SERConfig, SEREnsemble, SERHead, SERHeadConfig, SERNet
from ml.runtime import seed_everything, setup_cli

log = logging.getLogger(__name__)
SR = audio.SAMPLE_RATE


def fit(waves: list[np.ndarray], labels: np.ndarray, *, epochs: int, batch_size: int = 32, lr: float = 3e-3,
        config: SERConfig | None = None, seed: int = 0, device: torch.device | str = "cpu",
        mixup: float = 0.4, max_seconds: float = 4.0, dry_run: bool = False, desc: str = "train") -> SERNet:
    """Train a fresh :class:`SERNet` on decoded clips (each trimmed as at inference)."""
    g = seed_everything(seed)
    device = torch.device(device)
    model = SERNet(config or SERConfig()).to(device)
    trimmed = [audio.trim_silence(torch.from_numpy(w)) for w in waves]
    targets = torch.as_tensor(labels, dtype=torch.long)
    steps_per_epoch = 1 if dry_run else math.ceil(len(trimmed) / batch_size)
    total = steps_per_epoch * (1 if dry_run else epochs)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.15)
    max_len = int(max_seconds * SR)
    model.train()
    bar = tqdm(range(total), desc=desc, mininterval=15)
    for step in bar:
        if step % steps_per_epoch == 0:
            order = torch.randperm(len(trimmed), generator=g)
        idx = order[(step % steps_per_epoch) * batch_size:][:batch_size]
        views = [augment_wave(trimmed[i], g, max_len) for i in idx.tolist()]
        batch, lengths = audio.pad_batch(views)
        feats, frames = audio.log_mel(batch.to(device), lengths.to(device))
        feats = spec_augment(feats, frames, g)
        y = F.one_hot(targets[idx], len(EMOTIONS)).float().to(device)
        if mixup > 0:  # mix each example with a shuffled partner; lengths take the longer one
            lam = float(torch.distributions.Beta(mixup, mixup).sample())
            lam = max(lam, 1 - lam)
            perm = torch.randperm(len(idx), generator=g).to(device)
            feats = lam * feats + (1 - lam) * feats[perm]
            frames = torch.maximum(frames, frames[perm])
            y = lam * y + (1 - lam) * y[perm]
        logits = model(feats, frames)
        loss = torch.sum(-y * F.log_softmax(logits, dim=-1), dim=-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


def fit_head(features: np.ndarray, labels: np.ndarray, weights: np.ndarray, config: SERHeadConfig, *,
             steps: int = 1000, batch_size: int = 1024, lr: float = 1e-3, weight_decay: float = 1e-2,
             seed: int = 0, dry_run: bool = False, allowed: np.ndarray | None = None) -> SERHead:
    """Train a :class:`SERHead` on cached (N, layers, 2, width) encoder statistics.

    Batches are drawn with probability proportional to ``weights`` (:func:`ml.data.speech.balanced_weights`:
    every corpus, and every class within it, equally often), so a corpus ten times larger does
    not teach ten times more. The features are standardised with the training set's own mean and
    standard deviation, which the head keeps as buffers.

    ``allowed`` (N, n_classes) bool, when given, restricts each clip's softmax to the classes its
    corpus holds: a corpus then teaches only the classes it has, and says nothing about the
    others (an emodb clip is not evidence against "calm", a class emodb never recorded).
    """
    g = seed_everything(seed)
    x = torch.from_numpy(np.ascontiguousarray(features)).flatten(1).float()  # (N, F)
    y = torch.as_tensor(labels, dtype=torch.long)
    model = SERHead(config)
    model.mean.copy_(x.mean(0))
    model.std.copy_(x.std(0).clamp(min=1e-4))
    x = (x - model.mean) / model.std
    p = torch.as_tensor(weights, dtype=torch.float64)
    mask = None if allowed is None else torch.as_tensor(allowed, dtype=torch.bool)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    for _ in range(1 if dry_run else steps):
        idx = torch.multinomial(p, min(batch_size, len(p)), replacement=True, generator=g)
        logits = model.classify(x[idx])
        if mask is not None:
            logits = logits.masked_fill(~mask[idx], float("-inf"))
        loss = F.cross_entropy(logits, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def parse_seeds(text: str) -> list[int]:
    """``"0,1"`` -> [0, 1]; an argparse type, so a bad list is a usage error."""
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds repeat: {text!r}")
    return seeds


def ensemble_of(members: list[SERNet]) -> SERNet | SEREnsemble:
    """One member ships as itself; several as an ensemble that averages their probabilities."""
    return members[0] if len(members) == 1 else SEREnsemble.of(members)


def add_head_args(p: argparse.ArgumentParser) -> None:
    """The frozen-encoder recipe's options, the same for training and evaluating it."""
    p.add_argument("--encoder", default="whisper-tiny-en", help="recipe whisper: the frozen encoder (ml.pretrained)")
    p.add_argument("--cache", default="runs/ser_cache", help="recipe whisper: where the encoder's features are kept")
    p.add_argument("--steps", type=int, default=1000, help="recipe whisper: head training steps")
    p.add_argument("--weighting", choices=speech.WEIGHTINGS, default="class",
                   help="recipe whisper: every class weighs the same across corpora (class, shipped) or "
                        "every corpus does (corpus)")
    p.add_argument("--hidden", type=int, default=0, help="recipe whisper: width of the head's hidden layer (0: linear)")
    p.add_argument("--views", choices=TRAIN_VIEWS, default="train_view",
                   help="recipe whisper: each clip's training view without a codec (train_view) or with one, "
                        "half of the time (train_view_codec: AMR-NB, AMR-WB, Opus or AAC; ml.augment)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True,
                   help="the data root holding ravdess/ and speech/ (recipe whisper), or RAVDESS's root (recipe cnn)")
    p.add_argument("--out", required=True, help="checkpoint path; metrics go to <out>.json beside it")
    p.add_argument("--recipe", choices=("whisper", "cnn"), default="whisper",
                   help="whisper (shipped): a head over a frozen Whisper encoder, all five corpora; cnn: the log-mel CNN, RAVDESS")
    add_head_args(p)
    p.add_argument("--epochs", type=int, default=90, help="recipe cnn")
    p.add_argument("--batch-size", type=int, default=32, help="recipe cnn")
    p.add_argument("--lr", type=float, default=3e-3, help="recipe cnn")
    p.add_argument("--seeds", type=parse_seeds, default=[0],
                   help="comma-separated: one model per seed; several are saved as one averaging ensemble")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--dry-run", action="store_true", help="one batch on a few clips, in seconds")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    return train_head(args) if args.recipe == "whisper" else train_cnn(args)


def train_head(args: argparse.Namespace) -> dict:
    """The shipped SER: a :class:`SERHead` on every clip of the five corpora. This module trains
    only; held-out figures come from ``ml.evaluate_ser``."""
    setup_cli(args.threads, "cpu")
    clips = speech.load_all(args.data)
    if args.dry_run:
        clips = speech.first_of_each(clips)
    train = clips
    t0 = time.time()
    embedder = SpeechEmbedder(args.encoder)
    paths = [c.path for c in clips]  # the same cache as the evaluation's
    X = cached_embeddings(paths, embedder, Path(args.cache))
    views = cached_embeddings(paths, embedder, Path(args.cache), perturbation=args.views)
    config = SERHeadConfig(encoder=args.encoder, layers=X.shape[1], width=X.shape[3], hidden=args.hidden)
    seed = args.seeds[0]
    labels, weights = np.array([c.label for c in train]), speech.balanced_weights(train, by=args.weighting)
    # every clip twice: as recorded, and as one random training view (speed, telephone band, noise, gain)
    model = fit_head(np.concatenate([X, views]), np.concatenate([labels, labels]), np.concatenate([weights, weights]),
                     config, steps=args.steps, seed=seed, dry_run=args.dry_run)
    metrics: dict = {"train_clips": len(train), "train_seconds": round(time.time() - t0, 1),
                     "recipe": {"recipe": "whisper", "steps": args.steps, "weighting": args.weighting, "seed": seed,
                                "views": args.views,
                                "front_end": embedder.key,
                                "config": asdict(config)}}
    data = {"dataset": "RAVDESS speech + emodb, ased, nemo, turev", "clips": len(train),
            "corpora": {k: sum(c.corpus == k for c in train) for k in speech.CORPORA},
            "speakers": len({c.speaker for c in train}),
            "split": "every clip of the five corpora",
            "fingerprint": speech.fingerprint(train)}
    checkpoint.save(args.out, model, labels=EMOTIONS, data=data, metrics=metrics)
    Path(str(args.out) + ".json").write_text(json.dumps(metrics, indent=1))
    return metrics


def train_cnn(args: argparse.Namespace) -> dict:
    device = setup_cli(args.threads, args.device)
    clips = ravdess.load_manifest(ravdess.resolve_root(args.data))
    train = clips[::len(clips) // 8][:8] if args.dry_run else clips
    t0 = time.time()
    waves = ravdess.load_waves(train)
    log.info("decoded %d training clips in %.1f s", len(waves), time.time() - t0)
    labels = np.array([c.label for c in train])
    members = [fit(waves, labels, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=seed,
                   device=device, dry_run=args.dry_run, desc=f"seed {seed}") for seed in args.seeds]
    model = ensemble_of(members)
    metrics: dict = {"train_clips": len(train), "train_seconds": round(time.time() - t0, 1),
                     "recipe": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seeds": args.seeds,
                                "config": asdict(members[0].config)}}
    actors = sorted({c.actor for c in train})
    data = {"dataset": "RAVDESS speech", "actors": actors, "clips": len(train),
            "split": "all 24 actors",
            "fingerprint": ravdess.fingerprint(train)}
    checkpoint.save(args.out, model, labels=EMOTIONS, data=data, metrics=metrics)
    Path(str(args.out) + ".json").write_text(json.dumps(metrics, indent=1))
    return metrics


if __name__ == "__main__":
    main()
