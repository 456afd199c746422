"""Figures of a set of faces against real ones, in a judge's features: recognisability, Frechet
and kernel distances, diversity, identity. Pure functions; ``ml/evaluate_gan.py`` draws the faces.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from ml.labels import FER_CLASSES
from ml.models.fer_classifier import FERClassifier
from ml.models.gan import from_uint8


@torch.no_grad()
def classify(model: FERClassifier, images: np.ndarray, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """A judge's predicted classes (N,) and penultimate features (N, D) for uint8 faces (N, 48, 48)."""
    model.eval()
    preds, feats = [], []
    for i in range(0, len(images), batch):
        f = model.features(from_uint8(images[i:i + batch]))
        feats.append(f.numpy())
        preds.append(model.head(f).argmax(1).numpy())
    return np.concatenate(preds), np.concatenate(feats)


def frechet_distance(a: np.ndarray, b: np.ndarray, a_weights: np.ndarray | None = None) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N, D).

    ``a_weights`` (N,) weights the rows of ``a`` when fitting its Gaussian (None: equal weights).
    """
    mu_a, mu_b = np.average(a, axis=0, weights=a_weights), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False, aweights=a_weights), np.cov(b, rowvar=False)
    # trace of sqrt(cov_a cov_b) via the eigenvalues of the (similar) symmetric product
    sa = _sqrtm_psd(cov_a)
    eig = np.linalg.eigvalsh(sa @ cov_b @ sa)
    tr_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_sqrt)


def _sqrtm_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def kernel_distance(a: np.ndarray, b: np.ndarray, a_weights: np.ndarray | None = None, *, subsets: int = 50,
                    size: int = 1000, seed: int = 0) -> float:
    """Kernel distance (KID, Binkowski et al. 2018): the unbiased squared MMD between two feature
    sets (N, D) under the cubic polynomial kernel k(x, y) = (x.y / D + 1)^3, averaged over
    ``subsets`` random subsets of ``size`` rows of each (fewer when a set is smaller); the rows of
    ``a`` are drawn with probabilities proportional to ``a_weights`` (None: equal). Unlike the
    Frechet distance it assumes no Gaussian and is unbiased in the number of samples."""
    rng = np.random.default_rng(seed)
    m = min(size, len(a), len(b))
    d = a.shape[1]
    p = None if a_weights is None else np.asarray(a_weights, dtype=float) / np.sum(a_weights)
    total = 0.0
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False, p=p)].astype(np.float64)
        y = b[rng.choice(len(b), m, replace=False)].astype(np.float64)
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        total += ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
    return float(total / subsets)


def label_weights(labels: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Per-row weights (N,) that give each class ``c`` the total weight ``share[c]``."""
    counts = np.bincount(labels, minlength=len(share)).astype(float)
    return np.asarray(share, dtype=float)[labels] / counts[labels]


def per_class_recall(pred: np.ndarray, truth: np.ndarray) -> dict[str, float | None]:
    """Recall of each FER class (None for a class absent from ``truth``)."""
    return {name: float((pred[truth == c] == c).mean()) if (truth == c).any() else None
            for c, name in enumerate(FER_CLASSES)}


def mean_present(values) -> float:
    """Mean of the values that are not None."""
    return float(np.mean([v for v in values if v is not None]))


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al., 2019) in a judge's features (N, D):
    each set's manifold is the union of balls reaching every sample's k-th nearest neighbour in
    its own set. Precision: the share of generated samples inside the real manifold (faces that
    look real); recall: the share of real samples inside the generated one (the real variety covered)."""
    r, f = torch.from_numpy(np.ascontiguousarray(real)).float(), torch.from_numpy(np.ascontiguousarray(fake)).float()

    def radii(x: torch.Tensor) -> torch.Tensor:  # the k-th neighbour, itself excluded (fewer in a tiny set)
        return torch.cdist(x, x).kthvalue(min(k, len(x) - 1) + 1, dim=1).values

    d = torch.cdist(f, r)  # (fake, real)
    precision = (d <= radii(r)[None, :]).any(1).float().mean()
    recall = (d.T <= radii(f)[None, :]).any(1).float().mean()
    return float(precision), float(recall)


def share_sample(labels: np.ndarray, share: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of a subset of ``labels`` whose classes come in the proportions ``share`` (as large
    as the scarcest class allows), so a comparison with real faces is not a comparison of class mixes."""
    counts = np.bincount(labels, minlength=len(share))
    total = min(counts[c] / share[c] for c in range(len(share)) if share[c] > 0)
    return np.concatenate([rng.choice(np.flatnonzero(labels == c), int(round(share[c] * total)), replace=False)
                           for c in range(len(share)) if share[c] > 0 and round(share[c] * total) > 0])


def mean_pairwise(x: np.ndarray, limit: int = 500) -> float:
    """Mean Euclidean distance over all pairs of the first ``limit`` rows (0 for fewer than 2)."""
    n = min(len(x), limit)
    if n < 2:
        return 0.0
    flat = torch.from_numpy(np.ascontiguousarray(x[:n]).reshape(n, -1)).float()
    return float(torch.cdist(flat, flat).sum() / (n * (n - 1)))


def identity_ratio(faces: np.ndarray, seeds: int = 200) -> float:
    """For faces (7, n, 48, 48), row c drawn as class c from the same n seeds: the mean pixel
    distance at 12x12 (layout, pose, lighting) between one seed's 7 faces, divided by the same
    distance between different seeds of one class. Below 1: the seed keeps the person."""
    k, n = faces.shape[:2]
    small = F.avg_pool2d(from_uint8(faces.reshape(k * n, 48, 48)), 4).reshape(k, n, -1)  # (7, n, 144)
    same_seed = np.mean([mean_pairwise(small[:, s].numpy()) for s in range(min(n, seeds))])
    same_class = np.mean([mean_pairwise(small[c, :seeds].numpy()) for c in range(k)])
    return float(same_seed / max(same_class, 1e-8))
