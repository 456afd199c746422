"""Rejection of the worst draws by a critic, in latent space (the faces issue's lever "rejection of
the worst draws by a critic, kept deterministic for a seed").

A face is chosen per seed, not per face: a seed's K candidate latents are the first K rows of
``randn(K, 128)`` from the seed's own generator (row 0 is today's latent), and the one whose faces
a critic finds the most real, averaged over the 7 classes, is drawn for every emotion, so a seed
stays one person. Scoring K candidates by drawing 7 K faces costs too much per request, so a small
MLP learns the critic's mean score from z alone; the service would then run one generator pass.

Stages (each cached under OUT):

    PYTHONPATH=. python docs/experiments/scripts/gan_latent_critic.py critic DATA OUT
        the image critic (ml.realness.RealnessNet, 30 epochs) on PublicTest's real faces, the choosing
        split, against as many generated faces of seeds 3,000,000,000 up
    PYTHONPATH=. python docs/experiments/scripts/gan_latent_critic.py scores DATA OUT [N]
        the critic's logit for N seeds (3,100,000,000 up) x 7 classes; the target is their mean
    PYTHONPATH=. python docs/experiments/scripts/gan_latent_critic.py fit DATA OUT
        linear, |z| and MLP regressions of the target from z; R^2 on the last fifth of the seeds
    PYTHONPATH=. python docs/experiments/scripts/gan_latent_critic.py recog DATA OUT JUDGE
        a fourth expression classifier's (``ml.train_judge --arch vgg --seed 3``) log-probability of
        the requested class for the same seeds; then ``fit DATA OUT recog``
    PYTHONPATH=. python docs/experiments/scripts/gan_latent_critic.py choose DATA OUT 4,16 0,2
        the choosing judge (vgg, PublicTest, seeds 1,000,000 up) for each K and λ
        (score = critic - λ x recognisability); ``report`` instead of ``choose``: resnet and k5 on
        PrivateTest, seeds 0 up

DATA is fer2013.csv.gz. Figures and the rule: ``docs/experiments/gan.md``, 2026-12-07.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from ml import realness
from ml.data import fer2013
from ml.face_metrics import share_sample
from ml.generate import FaceGenerator
from ml.labels import FER_CLASSES
from ml.models.gan import from_uint8, to_uint8

CRITIC_SEEDS, SCORE_SEEDS = 3_000_000_000, 3_100_000_000


def draw_all(gen: FaceGenerator, z: torch.Tensor, classes: list[int]) -> np.ndarray:
    """uint8 faces for each latent row drawn as each class: (len(classes), N, 48, 48)."""
    out = []
    with torch.inference_mode():
        for c in classes:
            rows = [to_uint8(gen.model(b, torch.full((len(b),), c, dtype=torch.long))).numpy() for b in z.split(512)]
            out.append(np.concatenate(rows))
    return np.stack(out)


def latents(first: int, n: int, d: int = 128) -> torch.Tensor:
    return torch.stack([torch.randn(d, generator=torch.Generator().manual_seed(first + i)) for i in range(n)])


def critic(data: str, out: Path) -> None:
    gen, _ = FaceGenerator.from_checkpoint("weights/generator.pt")
    x, y = fer2013.load(data, "PublicTest")
    share = np.bincount(y, minlength=len(FER_CLASSES)) / len(y)
    per_class = int(np.ceil(len(x) * share.max()))
    faces = draw_all(gen, latents(CRITIC_SEEDS, per_class), list(range(len(FER_CLASSES))))
    mixed = share_sample(np.repeat(np.arange(len(FER_CLASSES)), per_class), share, np.random.default_rng(0))
    t = time.time()
    model = realness.train(x, faces.reshape(-1, 48, 48)[mixed], epochs=30)
    print(f"critic: {len(x)} real, {len(mixed)} generated, {time.time() - t:.0f} s")
    torch.save(model.state_dict(), out / "critic.pt")


def scores(data: str, out: Path, n: int) -> None:
    gen, _ = FaceGenerator.from_checkpoint("weights/generator.pt")
    model = realness.RealnessNet()
    model.load_state_dict(torch.load(out / "critic.pt"))
    model.eval()
    z = latents(SCORE_SEEDS, n)
    t = time.time()
    s = np.stack([realness.logits(model, f) for f in draw_all(gen, z, list(range(len(FER_CLASSES))))])  # (7, n)
    print(f"scores: {n} seeds x 7 classes, {time.time() - t:.0f} s; per class mean logit",
          dict(zip(FER_CLASSES, s.mean(1).round(2))))
    np.savez(out / "scores.npz", z=z.numpy(), scores=s)


def recog(out: Path, judge_path: Path) -> None:
    """A fourth expression classifier's log-probability of the requested class, for the scored seeds."""
    from ml import checkpoint
    gen, _ = FaceGenerator.from_checkpoint("weights/generator.pt")
    judge = checkpoint.load(judge_path, arch="fer-classifier", labels=FER_CLASSES).model
    z = torch.from_numpy(np.load(out / "scores.npz")["z"])
    faces = draw_all(gen, z, list(range(len(FER_CLASSES))))
    lp = []
    with torch.inference_mode():
        for c, f in enumerate(faces):
            lp.append(np.concatenate([torch.log_softmax(judge(from_uint8(b)), 1)[:, c].numpy()
                                      for b in np.array_split(f, max(1, len(f) // 512))]))
    lp = np.stack(lp)
    print("recog: mean log p of the requested class", dict(zip(FER_CLASSES, lp.mean(1).round(2))),
          "; correlation of its seed mean with the critic's", round(float(np.corrcoef(lp.mean(0), np.load(out / "scores.npz")["scores"].mean(0))[0, 1]), 3))
    np.save(out / "recog.npy", lp)


def fit(out: Path, what: str = "critic") -> None:
    d = np.load(out / "scores.npz")
    z, s = d["z"], (d["scores"] if what == "critic" else np.load(out / "recog.npy"))
    target = s.mean(0)
    n = len(z) * 4 // 5
    print(f"target: mean {target.mean():.2f}, sd {target.std():.2f}; per-class logits correlate with the mean:",
          [round(float(np.corrcoef(s[c], target)[0, 1]), 2) for c in range(len(s))])

    def r2(pred):
        return 1 - ((pred[n:] - target[n:]) ** 2).mean() / target[n:].var()

    norm = np.linalg.norm(z, axis=1, keepdims=True)
    for name, feats in (("|z|", norm), ("linear", z), ("linear + |z|", np.hstack([z, norm]))):
        a = np.hstack([feats, np.ones((len(z), 1))])
        w = np.linalg.lstsq(a[:n], target[:n], rcond=None)[0]
        print(f"{name}: R^2 {r2(a @ w):.3f}")
    net = scorer_net()
    zt, tt = torch.from_numpy(z).float(), torch.from_numpy(target).float()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    for step in range(4001):
        idx = torch.randint(0, n, (256,))
        loss = ((net(zt[idx]).squeeze(1) - tt[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 1000 == 0:
            with torch.no_grad():
                print(f"mlp step {step}: R^2 {r2(net(zt).squeeze(1).numpy()):.3f}")
    torch.save(net.state_dict(), out / ("scorer.pt" if what == "critic" else "scorer_recog.pt"))
    if what != "critic":
        return
    with torch.no_grad():
        pred = net(zt[n:]).squeeze(1).numpy()
    held = target[n:]
    for k in (4, 16):
        m = len(held) // k
        groups = np.arange(m * k).reshape(m, k)
        chosen = held[groups][np.arange(m), pred[groups].argmin(1)]  # the logit says "generated": lowest is most real
        print(f"K={k}: critic's mean logit of the chosen {chosen.mean():.2f} against row 0's {held[groups][:, 0].mean():.2f}"
              f" and the best possible {held[groups].min(1).mean():.2f}")


def choose(data: str, out: Path, ks: list[int], lams: list[float], n: int = 500, report: bool = False) -> None:
    """The choosing judge (vgg, PublicTest, seeds 1,000,000 up) on faces whose seeds pick the best
    of K candidates by the fitted scorer, K = 1 being today's faces; with ``report``, the reporting
    judges (resnet, k5) on PrivateTest, seeds 0 up, instead."""
    from ml import checkpoint
    from ml.evaluate_gan import CHOOSING_JUDGE, JUDGES, judge_faces, judge_real, named
    gen, _ = FaceGenerator.from_checkpoint("weights/generator.pt")
    net = scorer_net()
    net.load_state_dict(torch.load(out / "scorer.pt"))
    # the judge's log-probability is fitted best by a linear map of z and |z| (R^2 0.33; the MLP overfits it)
    d = np.load(out / "scores.npz")
    feats = np.hstack([d["z"], np.linalg.norm(d["z"], axis=1, keepdims=True), np.ones((len(d["z"]), 1))])
    w_recog = torch.from_numpy(np.linalg.lstsq(feats, np.load(out / "recog.npy").mean(0), rcond=None)[0]).float()

    def recog_of(cand: torch.Tensor) -> torch.Tensor:
        return torch.cat([cand, cand.norm(dim=1, keepdim=True), torch.ones(len(cand), 1)], 1) @ w_recog

    x, y = fer2013.load(data, "PrivateTest" if report else "PublicTest")
    ox, oy = fer2013.load(data, "PublicTest" if report else "PrivateTest")
    names = [j for j in dict(map(named, JUDGES)) if (j != CHOOSING_JUDGE) == report]
    judges = {j: checkpoint.load(dict(map(named, JUDGES))[j], arch="fer-classifier", labels=FER_CLASSES).model for j in names}
    reals = {j: judge_real(m, x, y, ox, oy) for j, m in judges.items()}
    share = np.bincount(y, minlength=len(FER_CLASSES)) / len(y)
    first = 0 if report else 1_000_000
    for k, lam in [(k, lam) for k in ks for lam in lams]:
        z = []
        for seed in range(first, first + n):
            cand = torch.randn(k, 128, generator=torch.Generator().manual_seed(seed))
            with torch.no_grad():
                score = net(cand).squeeze(1) - lam * recog_of(cand)
                z.append(cand[score.argmin()])
        faces = draw_all(gen, torch.stack(z), list(range(len(FER_CLASSES))))
        mixed = share_sample(np.repeat(np.arange(len(FER_CLASSES)), n), share, np.random.default_rng(0))
        for j, m in judges.items():
            r = judge_faces(m, faces, *reals[j], mixed)
            print(f"K={k}, lambda={lam}: {j} accuracy {r['accuracy_mean']:.1%} (lowest {r['accuracy_min']:.1%}), "
                  f"FD {r['fd']:.2f}, KID x 1000 {1000 * r['kid']:.2f}, precision {r['precision']:.2f}, "
                  f"recall {r['recall']:.2f}, diversity lowest {r['diversity_min']:.0%}", flush=True)


def scorer_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(128, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 1))


if __name__ == "__main__":
    torch.set_num_threads(2)
    stage, data, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    if stage == "critic":
        critic(data, out)
    elif stage == "scores":
        scores(data, out, int(sys.argv[4]) if len(sys.argv) > 4 else 16000)
    elif stage == "fit":
        fit(out, sys.argv[4] if len(sys.argv) > 4 else "critic")
    elif stage == "recog":
        recog(out, Path(sys.argv[4]))
    else:  # choose or report
        choose(data, out, [int(k) for k in sys.argv[4].split(",")],
               [float(v) for v in sys.argv[5].split(",")] if len(sys.argv) > 5 else [0.0], report=stage == "report")
