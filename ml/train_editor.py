"""Train the expression editor on FER-2013, in the manner of pytorch/examples' dcgan (resumable).

    # the shipped editor, from scratch
    python -m ml.train_editor --data ../shared/data/fer2013/fer2013.csv.gz --out runs/editor
    python -m ml.train_editor --data ../shared/data/fer2013/fer2013.csv.gz --out runs/dry/editor --dry-run

StarGAN's recipe (Choi et al. 2018) with GANimation's mask (Pumarola et al. 2018), on the face
GAN's discriminator and losses (``ml.train_gan.discriminator_loss`` / ``generator_loss``). Each
step (1) updates D on a real batch (scored real for its own class, and classified) and the
batch edited to random target classes (scored fake for the target); then (2) updates the
editor E: its edits scored real and classified as the target by D, plus

* cycle: editing the edit back to the face's own class gives the face back (L1, weight ``cycle``);
* identity: editing a face to its own class changes nothing (L1, weight ``identity``);
* mask: the mean of the mask (weight ``mask``) and its total variation (``mask_tv``), so an edit
  touches only what the expression needs, in smooth regions;
* smoothness: the total variation of the change itself (``change_tv``), against dot patterns.

D's classifier is warmed up alone first (``warmup`` steps of classifying real faces): without
it, E learnt to change nothing (mask 0.02 after 600 steps) before D's classes meant anything, and
the mask's weight ramps up after it. Real faces are sampled with weights 1/sqrt(class count), targets uniformly; left-right flips.
What ships is an exponential moving average of E's weights. No label of PublicTest or
PrivateTest is used: PublicTest chooses (``ml.evaluate_editor``), PrivateTest reports.

Every run writes, under ``--out``: ``last.pt`` (resume state), ``editor.pt`` (the shipped
format), ``samples/step_NNNNNN.png`` (fixed PublicTest faces, rows: the face then its 7 edits),
``losses.png`` and ``history.json``.
"""

from __future__ import annotations

import argparse
import copy
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from ml import checkpoint
from ml.data import fer2013
from ml.labels import FER_CLASSES
from ml.models.editor import Editor, EditorConfig
from ml.models.gan import Discriminator, DiscriminatorConfig, from_uint8, to_uint8
from ml.progress import Progress, add_run_arguments, resume, training_state
from ml.runtime import seed_everything, setup_cli
from ml.train_gan import R1_EVERY, discriminator_loss, ema_update, generator_loss

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EditorRecipe:
    steps: int = 15_000
    batch_size: int = 16
    lr: float = 2e-4
    aux: float = 1.0  # D's classification of the edits as the target
    cycle: float = 10.0
    identity: float = 5.0
    mask: float = 0.1  # reached by a linear ramp over mask_ramp steps after the warm-up
    mask_ramp: int = 4_000
    mask_tv: float = 0.5
    change_tv: float = 2.0  # total variation of the change (edit minus face): smooth changes, no dot patterns
    warmup: int = 2_000  # D alone learns to classify real faces first, so its classes mean something to E
    r1: float = 0.05
    ema_decay: float = 0.999
    balance: float = 0.5
    channels: int = 16  # E's and D's width at 48x48
    res_blocks: int = 2


RECIPE = EditorRecipe()  # the shipped file's
LOG_EVERY = 200
SAMPLE_FACES = 8  # PublicTest faces in the samples grid: the first of each class, then the next


def total_variation(m: torch.Tensor) -> torch.Tensor:
    return (m[..., 1:, :] - m[..., :-1, :]).abs().mean() + (m[..., :, 1:] - m[..., :, :-1]).abs().mean()


