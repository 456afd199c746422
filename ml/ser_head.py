"""The frozen-encoder SER head's training, shared by ``ml.train_ser`` (the shipped file) and
``ml.evaluate_ser`` (held-out scores of the same recipe): the one place the recipe lives."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from ml import calibration
from ml.data import speech
from ml.embed import TRAIN_VIEWS
from ml.models.ser import SERHead, SERHeadConfig
from ml.runtime import seed_everything


def fit_head(features: np.ndarray, labels: np.ndarray, weights: np.ndarray, config: SERHeadConfig, *,
             steps: int = 1000, batch_size: int = 1024, lr: float = 1e-3, weight_decay: float = 1e-2,
             seed: int = 0, dry_run: bool = False, allowed: np.ndarray | None = None,
             label_smoothing: float = 0.0) -> SERHead:
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
        loss = F.cross_entropy(logits, y[idx], label_smoothing=label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def head_answers(head: SERHead, features: np.ndarray) -> np.ndarray:
    """The head's 8-way answers (N,) on cached (N, layers, 2, width) features, calibrated as it is."""
    with torch.inference_mode():
        return head(torch.from_numpy(features.astype(np.float32))).argmax(1).numpy()


def head_raw(head: SERHead, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The head's raw logits (N, 8) and distance scores (N,) on cached features: what a
    calibration is fitted on (``SERHead.raw``)."""
    with torch.inference_mode():
        logits, distance = head.raw(torch.from_numpy(features.astype(np.float32)))
    return logits.numpy(), distance.numpy()


def train_on(clips: list[speech.SpeechClip], X: np.ndarray, views: np.ndarray, train: np.ndarray,
             config: SERHeadConfig, args: argparse.Namespace) -> SERHead:
    """The recipe's head on the clips ``train`` (balanced over their corpora and classes by
    ``args.weighting``), each heard clean (``X``) and as its training view (``views``)."""
    y = np.array([c.label for c in clips])
    w = speech.balanced_weights([clips[i] for i in train], by=args.weighting)
    return fit_head(np.concatenate([X[train], views[train]]), np.concatenate([y[train], y[train]]),
                    np.concatenate([w, w]), config, steps=args.steps, seed=args.seed, dry_run=args.dry_run)


@dataclass
class HeldOut:
    """A head's raw logits on a corpus it was not trained on."""

    corpus: str
    index: np.ndarray  # the corpus's clips, indices into the clip list
    logits: np.ndarray
    distance: np.ndarray


def held_out_logits(clips: list[speech.SpeechClip], X: np.ndarray, views: np.ndarray, config: SERHeadConfig,
                    args: argparse.Namespace, *, exclude: tuple[str, ...] = ()) -> dict[str, HeldOut]:
    """Leave one corpus out over the corpora not in ``exclude``: for each, a head trained on the
    others (never on ``exclude``), and its raw logits on the corpus left out."""
    corpus = np.array([c.corpus for c in clips])
    out = {}
    for held in speech.CORPORA:
        if held in exclude:
            continue
        train, test = speech.leave_one_corpus_out(clips, held)
        train = train[~np.isin(corpus[train], exclude)]
        assert not {clips[i].speaker for i in train} & {clips[i].speaker for i in test}
        logits, distance = head_raw(train_on(clips, X, views, train, config, args), X[test])
        out[held] = HeldOut(held, test, logits, distance)
    return out


def fit_calibration(kind: str, held: list[HeldOut], clips: list[speech.SpeechClip]) -> calibration.Calibration:
    """A calibration of ``kind`` fitted on held-out logits only, each corpus weighing the same
    and every class within it (``speech.balanced_weights(by="corpus")``)."""
    index = np.concatenate([h.index for h in held])
    chosen = [clips[i] for i in index]
    classes = speech.corpus_classes(clips)
    right = calibration.correct_mask(np.array([c.label for c in chosen]), [classes[c.corpus] for c in chosen])
    return calibration.fit(kind, np.concatenate([h.logits for h in held]), np.concatenate([h.distance for h in held]),
                           right, speech.balanced_weights(chosen, by="corpus"))


def add_head_args(p: argparse.ArgumentParser, *, auto: bool = False) -> None:
    """The recipe's options, the same for training and evaluating it. ``auto``: the calibration
    may also be ``auto``, chosen by the nested criterion (``ml.evaluate_ser``)."""
    p.add_argument("--encoder", default="whisper-tiny-en", help="the frozen encoder (ml.pretrained)")
    p.add_argument("--cache", default="runs/ser_cache", help="where the encoder's features are kept")
    p.add_argument("--steps", type=int, default=1000, help="head training steps")
    p.add_argument("--seed", type=int, default=0, help="the head's initialisation and batches")
    p.add_argument("--weighting", choices=speech.WEIGHTINGS, default="class",
                   help="every class weighs the same across corpora (class, shipped) or "
                        "every corpus does (corpus)")
    p.add_argument("--hidden", type=int, default=0, help="width of the head's hidden layer (0: linear)")
    p.add_argument("--views", choices=TRAIN_VIEWS, default="train_view",
                   help="each clip's training view without a codec (train_view) or with one, "
                        "half of the time (train_view_codec: AMR-NB, AMR-WB, Opus or AAC; ml.augment)")
    p.add_argument("--calibration", choices=calibration.KINDS + (("auto",) if auto else ()), default="distance",
                   help="the calibration fitted on held-out logits (ml.calibration)"
                        + ("; auto: the kind with the lowest nested mean ECE" if auto else ""))
