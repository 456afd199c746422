"""Train the conditional face GAN on FER-2013, in the manner of pytorch/examples' dcgan (resumable).

    # the shipped generator, from scratch: recipe "emoface", all its phases (about 14 CPU core-hours)
    python -m ml.train_gan --data ../shared/data/fer2013/fer2013.csv.gz --out runs/gan
    # the student project's cGAN, the baseline it is compared with
    python -m ml.train_gan --recipe baseline --data ../shared/data/fer2013/fer2013.csv.gz --out runs/gan_baseline
    python -m ml.train_gan --data ../shared/data/fer2013/fer2013.csv.gz --out runs/dry/gan --dry-run

Each step (1) updates D on a real batch and a generated one, then (2) updates G through D. The
``emoface`` recipe: the logistic loss (non-saturating for G) with a lazy R1 penalty on real faces
(StyleGAN2's, gamma 0.05 every 4th step), an auxiliary classification loss through D's class
projection (D learns to classify real faces, G to draw faces D classifies as asked), Adam (0.5,
0.999), batch 64, an exponential moving average of G (what ships, its batch-norm statistics
recomputed for the averaged weights), real faces sampled with weights 1/sqrt(class count)
(disgust is 17x rarer than happy), and generated faces asked for the real batch's labels. Its
phases (:data:`RECIPES`) change the auxiliary weight and margin, the learning rate and, for the
last, D's minibatch-std channel, at the steps the shipped file's run changed them
(``docs/experiments/gan.md``). ``baseline``: the student project's cGAN
(``ml/models/baseline_gan.py``), binary cross-entropy, batch 512, no EMA, no balancing, uniform
labels for generated faces, 903 steps (105 minutes on a core).

Every run writes, under ``--out``: ``last.pt`` (resume state, rewritten every few minutes),
``generator.pt`` (the generator in the shipped format), ``samples/step_NNNNNN.png`` (the fixed
seeds' grid: rows = emotions), ``losses.png`` and ``history.json``.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ml import checkpoint
from ml.data import fer2013
from ml.generate import GRID_SEEDS, FaceGenerator
from ml.labels import FER_CLASSES
from ml.models.baseline_gan import (BaselineDiscriminator, BaselineDiscriminatorConfig, BaselineGenerator,
                                    BaselineGeneratorConfig)
from ml.models.gan import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, from_uint8
from ml.progress import Progress, add_run_arguments, resume, training_state
from ml.runtime import seed_everything, setup_cli

log = logging.getLogger(__name__)
R1_EVERY = 4


@dataclass(frozen=True)
class Phase:
    until: int  # the phase runs up to this step
    lr: float = 2e-4  # G's and D's
    aux: float = 0.0  # weight of the auxiliary classification loss
    aux_margin: float = 0.0  # G's auxiliary loss counts only a face's cross-entropy above this
    minibatch_std: bool = False  # D sees the minibatch-std channel (from zero weights at the phase's start)


@dataclass(frozen=True)
class Recipe:
    model: str  # "emoface" or "baseline"
    phases: tuple[Phase, ...]
    batch_size: int = 64
    ema_decay: float = 0.999  # 0: ship the raw generator
    balance: float = 0.5  # real faces are sampled with weight (1 / class count) ** balance
    r1: float = 0.05
    fake_labels: str = "real"  # "real": the real batch's labels; "uniform": random labels
    channels: int = 24  # G's and D's width at 48x48

    def phase(self, step: int) -> Phase:
        return next((p for p in self.phases if step < p.until), self.phases[-1])


RECIPES = {
    "emoface": Recipe("emoface", (
        Phase(2_036),  # faces first, barely conditioned on the class
        Phase(7_975, aux=0.5),  # + the auxiliary classification loss
        Phase(9_786, aux=0.1),  # traded recognisability for realism
        Phase(19_071, aux=0.25),
        Phase(19_967, lr=1e-4, aux=0.35, aux_margin=math.log(2)),
        Phase(27_224, lr=1e-4, aux=0.35, aux_margin=1.2),
        Phase(34_948, lr=1e-4, aux=0.35, aux_margin=1.2, minibatch_std=True),  # the shipped file's last step
    )),
    "baseline": Recipe("baseline", (Phase(903),), batch_size=512, ema_decay=0.0, balance=0.0, r1=0.0,
                       fake_labels="uniform"),
}


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
def standing_stats(generator: torch.nn.Module, batch: int = 256, batches: int = 8, seed: int = 1234) -> None:
    """Recompute the generator's batch-norm running statistics for its current weights.

    The EMA generator's weights are an average, so the live generator's running statistics do
    not describe its activations; in eval mode (how the service draws) that gives washed-out
    faces. Cumulative statistics over ``batches`` random batches replace them (as BigGAN does).
    """
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    device = next(generator.parameters()).device
    g = torch.Generator().manual_seed(seed)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    generator.train()
    for _ in range(batches):
        z = torch.randn(batch, generator.config.latent_dim, generator=g).to(device)
        generator(z, torch.randint(0, len(FER_CLASSES), (batch,), generator=g).to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    generator.eval()


def bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(real)))


def discriminator_loss(netD: Discriminator, real: torch.Tensor, y_real: torch.Tensor, fake: torch.Tensor,
                       y_fake: torch.Tensor, aux: float, r1: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """D's loss: real faces scored real and ``fake`` (detached here) fake, each for its class; with
    ``aux``, plus classifying the real faces through the class projection; with ``r1``, plus
    StyleGAN2's lazy R1 penalty on D's gradient at the real faces (pass it every R1_EVERY-th
    step). Returns the loss and the two batches' scores. Shared by the face GAN and the editor."""
    if aux:
        h_real = netD.features(real)
        d_real = netD.score(h_real, y_real)
    else:
        d_real = netD(real, y_real)
    d_fake = netD(fake.detach(), y_fake)
    errD = bce(d_real, True) + bce(d_fake, False)
    if aux:
        errD = errD + 2 * aux * F.cross_entropy(netD.class_logits(h_real), y_real)
    if r1:
        real_r1 = real.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(netD(real_r1, y_real).sum(), real_r1, create_graph=True)
        errD = errD + R1_EVERY * r1 / 2 * grad.pow(2).sum(dim=(1, 2, 3)).mean()
    return errD, d_real, d_fake


