"""Fine-tuning the top of the SER's encoder, measured cheaply (docs/experiments/ser.md, 2026-12-07;
the SER issue's "fine-tuning the top of the encoder if a way to afford it is found").

The whole encoder's fine-tuning costs about 32 hours of this machine's two cores scored the usual
way (``finetune_cost.py``). This probe trains only the last block of Whisper tiny.en (and its final
LayerNorm): the frames that enter that block are computed once by the frozen int8 encoder, as
served, and kept, so a training step runs one block instead of four and no audio front end. It
starts from the shipped recipe's trained head and fine-tunes block and head together at a small
learning rate (linear probing, then fine-tuning: Kumar et al. 2022 found this keeps more of a
pretrained encoder's robustness off its training distribution than fine-tuning from a random
head). Clips are drawn with the recipe's class-balanced weights, each clean or as its training
view (``ml.augment.random_view``, seeded by the clip's index as in the feature cache).

Selection protocol, cheaper than the nested criterion and never scoring on a LOCO corpus it
reports: inner splits of the nested criterion only (for an outer corpus C and a probe D, trained
on the three corpora left, scored on D); figures are the raw answers' UA and their raw ECE.

    # the block's input frames and the lower layers' pooled statistics, clean and one training view
    PYTHONPATH=. python docs/experiments/scripts/ser_top_finetune.py frames ../shared/data runs/ser_frames 0 2
    PYTHONPATH=. python docs/experiments/scripts/ser_top_finetune.py frames ../shared/data runs/ser_frames 1 2
    # one inner split: outer corpus, probe corpus, epochs
    PYTHONPATH=. python docs/experiments/scripts/ser_top_finetune.py probe ../shared/data runs/ser_frames turev nemo 2
    # the same splits, attentive statistics pooling over the last layer's frames instead (block frozen)
    PYTHONPATH=. python docs/experiments/scripts/ser_top_finetune.py attentive ../shared/data runs/ser_frames turev nemo
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ml import audio, calibration
from ml.augment import random_view
from ml.data import speech
from ml.embed import SpeechEmbedder, front_end
from ml.metrics import corpus_scores
from ml.models.ser import SERHeadConfig
from ml.ser_head import head_raw, train_on

CHUNK = 250
KINDS = ("clean", "train_view")


def frames(data: str, out: Path, shard: int, shards: int) -> None:
    """For every clip and kind: the pooled statistics of the first ``layers - 1`` hidden states and
    the frames entering the last block, per 8 s window; saved in chunks of CHUNK clips (resumable)."""
    torch.set_num_threads(1)
    clips = speech.load_all(data)
    embedder = SpeechEmbedder("whisper-tiny-en")
    out.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        for start in range(0, len(clips), CHUNK):
            path = out / f"{kind}_{start:05d}.npz"
            if (start // CHUNK) % shards != shard or path.exists():
                continue
            t0 = time.time()
            lower, states, windows = [], [], []
            for i in range(start, min(start + CHUNK, len(clips))):
                wave = audio.decode(clips[i].path).samples
                if kind == "train_view":
                    wave = random_view(wave, seed=i)
                mels, lengths = front_end(torch.from_numpy(wave))
                stats = []
                with torch.inference_mode():
                    for mel in mels:
                        s = embedder.model(mel)  # (L+1, T, D)
                        stats.append(torch.stack([s[:-1].mean(1), s[:-1].std(1)], 1))  # (L, 2, D)
                        states.append(s[-2].half().numpy())  # the last block's input
                wts = torch.tensor(lengths, dtype=torch.float32)
                lower.append((torch.stack(stats) * (wts / wts.sum())[:, None, None, None]).sum(0).numpy())
                windows.append(lengths)
            counts = [len(x) for x in windows]
            np.savez(path, lower=np.stack(lower).astype(np.float16), frames=np.concatenate(states),
                     frame_counts=np.array([len(s) for s in states]), window_counts=np.array(counts),
                     window_lengths=np.concatenate([np.array(x) for x in windows]))
            print(f"{path.name}: {len(lower)} clips in {time.time() - t0:.0f} s", flush=True)


class Clip:
    """One clip's cached pieces: lower layers' pooled statistics and its windows' frames."""

    def __init__(self, lower: np.ndarray, frames: list[np.ndarray], lengths: np.ndarray) -> None:
        self.lower = torch.from_numpy(lower.astype(np.float32))
        self.frames = [torch.from_numpy(f) for f in frames]
        self.weights = torch.from_numpy(lengths / lengths.sum()).float()


def load(out: Path, kind: str, n: int) -> list[Clip]:
    result: list[Clip] = []
    for start in range(0, n, CHUNK):
        z = np.load(out / f"{kind}_{start:05d}.npz")
        fr = np.split(z["frames"], np.cumsum(z["frame_counts"])[:-1])
        wl = np.split(z["window_lengths"], np.cumsum(z["window_counts"])[:-1])
        k = 0
        for j in range(len(z["lower"])):
            c = z["window_counts"][j]
            result.append(Clip(z["lower"][j], fr[k:k + c], wl[j].astype(np.float64)))
            k += c
    assert len(result) == n, (len(result), n)
    return result


