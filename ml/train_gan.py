"""Train a conditional face GAN on FER-2013 (resumable): ours, or the student-project baseline.

    python -m ml.train_gan --data ../shared/data/fer2013/fer2013.csv.gz --out runs/gan
    python -m ml.train_gan --recipe baseline --data ../shared/data/fer2013/fer2013.csv.gz --out runs/gan_baseline
    python -m ml.train_gan --data tests/fixtures/fer_tiny.csv --out /tmp/gan --dry-run

``--recipe ours``: conditional batch norm generator, projection discriminator, the logistic
loss (non-saturating for G) with a lazy R1 penalty on real faces (StyleGAN2's regulariser,
gamma 0.05, every 4th step), Adam 2e-4 (0.5, 0.999), batch 64, an exponential moving average
of the generator (what ships, with its batch-norm statistics recomputed for the averaged
weights), real faces sampled with weights 1/sqrt(class count) (disgust is 17x rarer than
happy; full balancing would show each of its 436 faces 17x as often as a happy one), and
generated faces asked for the same labels as the real batch. Spectral norm with the hinge loss
instead of R1 was tried first and dropped (``docs/experiments/gan.md``).

``--recipe baseline``: the student project's cGAN (``ml/models/baseline_gan.py``): label as
an extra input channel, binary cross-entropy, Adam 2e-4 (0.5, 0.999), batch 512, no EMA, no
balancing, uniform random labels for generated faces.

Every run writes, under ``--out``: ``last.pt`` (resume state, rewritten every few minutes),
``generator.pt`` (the generator in the shipped format), ``samples/epoch_NNN.png`` (rows =
emotions, columns = fixed seeds), ``losses.png`` and ``history.json``. An epoch is one pass of
the Training split's size; ``--max-minutes`` gives two recipes the same compute budget.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F
from tqdm import tqdm

from ml import checkpoint, plots
from ml.data import fer2013
from ml.generate import GRID_SEEDS, FaceGenerator, is_calibrated
from ml.labels import FER_CLASSES
from ml.models.baseline_gan import (BaselineDiscriminator, BaselineDiscriminatorConfig, BaselineGenerator,
                                    BaselineGeneratorConfig)
from ml.models.gan import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, from_uint8
from ml.runtime import seed_everything, setup_cli

log = logging.getLogger(__name__)
R1_EVERY = 4
RECIPES = {
    "ours": dict(batch_size=64, lr_g=2e-4, lr_d=2e-4, beta1=0.5, ema_decay=0.999, balance="sqrt", loss="bce",
                 r1=0.05, spectral_norm=False, aux=0.5, fake_labels="real"),
    "baseline": dict(batch_size=512, lr_g=2e-4, lr_d=2e-4, beta1=0.5, ema_decay=0.0, balance="none", loss="bce",
                     r1=0.0, spectral_norm=False, aux=0.0, fake_labels="uniform"),
}


def diff_augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """DiffAugment (Zhao et al. 2020) for (B, 1, H, W): brightness, contrast, translation, cutout.

    Differentiable, applied identically in spirit to real and fake batches.
    """
    b, _, h, w = x.shape
    dev = x.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(dev)

    x = x + (rand(b, 1, 1, 1) - 0.5) * 0.5  # brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (rand(b, 1, 1, 1) * 1.0 + 0.5) + mean  # contrast 0.5x..1.5x
    shift = h // 8  # translation up to 1/8 of the size, zero filled
    dx = (rand(b) * (2 * shift + 1)).long() - shift
    dy = (rand(b) * (2 * shift + 1)).long() - shift
    padded = F.pad(x, (shift, shift, shift, shift), value=-1.0)
    iy = (torch.arange(h, device=dev)[None, :] + shift - dy[:, None].to(dev)).clamp(0, h + 2 * shift - 1)
    ix = (torch.arange(w, device=dev)[None, :] + shift - dx[:, None].to(dev)).clamp(0, w + 2 * shift - 1)
    x = padded[torch.arange(b, device=dev)[:, None, None], :, iy[:, :, None], ix[:, None, :]].permute(0, 3, 1, 2)
    cut = h // 4  # cutout: one square hole, a quarter of the side, filled with 0 (mid grey)
    cy = (rand(b) * h).long().to(dev)
    cx = (rand(b) * w).long().to(dev)
    yy = torch.arange(h, device=dev)[None, :, None]
    xx = torch.arange(w, device=dev)[None, None, :]
    hole = ((yy - cy[:, None, None]).abs() < cut // 2 + 1) & ((xx - cx[:, None, None]).abs() < cut // 2 + 1)
    return x * (~hole[:, None]).to(x.dtype)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    """EMA of the weights; the decay ramps up over the first steps so the average does not
    hold on to the random initialisation (at 0.999 from step 0, 60% of it survives 500 steps)."""
    decay = min(decay, (1 + step) / (10 + step))
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, 1 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


@torch.no_grad()
def standing_stats(generator: torch.nn.Module, n_classes: int, batch: int = 256, batches: int = 8,
                   seed: int = 1234) -> None:
    """Recompute the generator's batch-norm running statistics for its current weights.

    The EMA generator's weights are an average, so the live generator's running statistics do
    not describe its activations; in eval mode (how the service draws) that gives washed-out
    faces. Cumulative statistics over ``batches`` random batches replace them (as BigGAN does).
    """
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    device = next(generator.parameters()).device
    g = torch.Generator().manual_seed(seed)
    was_training = generator.training
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    generator.train()
    for _ in range(batches):
        z = torch.randn(batch, generator.config.latent_dim, generator=g).to(device)
        generator(z, torch.randint(0, n_classes, (batch,), generator=g).to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    generator.train(was_training)


def add_std_channel(D: Discriminator, d_state: dict, opt_state: dict) -> None:
    """Widen a saved D (and its Adam moments) that lacks the minibatch-std input channel, in place.

    The new input channel of the last convolution gets zero weights and zero moments, so the
    widened D scores every batch exactly as the saved one did until training moves them.
    """
    ids = opt_state["param_groups"][0]["params"]  # Adam's state is keyed by parameter order
    for i, (name, param) in enumerate(D.named_parameters()):
        saved = d_state.get(name)
        if saved is None or saved.shape == param.shape:
            continue
        assert saved.dim() == 4 and saved.shape[1] + 1 == param.shape[1], f"cannot widen {name}"
        d_state[name] = F.pad(saved, (0, 0, 0, 0, 0, 1))  # one more input channel, zero
        moments = opt_state["state"].get(ids[i], {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in moments:
                moments[key] = F.pad(moments[key], (0, 0, 0, 0, 0, 1))
        log.info("widened %s to %s for the minibatch-std channel (new weights 0)", name, tuple(param.shape))


def add_twin_classifier(D: Discriminator, d_state: dict, opt_state: dict) -> None:
    """Give a saved D that lacks the twin classifier D's freshly initialised one, in place.

    The twin head is D's last module, so its parameters append to Adam's parameter list (with no
    moments yet) and every saved parameter keeps its place.
    """
    missing = [(name, param) for name, param in D.named_parameters() if name not in d_state]
    if not missing:
        return
    assert all(name.startswith("twin.") for name, _ in missing), f"cannot add {[n for n, _ in missing]}"
    ids = opt_state["param_groups"][0]["params"]
    for name, param in missing:
        d_state[name] = param.detach().clone()
        ids.append(len(ids))
    log.info("added the twin classifier to the saved D (%s)", ", ".join(name for name, _ in missing))


def init_from(path: str, G: Generator, G_ema: Generator) -> dict:
    """Load a trained generator file into G and its average (a new run goes on from it); its provenance."""
    loaded = checkpoint.load(path, arch="cgan-generator", labels=FER_CLASSES)
    if is_calibrated(loaded):
        raise SystemExit(f"{path} is calibrated (it draws with chosen latent scales and blends); "
                         "start from the trained file it was calibrated from")
    for net in (G, G_ema):
        net.load_state_dict(loaded.model.state_dict())
    log.info("G and its average start from %s (%s steps)", path, loaded.meta["metrics"].get("steps"))
    return {"path": str(path), "sha256": loaded.sha256, "steps": loaded.meta["metrics"].get("steps")}


def same_class_distance(h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance (scalar) between the rows of ``h`` (B, D) whose labels ``y`` agree."""
    same = (y[:, None] == y[None, :]).triu(1)
    return torch.cdist(h, h)[same].mean() if same.any() else h.new_zeros(())


