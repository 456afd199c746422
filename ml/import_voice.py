"""Import Resemblyzer's GE2E speaker encoder into ``weights/voice.pt`` and fit its map to the face
generator's latent on the speech corpora.

    pip download --no-deps resemblyzer==0.1.4 -d runs/wheels
    python -m ml.import_voice --wheel runs/wheels/Resemblyzer-0.1.4-py3-none-any.whl \\
        --data ../shared/data --out weights/voice.pt

Resemblyzer (Apache-2.0, Corentin Jemine) ships its trained weights inside its wheel; the package
itself is not a dependency, because it needs webrtcvad, a C extension the slim image cannot build.
The wheel's sha256 is checked, its ``pretrained.pt`` read from the zip, and only the network's
tensors are kept.

The map (``VoiceEncoder.latent``): the speakers' mean embeddings are whitened within speakers
and projected on the directions that separate speakers most (a linear discriminant, LDA), then
spread over the generator's latent by a fixed random orthonormal matrix (seed 0) and
normalised to the latent's typical length. So two recordings of one speaker land close together
and two speakers far apart. ``--dims`` directions; ``docs/experiments/voice.md`` has the figures
that chose them (``python -m ml.evaluate_voice``).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import zipfile
from pathlib import Path

import numpy as np
import torch

from ml import checkpoint
from ml.data import speech
from ml.embed import cached_embeddings
from ml.models.voice import VoiceEncoder, VoiceEncoderConfig
from ml.runtime import setup_cli
from ml.voice import VoicePrint

WHEEL = "Resemblyzer-0.1.4-py3-none-any.whl"
WHEEL_SHA256 = "8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f"
MEMBER = "resemblyzer/pretrained.pt"
PARTIAL_FRAMES = 100  # the 1 s at a clip's centre: as good a face as 1.6 s on vgg, 40% less LSTM (docs/experiments/voice.md)
DIMS = 4  # LDA directions kept: the fewest whose faces stay as varied as seeds' (docs/experiments/voice.md)
REG = 1e-3  # within-speaker covariance ridge, relative to its mean variance

log = logging.getLogger(__name__)


def read_wheel(path: str | Path, latent_dim: int) -> VoiceEncoder:
    """The GE2E network from Resemblyzer's wheel at ``path`` (sha256 checked), with a zero map."""
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != WHEEL_SHA256:
        raise checkpoint.CheckpointError(f"{path}: sha256 {digest}, expected {WHEEL_SHA256} ({WHEEL})")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        state = torch.load(io.BytesIO(z.read(MEMBER)), map_location="cpu", weights_only=True)["model_state"]
    model = VoiceEncoder(VoiceEncoderConfig(latent_dim=latent_dim, partial_frames=PARTIAL_FRAMES))
    own = {k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))}
    missing = model.load_state_dict(own, strict=False).missing_keys
    assert sorted(missing) == ["center", "to_latent"], missing
    return model.eval()


def fit_map(E: np.ndarray, speakers: np.ndarray, latent_dim: int, dims: int = DIMS) -> tuple[np.ndarray, np.ndarray]:
    """(center, to_latent): an LDA of speakers on embeddings ``E`` (N, D), ``dims`` directions,
    spread over ``latent_dim`` by a fixed random orthonormal matrix."""
    E = E.astype(np.float64)
    names = np.unique(speakers)
    if not 0 < dims < len(names):
        raise ValueError(f"{dims} directions need more than {dims} speakers; there are {len(names)}")
    means = np.stack([E[speakers == s].mean(0) for s in names])
    center = means.mean(0)
    within = sum((E[speakers == s] - means[i]).T @ (E[speakers == s] - means[i]) for i, s in enumerate(names)) / len(E)
    within += REG * np.trace(within) / len(within) * np.eye(len(within))
    w, V = np.linalg.eigh(within)
    W = V / np.sqrt(w)  # whitens the within-speaker scatter
    between = (means - center) @ W
    _, _, Vt = np.linalg.svd(between, full_matrices=False)
    P = W @ Vt[:dims].T  # (D, dims): the directions along which speakers differ most, in within-speaker units
    Q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((latent_dim, dims)))
    return center.astype(np.float32), (Q @ P.T).astype(np.float32)


def corpus_embeddings(voice: VoicePrint, data: str | Path, cache: str | Path, step: int = 1) -> tuple[list, np.ndarray]:
    """Every ``step``-th clip of the five corpora, and their speaker embeddings (cached)."""
    clips = speech.load_all(data)[::step]
    return clips, cached_embeddings([c.path for c in clips], voice, Path(cache)).astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wheel", required=True, help=f"path to {WHEEL} (pip download --no-deps resemblyzer==0.1.4)")
    p.add_argument("--data", required=True, help="../shared/data: the speech corpora the map is fitted on")
    p.add_argument("--generator", default="weights/generator.pt", help="the generator whose latent the map targets")
    p.add_argument("--out", default="weights/voice.pt")
    p.add_argument("--cache", default="runs/voice_cache")
    p.add_argument("--dims", type=int, default=DIMS)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    setup_cli(args.threads, "cpu")
    latent_dim = checkpoint.read(args.generator)["config"]["latent_dim"]
    model = read_wheel(args.wheel, latent_dim)
    clips, E = corpus_embeddings(VoicePrint(model), args.data, args.cache)
    speakers = np.array([c.speaker for c in clips])
    center, to_latent = fit_map(E, speakers, latent_dim, args.dims)
    model.center.copy_(torch.from_numpy(center))
    model.to_latent.copy_(torch.from_numpy(to_latent))
    provenance = {"pretrained": {"package": "resemblyzer==0.1.4", "wheel_sha256": WHEEL_SHA256, "member": MEMBER,
                                 "licence": "Apache-2.0"},
                  "map": {"kind": "lda", "dims": args.dims, "reg": REG, "fitted_on": sorted(speech.CORPORA),
                          "clips": len(clips), "speakers": int(len(np.unique(speakers))),
                          "fingerprint": speech.fingerprint(clips)}}
    checkpoint.save(args.out, model, labels=[], data=provenance)
    log.info("wrote %s (%d speakers, %d directions)", args.out, len(np.unique(speakers)), args.dims)


if __name__ == "__main__":
    main()
