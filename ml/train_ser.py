"""Train the shipped speech emotion model: a linear head over a frozen Whisper encoder's pooled
layer statistics, on every clip of the five corpora (RAVDESS, EmoDB, ASED, nEMO, TurEV-DB).

    # the shipped model
    python -m ml.train_ser --data ../shared/data --out weights/ser.pt --cache runs/ser_cache
    # CI smoke test: one step on one clip of every corpus and class
    python -m ml.train_ser --data ../shared/data --out runs/dry/ser.pt --cache runs/dry/cache --dry-run

Every clip is heard twice, as recorded and as one random training view (``ml.augment``), through
the encoder once (its features are cached, ``ml.embed``); batches weigh every class the same
across corpora. The head's calibration (``ml.calibration``) is fitted on the held-out logits of
five more heads, each trained with one corpus left out, and saved in the checkpoint. This module
trains only: held-out figures come from ``ml.evaluate_ser`` and are in ``weights/ser.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ml import checkpoint
from ml.data import speech
from ml.embed import SpeechEmbedder, cached_embeddings
from ml.labels import EMOTIONS
from ml.models.ser import SERHeadConfig
from ml.runtime import setup_cli
from ml.ser_head import add_head_args, fit_calibration, held_out_logits, train_on

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the data root holding ravdess/ and speech/")
    p.add_argument("--out", required=True, help="checkpoint path; metrics go to <out>.json beside it")
    add_head_args(p)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--dry-run", action="store_true", help="one step on a few clips, in seconds")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    return train_head(parse_args(argv))


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
    # every clip twice: as recorded, and as one random training view (speed, telephone band, noise, gain)
    model = train_on(train, X, views, np.arange(len(train)), config, args)
    # its calibration, fitted on logits of heads that never heard the corpus they scored: leave
    # each corpus out in turn (the same five heads as ml.evaluate_ser's LOCO)
    cal = fit_calibration(args.calibration, list(held_out_logits(train, X, views, config, args).values()), train)
    cal.install(model)
    metrics: dict = {"train_clips": len(train), "train_seconds": round(time.time() - t0, 1),
                     "recipe": {"recipe": "whisper", "steps": args.steps, "weighting": args.weighting, "seed": args.seed,
                                "views": args.views,
                                "front_end": embedder.key,
                                "config": asdict(config)},
                     "calibration": cal.as_dict()}
    data = {"dataset": "RAVDESS speech + emodb, ased, nemo, turev", "clips": len(train),
            "corpora": {k: sum(c.corpus == k for c in train) for k in speech.CORPORA},
            "speakers": len({c.speaker for c in train}),
            "split": "every clip of the five corpora",
            "fingerprint": speech.fingerprint(train)}
    checkpoint.save(args.out, model, labels=EMOTIONS, data=data, metrics=metrics)
    Path(str(args.out) + ".json").write_text(json.dumps(metrics, indent=1))
    return metrics


if __name__ == "__main__":
    main()
