"""Prototype (docs/experiments/ser.md, 2026-12-06): can the SER's own encoder statistics give a face
per voice? A linear discriminant of speakers (LDA) trained on four corpora, tested on the fifth:

    PYTHONPATH=. python docs/experiments/scripts/voice_identity.py embedding FEATURES DIMS
    PYTHONPATH=. python docs/experiments/scripts/voice_identity.py faces FEATURES DIM
    PYTHONPATH=. python docs/experiments/scripts/voice_identity.py expression

FEATURES: ``all`` (every layer's mean and std), ``mean`` (every layer's mean), ``L<k>m`` or
``L<k>s`` (block k's mean or std); DIMS: comma-separated. ``embedding`` prints, per held-out
corpus, the within/between-speaker cosine-distance ratio of the embedding and how often two clips
of one speaker reach the same nearest training speaker. ``faces`` maps each clip's embedding to
the generator's latent (a fixed random projection, normalised to the latent's typical length),
draws it with the emotion the LOCO head heard (runs/ser_eval_tiny/held_out_logits.npz) and prints
the identity ratio in the reporting judges' features over pairs drawn with the same emotion.
``expression`` prints, for 60 seeds x 7 emotions, one seed's faces' distance across emotions over
different seeds' distance, in each judge's features. Reads ../shared/data and runs/ser_cache.
"""

import sys
from pathlib import Path

import numpy as np
import torch

from ml import checkpoint
from ml.data import speech
from ml.embed import SpeechEmbedder, cached_embeddings
from ml.evaluate_ser import load_logits
from ml.face_metrics import classify
from ml.generate import FaceGenerator
from ml.labels import EMOTIONS, FER_CLASSES, fer_index
from ml.models.gan import to_uint8

JUDGES = (("resnet", "weights/eval/fer_judge_resnet.pt"), ("k5", "weights/eval/fer_judge_k5.pt"))


def features(X4: np.ndarray, which: str) -> np.ndarray:
    if which == "all":
        return X4.reshape(len(X4), -1)
    if which == "mean":
        return X4[:, :, 0].reshape(len(X4), -1)
    return X4[:, int(which[1:-1]), 0 if which.endswith("m") else 1]


def lda(X: np.ndarray, speakers: np.ndarray, d: int, reg: float = 1e-3):
    mu, sd = X.mean(0), X.std(0) + 1e-6
    Z = (X - mu) / sd
    names = np.unique(speakers)
    means = np.stack([Z[speakers == s].mean(0) for s in names])
    Sw = sum((Z[speakers == s] - means[i]).T @ (Z[speakers == s] - means[i]) for i, s in enumerate(names)) / len(Z)
    Sb = (means - Z.mean(0)).T @ (means - Z.mean(0)) / len(names)
    Sw += reg * np.trace(Sw) / len(Sw) * np.eye(len(Sw))
    w, V = np.linalg.eigh(Sw)
    W = V / np.sqrt(w)
    _, U = np.linalg.eigh(W.T @ Sb @ W)
    return mu, sd, W @ U[:, ::-1][:, :d]


def embed(X: np.ndarray, model) -> np.ndarray:
    mu, sd, P = model
    e = ((X - mu) / sd) @ P
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def judges() -> dict:
    return {n: checkpoint.load(p, arch="fer-classifier", labels=FER_CLASSES).model for n, p in JUDGES}


def same_emotion_ratio(faces: np.ndarray, speakers: np.ndarray, emotions: np.ndarray) -> list[float]:
    same_e, same_s = emotions[:, None] == emotions[None], speakers[:, None] == speakers[None]
    off = ~np.eye(len(speakers), dtype=bool)
    out = []
    for model in judges().values():
        D = torch.cdist(*(2 * [torch.from_numpy(classify(model, faces)[1])])).numpy()
        out.append(round(float(D[same_e & same_s & off].mean() / D[same_e & ~same_s].mean()), 3))
    return out


def main() -> None:
    torch.set_num_threads(1)
    mode = sys.argv[1]
    gen = FaceGenerator.from_checkpoint("weights/generator.pt")[0]
    if mode == "expression":
        n = 60
        faces = gen.render([c for c in range(7) for _ in range(n)], [s for _ in range(7) for s in range(n)])
        seed = np.tile(np.arange(n), 7)
        for name, model in judges().items():
            D = torch.cdist(*(2 * [torch.from_numpy(classify(model, faces)[1])])).numpy()
            same = seed[:, None] == seed[None]
            print(name, "same seed, other emotions", round(float(D[same & ~np.eye(len(seed), dtype=bool)].mean()), 2),
                  "other seeds", round(float(D[~same].mean()), 2))
        return
    clips = speech.load_all("../shared/data")
    X4 = cached_embeddings([c.path for c in clips], SpeechEmbedder("whisper-tiny-en"), Path("runs/ser_cache"))
    X = features(X4.astype(np.float64), sys.argv[2])
    spk, corpus = np.array([c.speaker for c in clips]), np.array([c.corpus for c in clips])
    rng = np.random.default_rng(0)
    for d in [int(v) for v in sys.argv[3].split(",")]:
        for held in speech.CORPORA:
            tr, te = np.flatnonzero(corpus != held), np.flatnonzero(corpus == held)
            model = lda(X[tr], spk[tr], d)
            if mode == "embedding":
                E, Etr = embed(X[te], model), embed(X[tr], model)
                cents = np.stack([Etr[spk[tr] == s].mean(0) for s in np.unique(spk[tr])])
                anchor = (E @ (cents / np.linalg.norm(cents, axis=1, keepdims=True)).T).argmax(1)
                s = spk[te]
                same, off = s[:, None] == s[None], ~np.eye(len(s), dtype=bool)
                D = 1 - E @ E.T
                print(held, d, "embedding ratio", round(float(D[same & off].mean() / D[~same].mean()), 3),
                      "same nearest training speaker", round(float((anchor[:, None] == anchor[None])[same & off].mean()), 3),
                      f"({len(cents)} speakers)", flush=True)
            else:
                outer, _ = load_logits(Path("runs/ser_eval_tiny/held_out_logits.npz"))
                te = rng.choice(te, min(600, len(te)), replace=False)
                answer = dict(zip(outer[held].index.tolist(), outer[held].logits.argmax(1).tolist()))
                latent = gen.model.config.latent_dim
                R = torch.randn(latent, d, generator=torch.Generator().manual_seed(0)).double()
                z = torch.from_numpy(embed(X[te], model)) @ R.T
                z = (np.sqrt(latent) * z / z.norm(dim=1, keepdim=True)).float()
                y = torch.tensor([fer_index(EMOTIONS[answer[i]]) for i in te])
                with torch.inference_mode():
                    faces = to_uint8(gen.model(z, y)).numpy()
                print(held, d, "face identity ratio, same-emotion pairs (resnet, k5)",
                      same_emotion_ratio(faces, spk[te], y.numpy()), flush=True)


if __name__ == "__main__":
    main()
