"""The SER encoder's statistics beside GE2E as the voice for the face (docs/experiments/voice.md,
2026-12-07; not shipped). For each corpus held out, the speaker LDA (``ml.import_voice.fit_map``) is
fitted on the other four and the latent ratio (mean within- over between-speaker distance, all
pairs, 600 clips) printed, for features named on the command line: ``ge2e`` (shipped), ``mK`` /
``sK`` (the mean / standard deviation of the tiny.en encoder's hidden state K, standardised),
``mall`` / ``sall`` (all five), joined by ``+``. Then the same with each emotion's mean offset
removed (the emotion from the LOCO SER heads, ``runs/ser_eval_tiny``).

    PYTHONPATH=. python docs/experiments/scripts/voice_ser_features.py ge2e m0 ge2e+m0 ge2e+m1 mall ge2e+mall
"""
import numpy as np, torch, sys
from pathlib import Path
from ml.data import speech
from ml.embed import SpeechEmbedder, cached_embeddings
from ml.import_voice import corpus_embeddings, fit_map
from ml.voice import VoicePrint
from ml.models.voice import voice_latent
from ml.evaluate_voice import distances, pair_ratio
torch.set_num_threads(1)
voice, _ = VoicePrint.from_checkpoint("weights/voice.pt")
clips, E = corpus_embeddings(voice, "../shared/data", "runs/voice_cache")
S = cached_embeddings([c.path for c in clips], SpeechEmbedder("whisper-tiny-en"), Path("runs/ser_cache")).astype(np.float32)
speakers = np.array([c.speaker for c in clips]); corpus = np.array([c.corpus for c in clips])
rng = np.random.default_rng(0)
def feats(kind):
    if kind == "ge2e": return E
    parts = []
    if "ge2e" in kind: parts.append(E / E.std(0).mean())
    if "m0" in kind: parts.append(S[:, 0, 0])
    if "m1" in kind: parts.append(S[:, 1, 0])
    for k in range(5):
        if f"m{k}" in kind and k > 1: parts.append(S[:, k, 0])
        if f"s{k}" in kind: parts.append(S[:, k, 1])
    if "mall" in kind: parts.append(S[:, :, 0].reshape(len(S), -1))
    if "sall" in kind: parts.append(S[:, :, 1].reshape(len(S), -1))
    F = np.concatenate([p if p is parts[0] and "ge2e" in kind else (p - p.mean(0)) / (p.std(0) + 1e-6) / np.sqrt(p.shape[1] / 256) for p in parts], 1)
    return F.astype(np.float32)
for kind in [a for a in sys.argv[1:] if a != "faces"]:
    F = feats(kind); out = []
    for dims in (4, 8):
        rs = []
        for held in speech.CORPORA:
            tr, te = np.flatnonzero(corpus != held), np.flatnonzero(corpus == held)
            te = np.sort(rng.choice(te, min(600, len(te)), replace=False))
            c, T = fit_map(F[tr], speakers[tr], 128, dims)
            z = voice_latent(torch.from_numpy(F[te]), torch.from_numpy(c), torch.from_numpy(T))
            rs.append(pair_ratio(distances(z.numpy()), speakers[te], None))
        out.append(f"dims {dims}: mean {np.mean(rs):.3f} [" + " ".join(f"{r:.2f}" for r in rs) + "]")
    print(kind, F.shape[1], " | ".join(out), flush=True)

# emotion offsets removed: e - sum_k p_k mu_k, p from the LOCO SER heads (never heard the corpus)
from ml.evaluate_ser import load_logits
outer, _ = load_logits(Path("runs/ser_eval_tiny/held_out_logits.npz"))
if sys.argv[1:] == ["faces"]:
    outer = {}
P = np.zeros((len(clips), 8), np.float32)
for c, h in outer.items():
    P[h.index] = torch.softmax(torch.from_numpy(h.logits), -1).numpy()
labels = np.array([c.label for c in clips])
for kind in (("ge2e", "ge2e+m1") if outer else ()):
    F = feats(kind)
    for mode in ("hard", "soft"):
        rs = []
        for held in speech.CORPORA:
            tr, te = np.flatnonzero(corpus != held), np.flatnonzero(corpus == held)
            te = np.sort(rng.choice(te, min(600, len(te)), replace=False))
            R = F[tr].copy()
            for s in np.unique(speakers[tr]):
                m = speakers[tr] == s; R[m] -= R[m].mean(0)
            mu = np.stack([R[labels[tr] == k].mean(0) if (labels[tr] == k).any() else np.zeros(F.shape[1]) for k in range(8)])
            Ptr = np.eye(8, dtype=np.float32)[labels[tr]]
            Pte = P[te] if mode == "soft" else np.eye(8, dtype=np.float32)[P[te].argmax(1)]
            Ftr, Fte = F[tr] - Ptr @ mu, F[te] - Pte @ mu
            c, T = fit_map(Ftr, speakers[tr], 128, 4)
            z = voice_latent(torch.from_numpy(Fte.astype(np.float32)), torch.from_numpy(c), torch.from_numpy(T))
            rs.append(pair_ratio(distances(z.numpy()), speakers[te], None))
        print("emotion-offset", kind, mode, f"mean {np.mean(rs):.3f} [" + " ".join(f"{r:.2f}" for r in rs) + "]", flush=True)

# the faces, on the choosing judge only: `... voice_ser_features.py faces` draws them as
# ml.evaluate_voice does, with GE2E + block 1 means in place of GE2E
if sys.argv[1:] == ["faces"]:
    import ml.evaluate_voice as ev
    base = ev.corpus_embeddings

    def joined(voice, data, cache, step=1):
        cl, G = base(voice, data, cache, step)
        M = cached_embeddings([c.path for c in cl], SpeechEmbedder("whisper-tiny-en"), Path("runs/ser_cache"))[:, 1, 0]
        M = M.astype(np.float32)
        M = (M - M.mean(0)) / (M.std(0) + 1e-6) / np.sqrt(M.shape[1] / 256)
        return cl, np.concatenate([G / G.std(0).mean(), M], 1).astype(np.float32)

    judge = ["--judge", "vgg=weights/eval/fer_classifier.pt", "--data", "../shared/data"]
    ev.main(judge + ["--out", "runs/voice_choose_ge2e"])
    ev.corpus_embeddings = joined
    ev.main(judge + ["--out", "runs/voice_choose_ge2e_m1"])
