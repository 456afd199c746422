"""Judge face generators against real FER-2013 faces, in several expression classifiers' features.

    python -m ml.evaluate_gan --data ../shared/data/fer2013/fer2013.csv.gz \\
        --generator shipped=weights/generator.pt baseline=weights/eval/baseline_generator.pt --out runs/gan_eval

Each ``--generator`` (``name=path``; ``name=path@scale`` draws every class from ``scale`` x z
instead of the file's own drawing) draws ``--per-class`` faces per emotion from seeds
``--first-seed`` on. Each ``--judge`` (a classifier trained by ``ml.train_judge``, never by
the generator's recipe) then reports, against the real faces of ``--split``:

* recognisability: the judge's accuracy per requested emotion; floor: its recall on the real faces;
* realism: the Frechet distance (FD) and the kernel distance (KID) between the judge's features
  of generated and real faces, each emotion counting with its share of the real faces; floor:
  the same distance from the other test split's real faces;
* diversity: mean pairwise feature distance within each emotion, generated / real; floor: the
  other split's real faces / these;
* identity: for one seed drawn as all 7 emotions, the pixel distance at 12x12 between its faces
  over that between different seeds of one emotion (pixels, so one figure for all judges;
  FER-2013 has no identities, so no real floor);
* precision and recall (k-nearest-neighbour manifolds, ``face_metrics.precision_recall``): the
  share of generated faces that fall among real ones, and of real faces covered by generated ones;
* realness, judged by no expression classifier: a small CNN trained fresh (``ml.realness``) on
  ``--realness-train`` real faces of the Training split and as many generated faces of other seeds
  (``TRAIN_SEEDS``), tested on the split's real faces and the faces drawn here: its accuracy and the
  share of generated faces it is over 90% sure about, with the 32 it is surest about as a contact
  sheet (``surest_<generator>.png``). Trained on half of the split's 3,589 faces instead, it could
  not tell the shipped generator's faces from real ones (53%); more real faces make it a sharper judge,
  and so do more epochs: ``--realness-epochs`` is 30, where 10 left it unsure of every face and 30
  made it over 90% sure of 95.9% of the shipped generator's (``docs/experiments/gan.md``, 2026-12-06).

Generated faces enter precision, recall and realness in the real faces' class proportions
(``face_metrics.share_sample``). ``--sheet PATH`` also draws the first generator's fixed-seed
sheet: the 8 emotions (calm as neutral) by seeds 0-15, at 96 px as ``/generate?size=96`` resizes.

The rule against tuning on the instrument that reports: choices about training or drawing are
made with the ``vgg`` judge (``weights/eval/fer_classifier.pt``) on PublicTest with seeds from
1,000,000 up (``--split PublicTest --judge vgg=weights/eval/fer_classifier.pt --first-seed 1000000``),
and reported on PrivateTest, seeds 0 up, by the other judges. Writes ``gan_eval.json`` and
``gan_eval.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from ml import checkpoint, plots
from ml.data import fer2013
from ml.face_metrics import (classify, frechet_distance, identity_ratio, kernel_distance, label_weights,
                             mean_pairwise, mean_present, per_class_recall, precision_recall, share_sample)
from ml.enlarge import Enlarger
from ml.generate import FaceGenerator
from ml.labels import EMOTIONS, FER_CLASSES, fer_index
from ml.metrics import write_report
from ml.realness import two_sample_test
from ml.runtime import setup_cli

log = logging.getLogger(__name__)
SPLITS = ("PublicTest", "PrivateTest")
JUDGES = ("vgg=weights/eval/fer_classifier.pt", "resnet=weights/eval/fer_judge_resnet.pt", "k5=weights/eval/fer_judge_k5.pt")
CHOOSING_JUDGE = "vgg"
#: The realness classifier's generated training faces come from seeds this far past the evaluated ones.
TRAIN_SEEDS = 2**31
SHEET_SEEDS, SHEET_SIZE = 16, 96


def named(spec: str) -> tuple[str, str]:
    name, _, path = spec.rpartition("=")
    return name or Path(path.split("@")[0]).stem, path


def draw_faces(spec: str, n: int, first_seed: int) -> tuple[np.ndarray, dict]:
    """Faces (7, n, 48, 48) uint8, row c drawn as class c from seeds first_seed..first_seed+n-1."""
    path, _, scale = spec.partition("@")
    gen, loaded = FaceGenerator.from_checkpoint(path)
    if scale:
        gen.drawing = gen.drawing.with_scale(float(scale))
    seeds = np.arange(first_seed, first_seed + n)
    faces = np.stack([np.concatenate([gen.render([c] * len(s), s.tolist()) for s in np.array_split(seeds, max(1, n // 256))])
                      for c in range(len(FER_CLASSES))])
    return faces, {"path": path, "sha256": loaded.sha256, "latent_scale": float(scale) if scale else None}


def judge_real(judge, x: np.ndarray, y: np.ndarray, other_x: np.ndarray, other_y: np.ndarray) -> tuple[dict, np.ndarray]:
    """The judge on the real faces of the split, and the real-vs-real floors from the other
    split; with the judge's features of the split's faces, which generated faces are compared with."""
    pred, feat = classify(judge, x)
    _, other_feat = classify(judge, other_x)
    share = np.bincount(y, minlength=len(FER_CLASSES)) / len(y)
    other_w = label_weights(other_y, share)
    diversity = {name: mean_pairwise(feat[y == c]) for c, name in enumerate(FER_CLASSES)}
    other_div = {name: mean_pairwise(other_feat[other_y == c]) / max(diversity[name], 1e-8)
                 for c, name in enumerate(FER_CLASSES)}
    recall = per_class_recall(pred, y)
    return {"recall": recall, "accuracy_mean": mean_present(recall.values()), "accuracy": float((pred == y).mean()),
            "share": share.tolist(),
            "fd_floor": frechet_distance(other_feat, feat, other_w), "kid_floor": kernel_distance(other_feat, feat, other_w),
            "diversity": diversity, "diversity_floor": other_div, "diversity_floor_min": min(other_div.values())}, feat


def judge_faces(judge, faces: np.ndarray, real: dict, real_feat: np.ndarray, mixed: np.ndarray) -> dict:
    """``mixed``: indices into the flattened faces in the real faces' class proportions."""
    k, n = faces.shape[:2]
    pred, feat = classify(judge, faces.reshape(k * n, 48, 48))
    labels = np.repeat(np.arange(k), n)
    precision, recall = precision_recall(real_feat, feat[mixed])
    weights = label_weights(labels, np.asarray(real["share"]))
    accuracy = {name: float((pred[labels == c] == c).mean()) for c, name in enumerate(FER_CLASSES)}
    diversity = {name: mean_pairwise(feat[labels == c]) / max(real["diversity"][name], 1e-8)
                 for c, name in enumerate(FER_CLASSES)}
    return {"accuracy": accuracy, "accuracy_mean": float(np.mean(list(accuracy.values()))),
            "accuracy_min": min(accuracy.values()), "fd": frechet_distance(feat, real_feat, weights),
            "kid": kernel_distance(feat, real_feat, weights), "diversity": diversity,
            "diversity_min": min(diversity.values()), "precision": precision, "recall": recall}