@torch.no_grad()
def sample_grid(editor: Editor, faces: torch.Tensor) -> Image.Image:
    """Rows: each face, then its edit to each class in FER order."""
    editor.eval()
    rows = [faces] + [editor(faces, torch.full((len(faces),), k, dtype=torch.long)) for k in range(len(FER_CLASSES))]
    grid = torch.stack(rows, 1)  # (N, 8, 1, 48, 48)
    n, k = grid.shape[:2]
    pixels = to_uint8(grid.reshape(n * k, 1, 48, 48)).reshape(n, k, 48, 48).permute(0, 2, 1, 3).reshape(n * 48, k * 48)
    return Image.fromarray(pixels.numpy(), "L")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p, "runs/editor", "two steps (one of the warm-up), then write every output")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    recipe = RECIPE
    device = setup_cli(args.threads, args.device)
    out = Path(args.out)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    rng = seed_everything(args.seed)

    images, labels = fer2013.load(args.data, "Training")
    data, targets = from_uint8(images), torch.from_numpy(labels)
    weights = torch.from_numpy(fer2013.balanced_sample_weights(labels) ** recipe.balance)
    provenance = {"dataset": "FER-2013", "split": "Training", "faces": int(len(labels)),
                  "fingerprint": fer2013.fingerprint(images, labels), "recipe": asdict(recipe)}
    public, public_y = fer2013.load(args.data, "PublicTest")
    firsts = [int(np.flatnonzero(public_y == k)[0]) for k in range(len(FER_CLASSES)) if (public_y == k).any()]
    pick = (firsts + [i for i in range(len(public_y)) if i not in firsts])[:SAMPLE_FACES]
    fixed = from_uint8(public[pick])

    netE = Editor(EditorConfig(base_channels=recipe.channels, res_blocks=recipe.res_blocks)).to(device)
    netD = Discriminator(DiscriminatorConfig(base_channels=recipe.channels)).to(device)
    E_ema = copy.deepcopy(netE).eval()
    optE = torch.optim.Adam(netE.parameters(), lr=recipe.lr, betas=(0.5, 0.999))
    optD = torch.optim.Adam(netD.parameters(), lr=recipe.lr, betas=(0.5, 0.999))
    history: dict[str, list[float]] = {"loss_d": [], "loss_e": [], "adv_cls": [], "cycle": [], "identity": [],
                                       "mask": [], "d_fake_acc": []}
    modules = {"E": netE, "D": netD, "E_ema": E_ema, "opt_e": optE, "opt_d": optD}
    step, last = 0, out / "last.pt"
    if last.exists() and not args.dry_run:
        step, history = resume(last, modules, rng)

    def save() -> None:
        checkpoint.save(last, netD, labels=FER_CLASSES, data=provenance,
                        training_state=training_state(modules, step, history, rng))
        checkpoint.save(out / "editor.pt", E_ema, labels=FER_CLASSES, data=provenance, metrics={"steps": step})
        grid = sample_grid(E_ema, fixed.to(device))
        grid.save(out / "samples" / f"step_{step:06d}.png")
        grid.save(out / "samples" / "latest.png")

    if args.dry_run:  # one warm-up step and one full step
        recipe = replace(recipe, warmup=1)
    end = 2 if args.dry_run else min(args.steps or recipe.steps, recipe.steps)
    progress = Progress(history, LOG_EVERY, args.save_every_min, args.max_minutes)
    netE.train()
    while step < end:
        idx = torch.multinomial(weights, recipe.batch_size, replacement=True, generator=rng)
        real, y_src = data[idx].to(device), targets[idx].to(device)
        flip = torch.rand(recipe.batch_size, generator=rng) < 0.5
        real = torch.where(flip.to(device)[:, None, None, None], real.flip(-1), real)
        y_trg = torch.randint(0, len(FER_CLASSES), (recipe.batch_size,), generator=rng).to(device)
        if step < recipe.warmup:  # D's classifier alone
            errD = F.cross_entropy(netD.class_logits(netD.features(real)), y_src)
            optD.zero_grad(set_to_none=True)
            errD.backward()
            optD.step()
            step += 1
            if step % LOG_EVERY == 0:
                log.info("step %d/%d: D warm-up, real-face cross-entropy %.4f", step, end, errD.item())
            continue
        fake, mask = netE(real, y_trg, return_mask=True)

        # (1) update D
        errD, _, _ = discriminator_loss(netD, real, y_src, fake, y_trg, recipe.aux,
                                        recipe.r1 if step % R1_EVERY == 0 else 0.0)
        optD.zero_grad(set_to_none=True)
        errD.backward()
        optD.step()

        # (2) update E
        adv = generator_loss(netD, fake, y_trg, recipe.aux)
        cycle = (netE(fake, y_src) - real).abs().mean()
        identity = (netE(real, y_src) - real).abs().mean()
        mask_loss = mask.mean() + recipe.mask_tv * total_variation(mask)
        smooth = total_variation(fake - real)
        ramp = min(1.0, (step - recipe.warmup) / recipe.mask_ramp)
        errE = (adv + recipe.cycle * cycle + recipe.identity * identity + ramp * recipe.mask * mask_loss
                + recipe.change_tv * smooth)
        optE.zero_grad(set_to_none=True)
        errE.backward()
        optE.step()
        ema_update(E_ema, netE, recipe.ema_decay, step)
        with torch.no_grad():
            fake_acc = (netD.class_logits(netD.features(fake)).argmax(1) == y_trg).float().mean()

        step += 1
        progress.add([errD.item(), errE.item(), adv.item(), cycle.item(), identity.item(), mask.mean().item(),
                      fake_acc.item()])
        if progress.after(step, end, f"{progress.elapsed():.0f} s in", save):
            break
    return progress.finish(out, step, f"editor losses per {LOG_EVERY} steps")


if __name__ == "__main__":
    main()