def generator_loss(netD: Discriminator, fake: torch.Tensor, y_fake: torch.Tensor, aux: float,
                   aux_margin: float = 0.0) -> torch.Tensor:
    """G's adversarial loss (non-saturating) for ``fake`` as class ``y_fake``; with ``aux``, plus D
    classifying them as asked (each face's cross-entropy counted above ``aux_margin``)."""
    if not aux:
        return bce(netD(fake, y_fake), True)
    h_fake = netD.features(fake)
    ce = F.cross_entropy(netD.class_logits(h_fake), y_fake, reduction="none")
    return bce(netD.score(h_fake, y_fake), True) + aux * F.relu(ce - aux_margin).mean()


def build(recipe: Recipe, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    if recipe.model == "baseline":
        return (BaselineGenerator(BaselineGeneratorConfig(base_channels=recipe.channels)).to(device),
                BaselineDiscriminator(BaselineDiscriminatorConfig(base_channels=recipe.channels)).to(device))
    std = any(p.minibatch_std for p in recipe.phases)
    return (Generator(GeneratorConfig(base_channels=recipe.channels)).to(device),
            Discriminator(DiscriminatorConfig(base_channels=recipe.channels, minibatch_std=std)).to(device))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", choices=sorted(RECIPES), default="emoface")
    add_run_arguments(p, "runs/gan", "one step, then write every output")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    recipe = RECIPES[args.recipe]
    device = setup_cli(args.threads, args.device)
    out = Path(args.out)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    rng = seed_everything(args.seed)

    images, labels = fer2013.load(args.data, "Training")
    log.info("FER-2013 Training: %d faces, per class %s", len(labels), np.bincount(labels, minlength=7).tolist())
    data, targets = from_uint8(images), torch.from_numpy(labels)
    weights = torch.from_numpy(fer2013.balanced_sample_weights(labels) ** recipe.balance)
    provenance = {"dataset": "FER-2013", "split": "Training", "faces": int(len(labels)),
                  "fingerprint": fer2013.fingerprint(images, labels)}

    netG, netD = build(recipe, device)
    G_ema = copy.deepcopy(netG).eval()
    optG = torch.optim.Adam(netG.parameters(), lr=recipe.phases[0].lr, betas=(0.5, 0.999))
    optD = torch.optim.Adam(netD.parameters(), lr=recipe.phases[0].lr, betas=(0.5, 0.999))
    history: dict[str, list[float]] = {"loss_d": [], "loss_g": [], "d_real": [], "d_fake": []}
    modules = {"G": netG, "D": netD, "G_ema": G_ema, "opt_g": optG, "opt_d": optD}
    step, last = 0, out / "last.pt"
    if last.exists() and not args.dry_run:
        step, history = resume(last, modules, rng)

    def save() -> None:
        checkpoint.save(last, netD, labels=FER_CLASSES, data=provenance,
                        training_state=training_state(modules, step, history, rng))
        shipped = copy.deepcopy(G_ema if recipe.ema_decay else netG)
        standing_stats(shipped)
        checkpoint.save(out / "generator.pt", shipped, labels=FER_CLASSES, data=provenance,
                        metrics={"steps": step, "recipe": args.recipe, "phase": recipe.phases.index(recipe.phase(step - 1)) + 1})
        grid = FaceGenerator(shipped, device).sample_grid(GRID_SEEDS)  # the fixed seeds: the same noise every time
        grid.save(out / "samples" / f"step_{step:06d}.png")
        grid.save(out / "samples" / "latest.png")

    steps_per_epoch = max(1, len(labels) // recipe.batch_size)
    end = 1 if args.dry_run else min(args.steps or recipe.phases[-1].until, recipe.phases[-1].until)
    progress = Progress(history, steps_per_epoch, args.save_every_min, args.max_minutes)
    while step < end:
        phase = recipe.phase(step)
        for opt in (optG, optD):
            for group in opt.param_groups:
                group["lr"] = phase.lr
        netD.std_gate = float(phase.minibatch_std)
        idx = torch.multinomial(weights, recipe.batch_size, replacement=True, generator=rng)
        real, y_real = data[idx].to(device), targets[idx].to(device)
        flip = torch.rand(recipe.batch_size, generator=rng) < 0.5  # faces are left-right symmetric
        real = torch.where(flip.to(device)[:, None, None, None], real.flip(-1), real)
        z = torch.randn(recipe.batch_size, netG.config.latent_dim, generator=rng).to(device)
        y_fake = y_real if recipe.fake_labels == "real" else torch.randint(
            0, len(FER_CLASSES), (recipe.batch_size,), generator=rng).to(device)
        fake = netG(z, y_fake)

        # (1) update D: real faces scored real, generated ones fake; plus classifying real faces, and lazy R1
        errD, d_real, d_fake = discriminator_loss(netD, real, y_real, fake, y_fake, phase.aux,
                                                  recipe.r1 if step % R1_EVERY == 0 else 0.0)
        optD.zero_grad(set_to_none=True)
        errD.backward()
        optD.step()

        # (2) update G: its faces scored real, for the class asked; plus D classifying them as asked
        errG = generator_loss(netD, fake, y_fake, phase.aux, phase.aux_margin)
        optG.zero_grad(set_to_none=True)
        errG.backward()
        optG.step()
        if recipe.ema_decay:
            ema_update(G_ema, netG, recipe.ema_decay, step)

        step += 1
        progress.add([errD.item(), errG.item(), d_real.mean().item(), d_fake.mean().item()])
        if progress.after(step, end, f"phase {recipe.phases.index(phase) + 1}", save):
            break
    return progress.finish(out, step, "GAN losses per epoch")


if __name__ == "__main__":
    main()