def pooled(top: torch.nn.Module, ln: torch.nn.Module, clip: Clip) -> torch.Tensor:
    """(layers, 2, D): the cached lower statistics and the (trainable) last block's."""
    last = []
    for f in clip.frames:
        h = ln(top(f.float()[None]))[0]  # (T, D)
        last.append(torch.stack([h.mean(0), h.std(0)]))
    stat = (torch.stack(last) * clip.weights[:, None, None]).sum(0)
    return torch.cat([clip.lower, stat[None]])


class Split:
    """One inner split's clips and cached pieces: trained on the corpora other than ``outer`` and
    ``scored``, scored on ``scored`` (the raw answers' UA and ECE)."""

    def __init__(self, data: str, out: Path, outer: str, scored: str) -> None:
        self.clips = speech.load_all(data)
        n = len(self.clips)
        self.clean, self.view = load(out, "clean", n), load(out, "train_view", n)
        corpus = np.array([c.corpus for c in self.clips])
        self.y = np.array([c.label for c in self.clips])
        self.classes, self.scored = speech.corpus_classes(self.clips), scored
        self.train = np.flatnonzero(~np.isin(corpus, (outer, scored)))
        self.test = np.flatnonzero(corpus == scored)

    def score(self, label: str, logits: np.ndarray) -> None:
        probs = torch.softmax(torch.from_numpy(logits), 1).numpy()
        ua = corpus_scores(self.y[self.test], logits.argmax(1), self.classes[self.scored])["ua"]
        ece = calibration.confidence_report(probs, self.y[self.test], self.classes[self.scored])["ece"]
        print(f"{label}: UA on {self.scored} {100 * ua:.1f}, raw ECE {ece:.3f}", flush=True)


