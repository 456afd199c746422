"""Evaluate an expression editor: does the expression change, and does the person stay?

    # the card's figures (reporting judges resnet and k5; PrivateTest) and its London sheet
    python -m ml.evaluate_editor --data ../shared/data --out runs/editor_eval --sheet weights/editor_london.png
    # choosing (the vgg judge on PublicTest only)
    python -m ml.evaluate_editor --data ../shared/data --split PublicTest --judge vgg=weights/eval/fer_classifier.pt \\
        --no-london --out runs/editor_choose

Figures, written to ``editor_eval.json`` and ``editor_eval.md`` under ``--out``:

* **FER-2013**: every face of the split edited to each of the 7 classes; each judge's share of the
  edits it classifies as the target, per target and the mean over targets (all faces, and only
  faces whose own label differs from the target); and the judge's accuracy on the unedited faces.
* **London set** (``<data>/london``, 51 people, neutral and smiling photos): each neutral photo
  edited to happy through the service's path (``ml.edit.edit_photo`` on the whole photo); the
  judges' happy share of its face crop, of the neutral photo's and of the real smile's.
* **Identity** (London): is the edited photo's face closer to the same person's real smiling face
  than to any other person's? The measure is LBPH, local binary pattern histograms (Ahonen,
  Hadid and Pietikainen 2006): uniform 8-neighbour LBP codes of the aligned 96 px grey crop,
  histogrammed in a 7x7 grid, compared by chi-square distance. It is a classical face
  identification descriptor that reads skin texture and the layout of features, not expression
  classes; no network of this project trained on it. Rank-1 rate over the 51 people, for the
  edited photos and, as the reference, the unedited neutral ones. Also the largest change of any
  pixel outside the face box (must be 0).
* ``london_sheet.png`` (or ``--sheet``): for the first 6 people, neutral, edited to happy, real smile (crops).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from ml import checkpoint
from ml.data import fer2013
from ml.edit import CROP, ExpressionEditor, Face, FaceFinder, aligned_crop, edit_photo, luma
from ml.evaluate_gan import CHOOSING_JUDGE, JUDGES, named
from ml.face_metrics import classify
from ml.labels import FER_CLASSES
from ml.metrics import write_report
from ml.models.fer_classifier import FERClassifier
from ml.photo import load_photo
from ml.runtime import setup_cli

log = logging.getLogger(__name__)
ID_SIZE, ID_GRID = 96, 7
HAPPY = FER_CLASSES.index("happy")


def edit_split(editor: ExpressionEditor, faces: np.ndarray) -> np.ndarray:
    """(7, N, 48, 48) uint8: every face edited to each class, one face per call as the service does."""
    out = np.empty((len(FER_CLASSES), *faces.shape), np.uint8)
    for k in range(len(FER_CLASSES)):
        for i in range(len(faces)):
            out[k, i] = np.rint(editor.edit_crops(faces[i:i + 1].astype(np.float32), [k])[0]).astype(np.uint8)
    return out


def judge_edits(judge: FERClassifier, edits: np.ndarray, faces: np.ndarray, labels: np.ndarray) -> dict:
    per_target, other = {}, {}
    for k, name in enumerate(FER_CLASSES):
        pred, _ = classify(judge, edits[k])
        per_target[name] = float((pred == k).mean())
        other[name] = float((pred[labels != k] == k).mean())
    real_pred, _ = classify(judge, faces)
    return {"per_target": per_target, "mean": float(np.mean(list(per_target.values()))),
            "mean_other_source": float(np.mean(list(other.values()))),
            "real_accuracy": float((real_pred == labels).mean())}


def lbp_histogram(grey: np.ndarray) -> np.ndarray:
    """Uniform LBP (8 neighbours, radius 1) histograms over a ID_GRID x ID_GRID grid, each normalised."""
    g = grey.astype(np.int16)
    c = g[1:-1, 1:-1]
    offsets = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))
    bits = np.stack([(g[1 + dy:g.shape[0] - 1 + dy, 1 + dx:g.shape[1] - 1 + dx] >= c) for dy, dx in offsets], -1)
    transitions = (bits != np.roll(bits, 1, -1)).sum(-1)
    ones = bits.sum(-1)
    labels = np.where(transitions <= 2, ones, 9)  # 9 uniform patterns by their number of ones, the rest as one bin
    h, w = labels.shape
    hist = []
    for i in range(ID_GRID):
        for j in range(ID_GRID):
            cell = labels[i * h // ID_GRID:(i + 1) * h // ID_GRID, j * w // ID_GRID:(j + 1) * w // ID_GRID]
            counts = np.bincount(cell.ravel(), minlength=10).astype(np.float64)
            hist.append(counts / max(counts.sum(), 1))
    return np.concatenate(hist)


def chi_square(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a - b) ** 2 / (a + b + 1e-10)).sum())


def aligned(rgb: np.ndarray, face: Face, size: int) -> np.ndarray:
    """The face's aligned grey crop at ``size`` px (uint8), as the editor sees it at 48."""
    return np.clip(np.rint(aligned_crop(luma(rgb), face, size)), 0, 255).astype(np.uint8)