def sample_grid(generator: torch.nn.Module, device: torch.device) -> Image.Image:
    """The fixed-seed grid (rows = emotions, columns = ``GRID_SEEDS``) of a generator in training."""
    was_training = generator.training
    grid = FaceGenerator(generator, device).sample_grid(GRID_SEEDS)
    generator.train(was_training)
    return grid


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="fer2013.csv or fer2013.csv.gz")
    p.add_argument("--out", default="runs/gan", help="run directory (resumed if it holds last.pt)")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="ours",
                   help="ours, or the student project's cGAN; the options below override its settings")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--g-channels", type=int, default=24)
    p.add_argument("--d-channels", type=int, default=24)
    p.add_argument("--lr-g", type=float)
    p.add_argument("--lr-d", type=float)
    p.add_argument("--beta1", type=float)
    p.add_argument("--ema-decay", type=float, help="0 ships the raw generator")
    p.add_argument("--diffaugment", action="store_true", help="DiffAugment on everything D sees")
    p.add_argument("--loss", choices=["hinge", "bce"], help="hinge, or logistic (non-saturating for G)")
    p.add_argument("--r1", type=float, help="R1 penalty weight on real faces (0 = off), applied every 4th step")
    p.add_argument("--aux", type=float, help="weight of the auxiliary classification loss through D's "
                   "class projection (ours only): D learns to classify real faces, G to be classified as asked")
    p.add_argument("--aux-margin", type=float, default=0.0,
                   help="G's auxiliary loss counts only a face's cross-entropy above this (ln 2: no push once D's "
                        "classifier gives the asked class 50%%), so easy expressions are not sharpened into one "
                        "typical face (0 = always push)")
    p.add_argument("--mode-seeking", type=float, default=0.0,
                   help="weight of MSGAN's mode-seeking term: two latents of one class must give faces as far apart "
                        "as the latents are (0 = off)")
    p.add_argument("--diversity", type=float, default=0.0,
                   help="weight of a diversity-matching term in D's feature space: pairs of generated faces of one "
                        "class must lie as far apart in D's pooled features as real faces of one class in the same "
                        "batch do (a hinge: no push beyond that; 0 = off)")
    p.add_argument("--twin", type=float, default=0.0,
                   help="TAC-GAN (Gong et al. 2019): weight of a twin classifier in D that learns the classes of "
                        "generated faces; G's loss subtracts its cross-entropy, so G is not rewarded for drawing only "
                        "the most typical face of each class (needs --aux; equal to it is TAC-GAN's own setting; "
                        "resuming a run without it adds the head)")
    p.add_argument("--init-generator",
                   help="start a new run from this trained generator file (G and its average; D starts afresh, "
                        "see --d-warmup); a calibrated file is refused: pass the file it was calibrated from")
    p.add_argument("--d-warmup", type=int, default=0,
                   help="train only D for the run's first N steps, so a fresh D learns the generator's faces "
                        "before G follows its gradients")
    p.add_argument("--spectral-norm", action=argparse.BooleanOptionalAction, help="spectral norm in D (ours only)")
    p.add_argument("--minibatch-std", action="store_true",
                   help="ProGAN's minibatch standard deviation channel in D (ours only); resuming a run without it "
                        "adds the channel with zero weights, so D starts as it was")
    p.add_argument("--balance", choices=["class", "sqrt", "none"], help="real-face sampling weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    p.add_argument("--save-every-min", type=float, default=5.0)
    p.add_argument("--max-minutes", type=float, default=0, help="stop (resumably) after this long; 0 = no limit")
    p.add_argument("--dry-run", action="store_true", help="one batch, then write every output")
    args = p.parse_args(argv)
    for key, value in RECIPES[args.recipe].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.aux and args.recipe != "ours":
        p.error("--aux needs the projection discriminator of --recipe ours")
    if (args.diversity or args.init_generator) and args.recipe != "ours":
        p.error("--diversity and --init-generator need --recipe ours")
    if args.twin and not args.aux:
        p.error("--twin needs the auxiliary classifier (--aux) it balances")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup_cli(args.threads, args.device)
    out = Path(args.out)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    rng = seed_everything(args.seed)

    images, labels = fer2013.load(args.data, "Training")
    log.info("FER-2013 Training: %d faces, per class %s", len(labels), np.bincount(labels, minlength=7).tolist())
    data = from_uint8(images)  # (N, 1, 48, 48)
    targets = torch.from_numpy(labels)
    power = {"class": 1.0, "sqrt": 0.5, "none": 0.0}[args.balance]
    weights = torch.from_numpy(fer2013.balanced_sample_weights(labels) ** power)
    provenance = {"dataset": "FER-2013", "split": "Training", "faces": int(len(labels)),
                  "fingerprint": fer2013.fingerprint(images, labels)}

    if args.recipe == "ours":
        G = Generator(GeneratorConfig(base_channels=args.g_channels)).to(device)
        D = Discriminator(DiscriminatorConfig(base_channels=args.d_channels, spectral_norm=args.spectral_norm,
                                              minibatch_std=args.minibatch_std,
                                              twin_classifier=bool(args.twin))).to(device)
    else:
        G = BaselineGenerator(BaselineGeneratorConfig(base_channels=args.g_channels)).to(device)
        D = BaselineDiscriminator(BaselineDiscriminatorConfig(base_channels=args.d_channels)).to(device)
    G_ema = copy.deepcopy(G).eval()
    opt_g = torch.optim.Adam(G.parameters(), lr=args.lr_g, betas=(args.beta1, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=args.lr_d, betas=(args.beta1, 0.999))
    history: dict[str, list[float]] = {"loss_d": [], "loss_g": [], "d_real": [], "d_fake": []}
    start_epoch, step = 0, 0
    last = out / "last.pt"
    if args.init_generator:  # a resumed run then overwrites these weights with its own
        provenance["init_generator"] = init_from(args.init_generator, G, G_ema)
    if last.exists() and not args.dry_run:
        state = checkpoint.read(last)["training_state"]
        if args.recipe == "ours":
            if args.minibatch_std:
                add_std_channel(D, state["D"], state["opt_d"])
            if args.twin:
                add_twin_classifier(D, state["D"], state["opt_d"])
        G.load_state_dict(state["G"]); D.load_state_dict(state["D"]); G_ema.load_state_dict(state["G_ema"])
        opt_g.load_state_dict(state["opt_g"]); opt_d.load_state_dict(state["opt_d"])
        start_epoch, step, history = state["epoch"], state["step"], state["history"]
        for opt, lr in ((opt_g, args.lr_g), (opt_d, args.lr_d)):  # the command line wins on resume
            for group in opt.param_groups:
                group["lr"] = lr
        rng.set_state(state["rng"])
        log.info("resumed from %s at epoch %d, step %d", last, start_epoch, step)

    steps_per_epoch = 1 if args.dry_run else max(1, len(labels) // args.batch_size)
    epochs = 1 if args.dry_run else args.epochs
    augment = (lambda x: diff_augment(x, rng)) if args.diffaugment else (lambda x: x)
    if args.loss == "hinge":
        def d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
            return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()

        def g_loss(d_fake: torch.Tensor) -> torch.Tensor:
            return -d_fake.mean()
    else:  # binary cross-entropy on logits, the non-saturating generator loss (Keras' usual cGAN)
        def d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
            return (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                    + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))

        def g_loss(d_fake: torch.Tensor) -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    t0 = last_save = time.time()

    def save_state(epoch: int, *, metrics: dict | None = None) -> None:
        state = {"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
                 "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "epoch": epoch, "step": step,
                 "history": history, "rng": rng.get_state(), "args": vars(args)}
        checkpoint.save(last, D, labels=FER_CLASSES, data=provenance, training_state=state)
        standing_stats(G_ema, len(FER_CLASSES))
        checkpoint.save(out / "generator.pt", G_ema, labels=FER_CLASSES, data=provenance,
                        metrics={"epochs": epoch, "steps": step, "recipe": _recipe(args), **(metrics or {})})

    stopped = False
    for epoch in range(start_epoch, epochs):
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", mininterval=10)
        if args.diversity:
            history.setdefault("spread_ratio", [])  # generated / real same-class spread in D's features
        sums = np.zeros(len(history))
        for _ in bar:
            idx = torch.multinomial(weights, args.batch_size, replacement=True, generator=rng)
            real, y_real = data[idx].to(device), targets[idx].to(device)
            flip = torch.rand(args.batch_size, generator=rng) < 0.5  # faces are left-right symmetric
            real = torch.where(flip.to(device)[:, None, None, None], real.flip(-1), real)
            z = torch.randn(args.batch_size, G.config.latent_dim, generator=rng).to(device)
            if args.fake_labels == "real":  # the real batch's labels: D cannot tell by label frequency
                y_fake = y_real
            else:
                y_fake = torch.randint(0, len(FER_CLASSES), (args.batch_size,), generator=rng).to(device)
            half = args.batch_size // 2
            if args.mode_seeking or args.diversity:  # pairs (i, i + half) share a class, so the term spreads faces within a class
                y_fake = torch.cat([y_fake[:half], y_fake[:half], y_fake[2 * half:]])

            # (1) update D on real vs generated faces
            with torch.set_grad_enabled(step >= args.d_warmup):  # no G update during --d-warmup
                fake = G(z, y_fake)
            if args.aux or args.diversity:  # D's pooled features: its class embeddings double as a classifier
                h_real = D.features(augment(real))
                d_real = D.score(h_real, y_real)
            else:
                d_real = D(augment(real), y_real)
            if args.twin:
                h_fake_d = D.features(augment(fake.detach()))
                d_fake = D.score(h_fake_d, y_fake)
            else:
                d_fake = D(augment(fake.detach()), y_fake)
            loss_d = d_loss(d_real, d_fake)
            if args.aux:
                loss_d = loss_d + 2 * args.aux * F.cross_entropy(D.class_logits(h_real), y_real)
            if args.twin:  # the twin learns which class each generated face was drawn for
                loss_d = loss_d + 2 * args.twin * F.cross_entropy(D.twin_logits(h_fake_d), y_fake)
            if args.r1 and step % R1_EVERY == 0:  # lazy R1 (StyleGAN2): penalise D's gradient on real faces
                real_r1 = real.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(D(real_r1, y_real).sum(), real_r1, create_graph=True)
                loss_d = loss_d + R1_EVERY * args.r1 / 2 * grad.pow(2).sum(dim=(1, 2, 3)).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g, spread_ratio = torch.zeros(()), float("nan")  # --d-warmup: a fresh D first learns the faces G already draws
            if step >= args.d_warmup:
                # (2) update G: make D score its faces as real, for the requested class
                if args.aux or args.diversity:
                    h_fake = D.features(augment(fake))
                    loss_g = g_loss(D.score(h_fake, y_fake))
                    if args.aux:
                        ce = F.cross_entropy(D.class_logits(h_fake), y_fake, reduction="none")
                        loss_g = loss_g + args.aux * F.relu(ce - args.aux_margin).mean()
                    if args.twin:
                        loss_g = loss_g - args.twin * F.cross_entropy(D.twin_logits(h_fake), y_fake)
                else:
                    loss_g = g_loss(D(augment(fake), y_fake))
                if args.diversity:  # same-class generated pairs as far apart in D's features as same-class real faces
                    spread_fake = (h_fake[:half] - h_fake[half:2 * half]).norm(dim=1).mean()
                    spread_real = same_class_distance(h_real.detach(), y_real)
                    ratio = spread_fake / spread_real.clamp(min=1e-6)
                    loss_g = loss_g + args.diversity * F.relu(1 - ratio)
                    spread_ratio = ratio.item()
                if args.mode_seeking:  # MSGAN (Mao et al. 2019): 1 / (image distance / latent distance) per pair set
                    ratio = ((fake[:half] - fake[half:2 * half]).abs().mean()
                             / (z[:half] - z[half:2 * half]).abs().mean())
                    loss_g = loss_g + args.mode_seeking / (ratio + 1e-5)
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                ema_update(G_ema, G, args.ema_decay, step)

            step += 1
            now = {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "d_real": d_real.mean().item(),
                   "d_fake": d_fake.mean().item(), "spread_ratio": spread_ratio}
            sums += [now.get(key, float("nan")) for key in history]
            bar.set_postfix(loss_d=f"{loss_d.item():.3f}", loss_g=f"{loss_g.item():.3f}", spread=f"{spread_ratio:.2f}")
            if time.time() - last_save > args.save_every_min * 60:
                save_state(epoch)
                last_save = time.time()
            if args.max_minutes and time.time() - t0 > args.max_minutes * 60:
                stopped = True
                break
        if stopped:
            save_state(epoch)  # resumes this epoch from its start count; steps are kept
            log.info("stopped after %.1f min at step %d; rerun the same command to resume", (time.time() - t0) / 60, step)
            break
        n = steps_per_epoch
        for key, value in zip(history, sums / n):
            history[key].append(float(value))
        save_state(epoch + 1)  # also recomputes G_ema's batch-norm statistics for the grid
        grid = sample_grid(G_ema, device)
        grid.save(out / "samples" / f"epoch_{epoch + 1:03d}.png")
        grid.save(out / "samples" / "latest.png")
        plots.line_chart(history, out / "losses.png", title="GAN losses per epoch")
        log.info("epoch %d: %s", epoch + 1, {k: round(v[-1], 4) for k, v in history.items()})
    (out / "history.json").write_text(json.dumps({"step": step, **history}, indent=1))
    return history


def _recipe(args: argparse.Namespace) -> str:
    return (f"{args.recipe}: G base {args.g_channels}, D base {args.d_channels} (spectral norm {args.spectral_norm}), "
            f"{args.loss} loss, R1 {args.r1}, aux classification {args.aux} (margin {args.aux_margin}), "
            f"mode seeking {args.mode_seeking}, diversity {args.diversity}, twin {args.twin}, "
            f"minibatch std {args.minibatch_std}, "
            f"Adam({args.beta1}, 0.999) lr G {args.lr_g} D {args.lr_d}, batch {args.batch_size}, EMA {args.ema_decay}, "
            f"balance={args.balance}, diffaugment={args.diffaugment}")


if __name__ == "__main__":
    main()