def probe(data: str, out: Path, outer: str, scored: str, epochs: float, lr: float, batch: int) -> None:
    torch.set_num_threads(2)
    sp = Split(data, out, outer, scored)
    clips, clean, view, y, train, test = sp.clips, sp.clean, sp.view, sp.y, sp.train, sp.test
    n = len(clips)
    encoder = SpeechEmbedder("whisper-tiny-en", quantized=False).model  # float weights to fine-tune
    top0, ln0 = encoder.blocks[-1], encoder.ln_post

    def features(top, ln, idx, source) -> np.ndarray:
        with torch.inference_mode():
            return torch.stack([pooled(top, ln, source[i]) for i in idx]).numpy()

    # the recipe's head (ml.ser_head.train_on), on these features (the frozen block, float32)
    t0 = time.time()
    Xc = np.zeros((n, 5, 2, 384), np.float32)
    Xv = np.zeros((n, 5, 2, 384), np.float32)
    Xc[train] = features(top0, ln0, train, clean)
    Xv[train] = features(top0, ln0, train, view)
    Xc[test] = features(top0, ln0, test, clean)
    args = argparse.Namespace(weighting="class", steps=1000, seed=0, dry_run=False)
    head = train_on(clips, Xc, Xv, train, SERHeadConfig(quantized=False), args)
    print(f"features and head: {time.time() - t0:.0f} s", flush=True)
    sp.score("linear probe (frozen block)", head_raw(head, Xc[test])[0])

    # fine-tune block, final LayerNorm and head together
    top, ln, ft = copy.deepcopy(top0).train(), copy.deepcopy(ln0).train(), copy.deepcopy(head).train()
    for p in list(top.parameters()) + list(ln.parameters()):
        p.requires_grad_(True)
    opt = torch.optim.AdamW([{"params": list(top.parameters()) + list(ln.parameters()), "lr": lr},
                             {"params": ft.parameters(), "lr": lr * 10}], weight_decay=1e-2)
    w = speech.balanced_weights([clips[i] for i in train], by="class")
    p = torch.as_tensor(np.concatenate([w, w]), dtype=torch.float64)
    sources = [(i, clean) for i in train] + [(i, view) for i in train]
    g = torch.Generator().manual_seed(0)
    steps = int(epochs * len(sources) / batch)
    t0 = time.time()
    for step in range(steps):
        pick = torch.multinomial(p, batch, replacement=True, generator=g).tolist()
        x = torch.stack([pooled(top, ln, sources[k][1][sources[k][0]]) for k in pick])
        target = torch.as_tensor(y[[sources[k][0] for k in pick]])
        loss = F.cross_entropy(ft.classify(ft.standardise(x)), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 50 == 0:
            print(f"step {step + 1}/{steps} loss {loss.item():.3f} ({time.time() - t0:.0f} s)", flush=True)
    top.eval(), ln.eval(), ft.eval()
    Xt = features(top, ln, test, clean)
    sp.score(f"fine-tuned ({epochs:g} epochs, lr {lr:g}, {time.time() - t0:.0f} s)", head_raw(ft, Xt)[0])


class Attentive(torch.nn.Module):
    """Attentive statistics pooling (Okabe et al. 2018) of (T, D) frames: a weight per frame from a
    small tanh layer, then the weighted mean and standard deviation. ``v`` starts at zero, so the
    weights start uniform and the statistics start as the plain mean and (biased) deviation."""

    def __init__(self, dim: int = 384, hidden: int = 64) -> None:
        super().__init__()
        self.w = torch.nn.Linear(dim, hidden)
        self.v = torch.nn.Linear(hidden, 1, bias=False)
        torch.nn.init.zeros_(self.v.weight)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a = torch.softmax(self.v(torch.tanh(self.w(h))).squeeze(-1), 0)[:, None]
        mu = (a * h).sum(0)
        return torch.stack([mu, ((a * h * h).sum(0) - mu * mu).clamp(min=1e-8).sqrt()])


def attentive(data: str, out: Path, outer: str, scored: str, steps: int = 1000, batch: int = 64) -> None:
    """The recipe's head on the frozen features, against the same head reading the last layer
    through attentive statistics pooling (trained with it, from the head's weights and uniform
    attention), on one inner split."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    sp = Split(data, out, outer, scored)
    clips, clean, view, y, train, test = sp.clips, sp.clean, sp.view, sp.y, sp.train, sp.test
    n = len(clips)
    encoder = SpeechEmbedder("whisper-tiny-en", quantized=False).model
    top, ln = encoder.blocks[-1].eval(), encoder.ln_post.eval()
    t0 = time.time()
    with torch.inference_mode():  # the frozen last layer's frames, per window, once
        last = {(k, int(i)): [ln(top(f.float()[None]))[0].half() for f in src[i].frames]
                for k, src, idx in (("c", clean, train), ("v", view, train), ("c", clean, test)) for i in idx}
    print(f"last layer's frames: {time.time() - t0:.0f} s", flush=True)

    def stats(pool, key: tuple[str, int]) -> torch.Tensor:
        src = clean if key[0] == "c" else view
        per_window = torch.stack([pool(h.float()) for h in last[key]])
        return torch.cat([src[key[1]].lower, (per_window * src[key[1]].weights[:, None, None]).sum(0)[None]])

    def plain(h: torch.Tensor) -> torch.Tensor:
        return torch.stack([h.mean(0), h.std(0)])

    Xc = np.zeros((n, 5, 2, 384), np.float32)
    Xv = np.zeros((n, 5, 2, 384), np.float32)
    with torch.inference_mode():
        Xc[train] = torch.stack([stats(plain, ("c", int(i))) for i in train]).numpy()
        Xv[train] = torch.stack([stats(plain, ("v", int(i))) for i in train]).numpy()
        Xc[test] = torch.stack([stats(plain, ("c", int(i))) for i in test]).numpy()
    args = argparse.Namespace(weighting="class", steps=1000, seed=0, dry_run=False)
    head = train_on(clips, Xc, Xv, train, SERHeadConfig(quantized=False), args)
    sp.score(f"mean and deviation (the recipe's head; {time.time() - t0:.0f} s)", head_raw(head, Xc[test])[0])
    pool, ft = Attentive(), copy.deepcopy(head).train()
    opt = torch.optim.AdamW([{"params": pool.parameters(), "lr": 1e-3}, {"params": ft.parameters(), "lr": 1e-4}],
                            weight_decay=1e-2)
    w = speech.balanced_weights([clips[i] for i in train], by="class")
    p = torch.as_tensor(np.concatenate([w, w]), dtype=torch.float64)
    keys = [("c", int(i)) for i in train] + [("v", int(i)) for i in train]
    g = torch.Generator().manual_seed(0)
    t0 = time.time()
    for step in range(steps):
        pick = torch.multinomial(p, batch, replacement=True, generator=g).tolist()
        x = torch.stack([stats(pool, keys[k]) for k in pick])
        loss = F.cross_entropy(ft.classify(ft.standardise(x)), torch.as_tensor(y[[keys[k][1] for k in pick]]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 250 == 0:
            print(f"step {step + 1}/{steps} loss {loss.item():.3f} ({time.time() - t0:.0f} s)", flush=True)
    ft.eval()
    with torch.inference_mode():
        xt = torch.stack([stats(pool, ("c", int(i))) for i in test]).numpy()
    sp.score(f"attentive pooling of the last layer ({steps} steps, {time.time() - t0:.0f} s)", head_raw(ft, xt)[0])


if __name__ == "__main__":
    phase, data, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    if phase == "frames":
        frames(data, out, int(sys.argv[4]), int(sys.argv[5]))
    elif phase == "attentive":
        attentive(data, out, sys.argv[4], sys.argv[5])
    else:
        probe(data, out, sys.argv[4], sys.argv[5], float(sys.argv[6]),
              float(sys.argv[7]) if len(sys.argv) > 7 else 2e-5, int(sys.argv[8]) if len(sys.argv) > 8 else 32)
