"""A class-prior (logit bias) correction for the SER (docs/experiments/ser.md, 2026-12-07; not shipped).

For each held-out corpus, an 8-way bias is fitted (class-balanced cross-entropy, LBFGS) on the
inner held-out logits of the nested criterion (heads trained on three corpora, scored on the
fourth), scaled by STRENGTH, and added to the outer LOCO logits; prints UA, neutral recall and the
answer shares before and after.

    PYTHONPATH=. python docs/experiments/scripts/ser_prior_bias.py [STRENGTH]   # needs runs/ser_eval_tiny
"""
import sys
import numpy as np, torch
from pathlib import Path
from ml.data import speech
from ml.evaluate_ser import load_logits
from ml.metrics import corpus_scores, on_corpus
from ml.labels import EMOTIONS
clips = speech.load_all("../shared/data")
labels = np.array([c.label for c in clips]); classes = speech.corpus_classes(clips)
outer, inner = load_logits(Path("runs/ser_eval_tiny/held_out_logits.npz"))
def fit_bias(helds, strength=1.0):
    X = torch.cat([torch.from_numpy(h.logits).float() for h in helds])
    y = torch.cat([torch.from_numpy(labels[h.index]) for h in helds])
    # each corpus's classes weigh the same; each corpus the same; answers restricted to... full 8-way softmax
    w = []
    for h in helds:
        lab = labels[h.index]; ws = np.zeros(len(lab))
        for k in np.unique(lab): ws[lab == k] = 1.0 / (lab == k).sum() / len(np.unique(lab))
        w.append(torch.from_numpy(ws / len(helds)).float())
    w = torch.cat(w)
    b = torch.zeros(8, requires_grad=True); opt = torch.optim.LBFGS([b], max_iter=200)
    def closure():
        opt.zero_grad(); loss = (torch.nn.functional.cross_entropy(X + b, y, reduction="none") * w).sum() + 1e-3 * b.pow(2).sum(); loss.backward(); return loss
    opt.step(closure)
    return b.detach().numpy() * strength
rows = []; shares0 = np.zeros(8); shares1 = np.zeros(8)
for c, h in outer.items():
    b = fit_bias(list(inner[c].values()), float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
    y = labels[h.index]; cls = classes[c]
    p0 = h.logits.argmax(1); p1 = (h.logits + b).argmax(1)
    s0 = corpus_scores(y, p0, cls)["ua"]; s1 = corpus_scores(y, p1, cls)["ua"]
    n = EMOTIONS.index("neutral")
    def nrec(p):
        m = y == n
        return float((on_corpus(p, cls)[m] == n).mean()) if m.any() else float("nan")
    shares0 += np.bincount(p0, minlength=8); shares1 += np.bincount(p1, minlength=8)
    print(c, "UA %.1f -> %.1f" % (100*s0, 100*s1), "neutral recall %.2f -> %.2f" % (nrec(p0), nrec(p1)), "bias", np.round(b, 2), flush=True)
    rows.append((s0, s1))
a = np.array(rows); print("mean UA %.1f -> %.1f" % tuple(100*a.mean(0)))
print("shares before", dict(zip(EMOTIONS, np.round(100*shares0/shares0.sum(), 1))))
print("shares after ", dict(zip(EMOTIONS, np.round(100*shares1/shares1.sum(), 1))))
