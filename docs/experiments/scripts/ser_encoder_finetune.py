"""Fine-tuning the whole of the SER's encoder, on two inner splits only (docs/experiments/ser.md,
2026-12-07; the SER issue's "fine-tuning the top of the encoder if a way to afford it is found").

The last-block probe (``ser_top_finetune.py``) trained one block on cached frames and gained 0.8
and 1.6 points. This one trains every weight of Whisper tiny.en (both convolutions, the four
blocks, the final LayerNorm; positions stay fixed) in float32, with the head, through the served
front end (``ml.embed.front_end`` and ``ml.embed.pooled_statistics``, the functions
``SpeechEmbedder.embed`` runs). Same protocol and rule as the last-block probe, fixed before any
figure: the splits (outer TurEV-DB / probe nEMO, outer nEMO / probe ASED), linear probing first
(the recipe's head on the frozen float32 encoder's features), then 2 epochs of fine-tuning from
it, learning rate 2e-5 for the encoder and 2e-4 for the head, batches of 32 clips drawn with the
recipe's class-balanced weights, each clip clean or as its training view
(``ml.augment.random_view``, seeded by the clip's index as in the feature cache). Rule: the
recipe gains a fine-tuning stage only if the fine-tuned UA beats the linear probe's by at least
2 points on both splits. The fine-tuned encoder is also scored as a CPU host would serve it
(dynamic int8), for the record.

    PYTHONPATH=. python docs/experiments/scripts/ser_encoder_finetune.py ../shared/data runs/ser_ft turev nemo
    PYTHONPATH=. python docs/experiments/scripts/ser_encoder_finetune.py ../shared/data runs/ser_ft nemo ased

One thread per split. A checkpoint every 25 steps (``OUT/OUTER-PROBE/state.pt``): a run that is
stopped resumes there. ``--limit N`` keeps N clips per corpus (a quick check of the script; its
figures mean nothing).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ml import audio, calibration
from ml.augment import random_view
from ml.data import speech
from ml.embed import SpeechEmbedder, front_end, pooled_statistics
from ml.metrics import corpus_scores
from ml.models.ser import SERHeadConfig
from ml.ser_head import head_raw, train_on


class Mels:
    """Each clip's windows as log-mel, clean or as its training view, computed once and kept in
    float16 to bound memory: the linear probe and the fine-tuning both hear the served log-mel
    rounded to float16, which the service does not do."""

    def __init__(self, clips: list[speech.SpeechClip]) -> None:
        self.clips, self.memo = clips, {}

    def __call__(self, i: int, view: bool) -> tuple[list[torch.Tensor], list[int]]:
        if (i, view) not in self.memo:
            wave = audio.decode(self.clips[i].path).samples
            mels, lengths = front_end(torch.from_numpy(random_view(wave, seed=i) if view else wave))
            self.memo[i, view] = ([m.half() for m in mels], lengths)
        mels, lengths = self.memo[i, view]
        return [m.float() for m in mels], lengths


def features(model: torch.nn.Module, mels: Mels, idx: np.ndarray, view: bool) -> np.ndarray:
    with torch.inference_mode():
        return torch.stack([pooled_statistics(model, *mels(int(i), view)) for i in idx]).numpy()


def score(y: np.ndarray, classes: tuple[int, ...], logits: np.ndarray) -> dict:
    probs = torch.softmax(torch.from_numpy(logits), 1).numpy()
    return {"ua": 100 * corpus_scores(y, logits.argmax(1), classes)["ua"],
            "raw_ece": calibration.confidence_report(probs, y, classes)["ece"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data")
    p.add_argument("out", type=Path)
    p.add_argument("outer")
    p.add_argument("probe")
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--limit", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(1)
    out = a.out / f"{a.outer}-{a.probe}"
    out.mkdir(parents=True, exist_ok=True)
    clips = speech.load_all(a.data)
    corpus = np.array([c.corpus for c in clips])
    y = np.array([c.label for c in clips])
    keep = np.ones(len(clips), bool)
    if a.limit:
        keep[:] = False
        for c in np.unique(corpus):
            keep[np.flatnonzero(corpus == c)[:a.limit]] = True
    train = np.flatnonzero(keep & ~np.isin(corpus, (a.outer, a.probe)))
    test = np.flatnonzero(keep & (corpus == a.probe))
    classes = speech.corpus_classes(clips)[a.probe]
    mels = Mels(clips)
    encoder = SpeechEmbedder("whisper-tiny-en", quantized=False).model
    results: dict = {"outer": a.outer, "probe": a.probe, "train_clips": len(train), "test_clips": len(test),
                     "epochs": a.epochs, "lr": a.lr, "batch": a.batch, "limit": a.limit}

    # linear probing: the recipe's head on the frozen float32 encoder's features
    t0 = time.time()
    n = len(clips)
    Xc, Xv = np.zeros((n, 5, 2, 384), np.float32), np.zeros((n, 5, 2, 384), np.float32)
    Xc[train], Xv[train], Xc[test] = (features(encoder, mels, train, False), features(encoder, mels, train, True),
                                      features(encoder, mels, test, False))
    args = argparse.Namespace(weighting="class", steps=1000, seed=0, dry_run=False)
    head = train_on(clips, Xc, Xv, train, SERHeadConfig(quantized=False), args)
    results["linear_probe"] = score(y[test], classes, head_raw(head, Xc[test])[0])
    results["linear_probe_s"] = round(time.time() - t0)
    print("linear probe:", results["linear_probe"], f"({results['linear_probe_s']} s)", flush=True)
    del Xc, Xv

    # fine-tuning: every encoder weight but the fixed positions, and the head
    model, ft = copy.deepcopy(encoder).train(), copy.deepcopy(head).train()
    params = [q for name, q in model.named_parameters() if name != "positions"]
    for q in params:
        q.requires_grad_(True)
    opt = torch.optim.AdamW([{"params": params, "lr": a.lr}, {"params": ft.parameters(), "lr": 10 * a.lr}],
                            weight_decay=1e-2)
    w = speech.balanced_weights([clips[i] for i in train], by="class")
    prob = torch.as_tensor(np.concatenate([w, w]), dtype=torch.float64)
    sources = [(int(i), False) for i in train] + [(int(i), True) for i in train]
    g = torch.Generator().manual_seed(0)
    steps, step, losses = int(a.epochs * len(sources) / a.batch), 0, []
    state_path = out / "state.pt"
    if state_path.exists():
        st = torch.load(state_path, weights_only=False)
        model.load_state_dict(st["model"]), ft.load_state_dict(st["head"]), opt.load_state_dict(st["opt"])
        g.set_state(st["generator"])
        step, losses = st["step"], st["losses"]
        print(f"resuming at step {step} of {steps}", flush=True)
    t0 = time.time()
    while step < steps:
        pick = torch.multinomial(prob, a.batch, replacement=True, generator=g).tolist()
        x = torch.stack([pooled_statistics(model, *mels(*sources[k])) for k in pick])
        loss = F.cross_entropy(ft.classify(ft.standardise(x)), torch.as_tensor(y[[sources[k][0] for k in pick]]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        losses.append(round(loss.item(), 4))
        if step % 25 == 0 or step == steps:
            torch.save({"model": model.state_dict(), "head": ft.state_dict(), "opt": opt.state_dict(),
                        "generator": g.get_state(), "step": step, "losses": losses}, state_path)
            print(f"step {step}/{steps} loss (last 25) {np.mean(losses[-25:]):.3f} ({time.time() - t0:.0f} s)",
                  flush=True)
    model.eval(), ft.eval()
    results["losses"] = losses
    results["fine_tuned"] = score(y[test], classes, head_raw(ft, features(model, mels, test, False))[0])
    print("fine-tuned:", results["fine_tuned"], flush=True)
    with warnings.catch_warnings():  # as ml.embed quantises the served encoder
        warnings.simplefilter("ignore")
        int8 = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    results["fine_tuned_int8"] = score(y[test], classes, head_raw(ft, features(int8, mels, test, False))[0])
    print("fine-tuned, served in int8:", results["fine_tuned_int8"], flush=True)
    results["gain"] = results["fine_tuned"]["ua"] - results["linear_probe"]["ua"]
    (out / "result.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