def london(editor: ExpressionEditor, folder: Path, judges: dict, sheet_path: Path) -> dict:
    finder = FaceFinder()
    ids = sorted({p.name.split("_")[0] for p in folder.glob("*_neutral.jpg")} &
                 {p.name.split("_")[0] for p in folder.glob("*_smiling.jpg")})
    crops = {"neutral": [], "edited": [], "smiling": []}
    ident = {"neutral": [], "edited": [], "smiling": []}
    kept, outside_max, sheet = [], 0, []
    for pid in ids:
        neutral = load_photo((folder / f"{pid}_neutral.jpg").read_bytes()).rgb
        smiling = load_photo((folder / f"{pid}_smiling.jpg").read_bytes()).rgb
        f_n, f_s = finder.find(luma(neutral)), finder.find(luma(smiling))
        if f_n is None or f_s is None:
            log.warning("London %s: no face found in the %s photo; left out", pid, "neutral" if f_n is None else "smiling")
            continue
        edited, face = edit_photo(editor, finder, neutral, "happy")
        box = np.zeros(neutral.shape[:2], bool)
        half = face.side / 2 * 2 ** 0.5  # the rotated box lies inside this square
        box[max(0, int(face.cy - half)):int(face.cy + half) + 2, max(0, int(face.cx - half)):int(face.cx + half) + 2] = True
        outside_max = max(outside_max, int(np.abs(edited.astype(int) - neutral)[~box].max(initial=0)))
        kept.append(pid)
        for key, rgb, f in (("neutral", neutral, f_n), ("edited", edited, f_n), ("smiling", smiling, f_s)):
            crops[key].append(aligned(rgb, f, CROP))
            ident[key].append(lbp_histogram(aligned(rgb, f, ID_SIZE)))
        if len(sheet) < 6:
            sheet.append(np.concatenate([aligned(x, f, ID_SIZE) for x, f in ((neutral, f_n), (edited, f_n), (smiling, f_s))], 1))
    if sheet:
        Image.fromarray(np.concatenate(sheet, 0)).save(sheet_path)
    happy = {name: {key: float((classify(j, np.stack(v))[0] == HAPPY).mean()) for key, v in crops.items()}
             for name, j in judges.items()}

    def rank1(key: str) -> float:
        d = np.array([[chi_square(a, b) for b in ident["smiling"]] for a in ident[key]])
        return float((d.argmin(1) == np.arange(len(d))).mean())

    return {"people": len(kept), "left_out": sorted(set(ids) - set(kept)), "happy_share": happy,
            "identity_rank1": {"edited": rank1("edited"), "neutral (unedited)": rank1("neutral")},
            "outside_box_max_change": outside_max}


def markdown(result: dict) -> str:
    lines = [f"Editor `{result['editor']}` (sha256 `{result['sha256'][:12]}`), FER-2013 {result['split']} "
             f"({result['faces']} faces), judges: {', '.join(result['judges'])} ({CHOOSING_JUDGE} chooses).", "",
             "| judge | " + " | ".join(FER_CLASSES) + " | mean | mean, other source | real faces |",
             "|---|" + "---|" * (len(FER_CLASSES) + 3)]
    for name, r in result["fer"].items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * r['per_target'][c]:.1f}" for c in FER_CLASSES)
                     + f" | **{100 * r['mean']:.1f}** | {100 * r['mean_other_source']:.1f} | {100 * r['real_accuracy']:.1f} |")
    if "london" in result:
        lo = result["london"]
        lines += ["", f"London set, {lo['people']} people: share judged happy", "",
                  "| judge | neutral photo | edited to happy | real smile |", "|---|---|---|---|"]
        for name, h in lo["happy_share"].items():
            lines.append(f"| {name} | {100 * h['neutral']:.1f} | **{100 * h['edited']:.1f}** | {100 * h['smiling']:.1f} |")
        rk = lo["identity_rank1"]
        lines += ["", f"Identity (LBPH rank-1 against the {lo['people']} real smiles): edited {100 * rk['edited']:.1f}%, "
                      f"unedited neutral {100 * rk['neutral (unedited)']:.1f}%. Largest change outside the face box: "
                      f"{lo['outside_box_max_change']}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the shared data folder (fer2013/fer2013.csv.gz, london/)")
    p.add_argument("--editor", default="weights/editor.pt")
    p.add_argument("--judge", nargs="+", default=[j for j in JUDGES if not j.startswith(CHOOSING_JUDGE + "=")],
                   help="name=path of classifiers from ml.train_judge (default: the reporting judges)")
    p.add_argument("--split", choices=("PublicTest", "PrivateTest"), default="PrivateTest")
    p.add_argument("--limit", type=int, default=0, help="only the split's first N faces (0 = all)")
    p.add_argument("--no-london", action="store_true")
    p.add_argument("--sheet", help="write the London sheet here (default: london_sheet.png under --out)")
    p.add_argument("--out", default="runs/editor_eval")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    setup_cli(args.threads, "cpu")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    editor, loaded = ExpressionEditor.from_checkpoint(args.editor)
    judges = {name: checkpoint.load(path, arch="fer-classifier").model for name, path in map(named, args.judge)}
    faces, labels = fer2013.load(Path(args.data) / "fer2013" / "fer2013.csv.gz", args.split)
    if args.limit:
        faces, labels = faces[:args.limit], labels[:args.limit]
    edits = edit_split(editor, faces)
    result = {"editor": args.editor, "sha256": loaded.sha256, "split": args.split, "faces": int(len(faces)),
              "judges": list(judges), "fer": {name: judge_edits(j, edits, faces, labels) for name, j in judges.items()}}
    if not args.no_london:
        result["london"] = london(editor, Path(args.data) / "london", judges, Path(args.sheet or out / "london_sheet.png"))
    write_report(out, "editor_eval", result, markdown(result))
    return result


if __name__ == "__main__":
    main()
