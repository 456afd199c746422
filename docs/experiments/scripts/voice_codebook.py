"""Two more maps from the voice print to the face, at the latent level only (docs/experiments/voice.md,
2026-12-07): no faces drawn, no judge. For each corpus held out, the speaker LDA is fitted on the
other four (as ``ml.evaluate_voice``), and 600 of its clips (seeded) are scored over pairs of one
emotion (the corpus's own labels).

* ``codebook``: a voice is one of K faces. K-means (K centroids) on the training clips' LDA
  coordinates; a clip's face is its nearest centroid's. The ratio is then the share of one
  speaker's pairs that land on different faces over the same for two speakers' pairs.
* ``corpus``: the shipped map (direction of the LDA coordinates, on the latent's sphere) with the
  corpora's mean offsets counted as within-speaker scatter (ALPHA times their scatter), or the
  speakers' means taken about their own corpus's mean, so that the directions kept are those that
  separate speakers inside a corpus rather than the corpora. ``spread`` is the mean distance
  between two speakers' latents over that between two random points of the sphere.

    PYTHONPATH=. python docs/experiments/scripts/voice_codebook.py codebook|corpus   # needs runs/voice_cache
"""
import sys
from pathlib import Path

import numpy as np
import torch

from ml.data import speech
from ml.embed import cached_embeddings
from ml.import_voice import REG, fit_map
from ml.models.voice import voice_latent
from ml.voice import VoicePrint

D = 128  # the generator's latent
voice, _ = VoicePrint.from_checkpoint("weights/voice.pt")
clips = speech.load_all("../shared/data")
E = cached_embeddings([c.path for c in clips], voice, Path("runs/voice_cache")).astype(np.float64)
spk, corpus, emo = (np.array([getattr(c, a) for c in clips]) for a in ("speaker", "corpus", "emotion"))
rng = np.random.default_rng(0)
sel = {h: np.sort(rng.choice(np.flatnonzero(corpus == h), min(600, (corpus == h).sum()), replace=False))
       for h in speech.CORPORA}


def pairs(te):
    same, keep = spk[te][:, None] == spk[te][None], emo[te][:, None] == emo[te][None]
    return same & ~np.eye(len(te), dtype=bool) & keep, ~same & keep


def lda_coordinates(tr, te, dims):
    c, T = fit_map(E[tr], spk[tr], D, dims)
    Q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((D, dims)))  # fit_map's spread, undone
    return (E[tr] - c) @ T.T @ Q, (E[te] - c) @ T.T @ Q


def kmeans(X, K, iters=50):
    C = X[np.random.default_rng(0).choice(len(X), K, replace=False)]
    for _ in range(iters):
        a = ((X[:, None] - C[None]) ** 2).sum(-1).argmin(1)
        C = np.stack([X[a == k].mean(0) if (a == k).any() else C[k] for k in range(K)])
    return C


def codebook():
    for dims in (2, 3, 4):
        for K in (4, 8, 16, 32):
            rows = []
            for held in speech.CORPORA:
                tr, te = np.flatnonzero(corpus != held), sel[held]
                utr, ute = lda_coordinates(tr, te, dims)
                C = kmeans(utr, K)
                a = ((ute[:, None] - C[None]) ** 2).sum(-1).argmin(1)
                other = a[:, None] != a[None]
                within, across = pairs(te)
                rows.append((other[within].mean() / other[across].mean(), other[across].mean()))
            r = np.array(rows)
            print(f"{dims} directions, K {K}: ratio {np.round(r[:, 0], 2)} mean {r[:, 0].mean():.3f}, "
                  f"two speakers on different faces at least {r[:, 1].min():.2f}", flush=True)


def fit_corpus_map(tr, dims, alpha, about_corpus):
    """fit_map with the corpora's offsets as nuisance (``alpha``) or speakers about their corpus's mean."""
    names = np.unique(spk[tr])
    means = np.stack([E[tr][spk[tr] == s].mean(0) for s in names])
    of = np.array([corpus[tr][spk[tr] == s][0] for s in names])
    cmeans = {k: means[of == k].mean(0) for k in np.unique(of)}
    center = means.mean(0)
    within = sum((E[tr][spk[tr] == s] - means[i]).T @ (E[tr][spk[tr] == s] - means[i]) for i, s in enumerate(names)) / len(tr)
    if alpha:
        Cm = np.stack(list(cmeans.values()))
        Cm = Cm - Cm.mean(0)
        within = within + alpha * Cm.T @ Cm / len(Cm)
    within += REG * np.trace(within) / len(within) * np.eye(len(within))
    w, V = np.linalg.eigh(within)
    W = V / np.sqrt(w)
    B = means - (np.stack([cmeans[k] for k in of]) if about_corpus else center)
    P = W @ np.linalg.svd(B @ W, full_matrices=False)[2][:dims].T
    Q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((D, dims)))
    return center, Q @ P.T


def corpus_invariant():
    for dims in (4, 8):
        for alpha in (0, 1, 10, 100):
            for about_corpus in (False, True):
                rows = []
                for held in speech.CORPORA:
                    tr, te = np.flatnonzero(corpus != held), sel[held]
                    c, T = fit_corpus_map(tr, dims, alpha, about_corpus)
                    z = voice_latent(*(torch.from_numpy(a).float() for a in (E[te], c, T))).numpy()
                    Dz = np.linalg.norm(z[:, None] - z[None], axis=-1)
                    within, across = pairs(te)
                    rows.append((Dz[within].mean() / Dz[across].mean(), Dz[across].mean() / np.sqrt(2 * D)))
                r = np.array(rows)
                print(f"{dims} directions, alpha {alpha}, about corpus {about_corpus}: ratio {np.round(r[:, 0], 2)} "
                      f"mean {r[:, 0].mean():.3f}, spread {np.round(r[:, 1], 2)}", flush=True)


if __name__ == "__main__":
    {"codebook": codebook, "corpus": corpus_invariant}[sys.argv[1]]()
