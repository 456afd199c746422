"""Does the learned 2x upsampler enlarge faces better than Lanczos? Judged on real faces it never saw.

    python -m ml.evaluate_upsampler --data ../shared/data --upsampler weights/upsampler.pt --out runs/upsampler_eval

* **London, 48 -> 96 px** (the scale the service uses, which the network never trained at): each
  of the London set's photos (``DATA/london``), its face found and aligned as ``ml.edit`` does,
  cropped at 96 px (below the photos' own resolution, so the crop holds real detail), reduced to
  48 px by area averaging, then enlarged back by Lanczos (the service's enlargement before the
  network) and by the network. PSNR and SSIM against the 96 px crop.
* **London, 48 -> 192 px**: the same with 192 px crops (faces at least 192 px wide), Lanczos
  against ``ml.enlarge``'s rule (the network to 96 px, then Lanczos) and against the network run twice.
* **FER-2013 PrivateTest, 24 -> 48 px**: the trained scale, on faces it never saw.

Nothing here chose the network's settings (they were fixed before any of these figures). Writes
``upsampler_eval.json``, ``upsampler_eval.md``, ``london.png`` (rows: the crop, Lanczos, the
network) and ``generated.png`` (the shipped generator's faces, Lanczos above, the network below).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ml import plots
from ml.data import fer2013
from ml.edit import FaceFinder, luma
from ml.enlarge import Enlarger, lanczos
from ml.evaluate_editor import aligned
from ml.generate import FaceGenerator
from ml.labels import FER_CLASSES
from ml.metrics import write_report
from ml.runtime import setup_cli
from ml.train_upsampler import reduce

def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over images of the PSNR (dB) between uint8 images (N, H, W)."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean((1, 2))
    return float(np.mean(10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10))))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over images of SSIM (Wang et al. 2004: Gaussian window, sigma 1.5; 5 px border left out)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(v: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(v, (11, 11), 1.5)

    values = []
    for x, y in zip(a.astype(np.float64), b.astype(np.float64)):
        mx, my = blur(x), blur(y)
        sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        values.append(m[5:-5, 5:-5].mean())
    return float(np.mean(values))


def london_crops(folder: Path, size: int) -> np.ndarray:
    """The aligned grey face crops (N, size, size) of the photos whose face is at least ``size`` px wide."""
    finder, crops = FaceFinder(), []
    for path in sorted(folder.glob("*.jpg")):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        face = finder.find(luma(rgb))
        if face is not None and face.side >= size:
            crops.append(aligned(rgb, face, size))
    return np.stack(crops)


def scores(truth: np.ndarray, **ways: np.ndarray) -> dict:
    return {"faces": len(truth), **{name: {"psnr_db": psnr(img, truth), "ssim": ssim(img, truth)} for name, img in ways.items()}}


def evaluate(args: argparse.Namespace) -> dict:
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    enlarger, loaded = Enlarger.from_checkpoint(args.upsampler)
    result: dict = {"upsampler": args.upsampler, "sha256": loaded.sha256}
    truth = london_crops(data / "london", 96)
    small = reduce(truth, 48)
    lz, nw = lanczos(small, 96), enlarger.learned(small)
    result["london_48_to_96"] = scores(truth, lanczos=lz, network=nw)
    plots.image_grid(np.concatenate([truth[:12], lz[:12], nw[:12]]), 3, 12,
                     row_labels=["96 px crop", "Lanczos", "network"]).save(out / "london.png")
    truth = london_crops(data / "london", 192)
    small = reduce(truth, 48)
    result["london_48_to_192"] = scores(truth, lanczos=lanczos(small, 192), network_then_lanczos=enlarger.enlarge(small, 192),
                                        network_twice=enlarger.learned(enlarger.learned(small)))
    test, _ = fer2013.load(data / "fer2013" / "fer2013.csv.gz", "PrivateTest")
    small = reduce(test, 24)
    result["fer_privatetest_24_to_48"] = scores(test, lanczos=lanczos(small, 48), network=enlarger.learned(small))
    gen, _ = FaceGenerator.from_checkpoint(args.generator)
    faces = gen.render(list(range(len(FER_CLASSES))) * 2, [0] * 7 + [1] * 7)
    plots.image_grid(np.concatenate([lanczos(faces, 96), enlarger.enlarge(faces, 96)]), 2, 14,
                     row_labels=["Lanczos", "network"]).save(out / "generated.png")
    write_report(out, "upsampler_eval", result, markdown(result))
    return result


def markdown(result: dict) -> str:
    rows = ["| faces (how many) | enlarged by | PSNR (dB) | SSIM |", "|---|---|---:|---:|"]
    for key, label in (("london_48_to_96", "London, 48 -> 96 px"), ("london_48_to_192", "London, 48 -> 192 px"),
                       ("fer_privatetest_24_to_48", "FER-2013 PrivateTest, 24 -> 48 px")):
        r = result[key]
        for way, s in r.items():
            if way != "faces":
                rows.append(f"| {label} ({r['faces']}) | {way.replace('_', ' ')} | {s['psnr_db']:.2f} | {s['ssim']:.4f} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the shared data folder (london/ and fer2013/ under it)")
    p.add_argument("--upsampler", default="weights/upsampler.pt")
    p.add_argument("--generator", default="weights/generator.pt", help="whose faces the sheet enlarges")
    p.add_argument("--out", default="runs/upsampler_eval")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    setup_cli(args.threads, "cpu")
    return evaluate(args)


if __name__ == "__main__":
    main()
