"""Voice-to-latent maps weighed for weights/voice.md (docs/experiments/voice.md, 2026-12-07): per held-out
corpus, the latent ratio of the linear LDA map, how often two clips of one speaker reach the same nearest
training speaker, and the ratio when each voice is a softmax over training speakers' random faces.

    PYTHONPATH=. python docs/experiments/scripts/voice_anchors.py   # needs runs/voice_cache (ml.import_voice)
"""
import numpy as np, torch
from pathlib import Path
from ml.data import speech
from ml.embed import cached_embeddings
from ml.voice import VoicePrint
from ml.import_voice import fit_map
torch.set_num_threads(1)
v,_ = VoicePrint.from_checkpoint("weights/voice.pt")
clips = speech.load_all("../shared/data")
E = cached_embeddings([c.path for c in clips], v, Path("runs/voice_cache")).astype(np.float64)
spk = np.array([c.speaker for c in clips]); corpus = np.array([c.corpus for c in clips])
def ratio(X, s):
    D = torch.cdist(torch.from_numpy(X), torch.from_numpy(X)).numpy()
    same, off = s[:,None]==s[None], ~np.eye(len(s),dtype=bool)
    return D[same&off].mean()/D[~same].mean()
for dims in (2, 4, 6, 8, 16, 32):
  for held in speech.CORPORA:
    tr, te = np.flatnonzero(corpus!=held), np.flatnonzero(corpus==held)
    c, T = fit_map(E[tr], spk[tr], 128, dims)
    P = lambda X: (X - c) @ T.T
    Ztr, Zte = P(E[tr]), P(E[te])
    names = np.unique(spk[tr])
    cents = np.stack([Ztr[spk[tr]==n].mean(0) for n in names])
    cn = cents/np.linalg.norm(cents,axis=1,keepdims=True)
    zn = Zte/np.linalg.norm(Zte,axis=1,keepdims=True)
    sim = zn @ cn.T
    near = sim.argmax(1)
    s = spk[te]; same, off = s[:,None]==s[None], ~np.eye(len(s),dtype=bool)
    p_same = (near[:,None]==near[None])[same&off].mean(); p_diff = (near[:,None]==near[None])[~same].mean()
    rng = np.random.default_rng(0); A = rng.standard_normal((len(names),128))
    out = [f"{dims} {held} lin {ratio(zn, s):.3f} nearest same {p_same:.2f} diff {p_diff:.2f}"]
    for tau in (0.05, 0.1, 0.2):
        w = np.exp((sim - sim.max(1,keepdims=True))/tau); w/=w.sum(1,keepdims=True)
        Z = w @ A; Z = Z/np.linalg.norm(Z,axis=1,keepdims=True)
        out.append(f"tau{tau} {ratio(Z, s):.3f}")
    print(" | ".join(out), flush=True)