def realness(path: str, faces: np.ndarray, mixed: np.ndarray, x: np.ndarray, train_x: np.ndarray,
             train_y: np.ndarray, first_seed: int, rng: np.random.Generator, out: Path, name: str,
             epochs: int, enlarger: Enlarger) -> dict:
    """The two-sample test: trained on real faces ``train_x`` (of the Training split) and as many
    generated faces of other seeds in their class mix, tested on the split's real faces ``x`` and
    the evaluated faces (``mixed``)."""
    k = faces.shape[0]
    share = np.bincount(train_y, minlength=k) / len(train_y)
    per_class = int(np.ceil(len(train_x) * share.max()))
    train_faces, _ = draw_faces(path, per_class, first_seed + TRAIN_SEEDS)
    train_mixed = share_sample(np.repeat(np.arange(k), per_class), share, rng)
    flat = faces.reshape(k * faces.shape[1], 48, 48)
    r = two_sample_test(train_x, train_faces.reshape(k * per_class, 48, 48)[train_mixed], x, flat[mixed],
                        epochs=epochs)
    surest = flat[mixed][np.argsort(-r.fake_probability, kind="stable")[:32]]
    big = enlarger.enlarge(surest, SHEET_SIZE)
    rows = -(-len(big) // 8)
    big = np.concatenate([big, np.full((rows * 8 - len(big), SHEET_SIZE, SHEET_SIZE), 255, np.uint8)])  # white past the last
    plots.image_grid(big, rows, 8).save(out / f"surest_{name}.png")
    return {"accuracy": r.accuracy, "sure_share": r.sure_share, "train_real": len(train_x),
            "train_generated": len(train_mixed), "test_real": len(x), "test_generated": len(mixed), "epochs": epochs}


def fixed_seed_sheet(path: str, target: Path, enlarger: Enlarger) -> None:
    """The 8 emotions (rows; calm is drawn as neutral) by seeds 0-15, each face at 96 px as
    ``/generate?size=96`` enlarges it."""
    gen, _ = FaceGenerator.from_checkpoint(path.partition("@")[0])
    faces = gen.render([fer_index(e) for e in EMOTIONS for _ in range(SHEET_SEEDS)], list(range(SHEET_SEEDS)) * len(EMOTIONS))
    big = enlarger.enlarge(faces, SHEET_SIZE)
    target.parent.mkdir(parents=True, exist_ok=True)
    plots.image_grid(big, len(EMOTIONS), SHEET_SEEDS, row_labels=list(EMOTIONS)).save(target)


def evaluate(args: argparse.Namespace) -> dict:
    other = SPLITS[1 - SPLITS.index(args.split)]
    x, y = fer2013.load(args.data, args.split)
    ox, oy = fer2013.load(args.data, other)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    drawn, mixed = {}, {}
    result: dict = {"split": args.split, "floor_split": other, "per_class": args.per_class,
                    "first_seed": args.first_seed, "generators": {}, "judges": {}}
    share = np.bincount(y, minlength=len(FER_CLASSES)) / len(y)
    tx, ty = fer2013.load(args.data, "Training")
    pick = np.random.default_rng(0).permutation(len(tx))[:args.realness_train]
    enlarger, _ = Enlarger.from_checkpoint(args.upsampler)
    tx, ty = tx[pick], ty[pick]
    for spec in args.generator:
        name, path = named(spec)
        faces, info = draw_faces(path, args.per_class, args.first_seed)
        rng = np.random.default_rng(0)
        drawn[name] = faces
        mixed[name] = share_sample(np.repeat(np.arange(len(FER_CLASSES)), args.per_class), share, rng)
        result["generators"][name] = {**info, "identity_ratio": identity_ratio(faces),
                                      "realness": realness(path, faces, mixed[name], x, tx, ty, args.first_seed, rng, out, name,
                                                           args.realness_epochs, enlarger)}
        log.info("realness %s: %s", name, result["generators"][name]["realness"])
    if args.sheet:
        fixed_seed_sheet(named(args.generator[0])[1], Path(args.sheet), enlarger)
    for spec in args.judge:
        name, path = named(spec)
        loaded = checkpoint.load(path, arch="fer-classifier", labels=FER_CLASSES)
        real, real_feat = judge_real(loaded.model, x, y, ox, oy)
        scores = {g: judge_faces(loaded.model, faces, real, real_feat, mixed[g]) for g, faces in drawn.items()}
        result["judges"][name] = {"path": path, "sha256": loaded.sha256, "real": real, "generators": scores}
        log.info("judge %s: %s", name, {g: (round(s["accuracy_mean"], 3), round(s["fd"], 2)) for g, s in scores.items()})
    write_report(out, "gan_eval", result, markdown(result))
    return result


def markdown(result: dict) -> str:
    """One summary table (rows: judge x figure; columns: generators, then the real-vs-real floor),
    then each judge's accuracy per emotion."""
    names = list(result["generators"])
    head = "| judge | figure | " + " | ".join(f"`{n}`" for n in names) + f" | real faces ({result['floor_split']}) |"
    rows = [head, "|---|---|" + "---:|" * (len(names) + 1)]
    for j, r in result["judges"].items():
        g, real = r["generators"], r["real"]
        mark = f"{j} (chooses)" if j == CHOOSING_JUDGE else j
        rows += [
            f"| {mark} | accuracy, mean of 7 | " + " | ".join(f"{g[n]['accuracy_mean']:.1%}" for n in names)
            + f" | {real['accuracy_mean']:.1%} (recall on {result['split']}) |",
            f"| {j} | accuracy, lowest emotion | " + " | ".join(
                f"{g[n]['accuracy_min']:.1%} {min(g[n]['accuracy'], key=g[n]['accuracy'].get)}" for n in names) + " | |",
            f"| {j} | FD | " + " | ".join(f"{g[n]['fd']:.2f}" for n in names) + f" | {real['fd_floor']:.2f} |",
            f"| {j} | KID x 1000 | " + " | ".join(f"{1000 * g[n]['kid']:.2f}" for n in names)
            + f" | {1000 * real['kid_floor']:.2f} |",
            f"| {j} | diversity vs real, lowest emotion | " + " | ".join(f"{g[n]['diversity_min']:.0%}" for n in names)
            + f" | {real['diversity_floor_min']:.0%} |",
            f"| {j} | precision / recall | " + " | ".join(f"{g[n]['precision']:.2f} / {g[n]['recall']:.2f}" for n in names)
            + " | |",
        ]
    rows.append("| (pixels) | identity ratio | " + " | ".join(
        f"{result['generators'][n]['identity_ratio']:.2f}" for n in names) + " | |")
    epochs = {result["generators"][n]["realness"]["epochs"] for n in names}
    rows.append(f"| realness CNN ({'/'.join(map(str, sorted(epochs)))} epochs) | accuracy, real vs generated (0.5: cannot tell) | " + " | ".join(
        f"{result['generators'][n]['realness']['accuracy']:.3f}" for n in names) + " | |")
    rows.append("| realness CNN | generated faces it is over 90% sure of | " + " | ".join(
        f"{result['generators'][n]['realness']['sure_share']:.1%}" for n in names) + " | |")
    text = "\n".join(rows) + "\n"
    for j, r in result["judges"].items():
        text += f"\nJudge `{j}`, accuracy per requested emotion:\n\n| emotion | " + " | ".join(f"`{n}`" for n in names) \
            + " | real faces |\n|---|" + "---:|" * (len(names) + 1) + "\n"
        for c in FER_CLASSES:
            recall = r["real"]["recall"][c]
            text += f"| {c} | " + " | ".join(f"{r['generators'][n]['accuracy'][c]:.1%}" for n in names) \
                + (" | no real faces |\n" if recall is None else f" | {recall:.1%} |\n")
    first, n = result["first_seed"], result["per_class"]
    return text + (f"\n{n} faces per emotion (seeds {first}-{first + n - 1}) against the {result['split']} faces; "
                   f"each emotion counts with its share of them in FD and KID.\n")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="fer2013.csv or fer2013.csv.gz")
    p.add_argument("--generator", nargs="+", default=["shipped=weights/generator.pt"],
                   help="name=path or name=path@scale, one or more")
    p.add_argument("--judge", nargs="+", default=list(JUDGES), help="name=path of classifiers from ml.train_judge")
    p.add_argument("--split", choices=SPLITS, default="PrivateTest",
                   help="the real faces to compare with: PublicTest to choose, PrivateTest to report")
    p.add_argument("--per-class", type=int, default=500)
    p.add_argument("--first-seed", type=int, default=0, help="faces are drawn from seeds first..first+n-1")
    p.add_argument("--out", default="runs/gan_eval")
    p.add_argument("--realness-train", type=int, default=12000,
                   help="real Training faces the realness classifier learns from (and as many generated)")
    p.add_argument("--realness-epochs", type=int, default=30,
                   help="its training epochs (10 leave it a weak judge; docs/experiments/gan.md)")
    p.add_argument("--sheet", help="also draw the first generator's fixed-seed sheet (8 emotions x 16 seeds, 96 px) here")
    p.add_argument("--upsampler", default="weights/upsampler.pt", help="enlarges the sheets' faces to 96 px (ml.enlarge)")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    setup_cli(args.threads, "cpu")
    return evaluate(args)


if __name__ == "__main__":
    main()
