"""Random Fourier features of the 4 LDA directions against the linear map (docs/experiments/voice.md,
2026-12-07), on the choosing judge (vgg) only: identity ratio (same emotion), diversity, expression.

    PYTHONPATH=. python docs/experiments/scripts/voice_rff.py   # needs runs/voice_cache and runs/ser_cache
"""
import numpy as np, torch
from pathlib import Path
from ml import checkpoint
from ml.data import speech
from ml.embed import SpeechEmbedder, cached_embeddings
from ml.face_metrics import classify
from ml.generate import FaceGenerator, latent_for_seed
from ml.import_voice import fit_map
from ml.labels import EMOTIONS, FER_CLASSES, fer_index
from ml.ser_head import head_answers
from ml.voice import VoicePrint
from ml.evaluate_voice import between, distances, pair_ratio
torch.set_num_threads(1)
gen,_ = FaceGenerator.from_checkpoint("weights/generator.pt"); d=128
v,_ = VoicePrint.from_checkpoint("weights/voice.pt")
clips = speech.load_all("../shared/data")
E = cached_embeddings([c.path for c in clips], v, Path("runs/voice_cache")).astype(np.float64)
ser = checkpoint.load("weights/ser.pt", arch=checkpoint.SER_MODELS, labels=EMOTIONS)
heard = head_answers(ser.model, cached_embeddings([c.path for c in clips], SpeechEmbedder("whisper-tiny-en"), Path("runs/ser_cache")))
classes = np.array([fer_index(EMOTIONS[a]) for a in heard])
spk = np.array([c.speaker for c in clips]); corpus = np.array([c.corpus for c in clips])
judge = checkpoint.load("weights/eval/fer_classifier.pt", arch="fer-classifier", labels=FER_CLASSES).model
rng = np.random.default_rng(0)
Om = np.random.default_rng(1).standard_normal((d, 4)); b = np.random.default_rng(2).uniform(0, 2*np.pi, d)
res = {}
for held in speech.CORPORA:
    tr, te = np.flatnonzero(corpus!=held), np.flatnonzero(corpus==held)
    te = np.sort(rng.choice(te, min(600, len(te)), replace=False))
    c, T = fit_map(E[tr], spk[tr], d, 4)
    # u: LDA coordinates (recover through the orthonormal spread)
    Qs, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((d, 4)))
    utr = (E[tr]-c) @ T.T @ Qs; ute = (E[te]-c) @ T.T @ Qs
    sd = utr.std(0).mean()
    seeds = torch.stack([latent_for_seed(int(s), d) for s in range(len(te))])
    pS, FS = classify(judge, gen.render(classes[te].tolist(), list(seeds)))
    for name, s in [("lin", None), ("rff0.25", 0.25), ("rff0.5", 0.5), ("rff1", 1.0)]:
        if s is None:
            z = ute @ Qs.T
        else:
            z = np.cos((ute/sd) @ Om.T * s + b)
        z = np.sqrt(d) * z / np.linalg.norm(z, axis=1, keepdims=True)
        zt = torch.from_numpy(z).float()
        p, F = classify(judge, gen.render(classes[te].tolist(), list(zt)))
        D = distances(F)
        r = (pair_ratio(D, spk[te], classes[te]), between(D, spk[te], classes[te]) / between(distances(FS), np.arange(len(te)).astype(str), classes[te]), (p==classes[te]).mean(), (pS==classes[te]).mean())
        res.setdefault(name, []).append(r)
        print(held, name, "ratio %.3f div %.2f expr %.3f (seeds %.3f)" % r, flush=True)
for k, rows in res.items():
    a = np.array(rows); print(k, "mean ratio %.3f min div %.2f expr %.3f seeds %.3f" % (a[:,0].mean(), a[:,1].min(), a[:,2].mean(), a[:,3].mean()))
