"""One face per voice, measured: do one speaker's recordings give one face, and different
speakers different faces?

    # the card's figures (reporting judges resnet and k5)
    python -m ml.evaluate_voice --data ../shared/data --out runs/voice_eval
    # choosing the map's directions (the vgg judge only)
    python -m ml.evaluate_voice --data ../shared/data --judge vgg=weights/eval/fer_classifier.pt \\
        --dims 2 4 6 8 16 24 48 --out runs/voice_choose

For each corpus, the voice-to-latent map is fitted on the other four (``ml.import_voice.fit_map``),
so no speaker it is scored on was seen by it; the GE2E network never heard any of them. Up to
``--clips`` clips of the corpus (seeded) are drawn as the service draws them without a seed: the
face of the clip's voice, with the emotion the shipped SER hears in it. Per judge, in its
features (the penultimate layer of an expression classifier, ``ml.face_metrics.classify``):

* **identity ratio, same emotion**: the mean distance between two faces of one speaker over the
  mean distance between faces of two speakers, counted over pairs drawn with the same emotion.
  The judges are built to see expression, and one face's 7 expressions lie farther apart in
  their features than two faces of one expression (``docs/experiments/ser.md``, 2026-12-06), so
  pairs of different emotions would measure the SER's answers, not the person;
* the same over all pairs, printed beside it;
* **diversity**: the mean distance between two speakers' faces of one emotion over that between
  two random seeds' faces: do different voices still give as varied people as seeds do;
* **expression**: the share of faces the judge recognises as the emotion drawn, beside the same
  for seed-drawn faces of those emotions.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ml import checkpoint
from ml.data import speech
from ml.embed import SpeechEmbedder, cached_embeddings
from ml.evaluate_gan import CHOOSING_JUDGE, JUDGES, named
from ml.face_metrics import classify
from ml.generate import FaceGenerator
from ml.import_voice import DIMS, corpus_embeddings, fit_map
from ml.labels import EMOTIONS, FER_CLASSES, fer_index
from ml.models.voice import voice_latent
from ml.runtime import setup_cli
from ml.ser_head import head_answers
from ml.voice import VoicePrint


def distances(X: np.ndarray) -> np.ndarray:
    """(N, N) Euclidean distances between the rows of ``X``."""
    X = torch.from_numpy(np.ascontiguousarray(X))
    return torch.cdist(X, X).numpy()


def pair_ratio(D: np.ndarray, speakers: np.ndarray, emotions: np.ndarray | None) -> float:
    """Mean distance within a speaker over mean distance between speakers; with ``emotions``, over
    pairs of one emotion only."""
    same_s, off = speakers[:, None] == speakers[None], ~np.eye(len(D), dtype=bool)
    keep = emotions[:, None] == emotions[None] if emotions is not None else np.ones_like(off)
    return float(D[keep & same_s & off].mean() / D[keep & ~same_s].mean())


def between(D: np.ndarray, speakers: np.ndarray, emotions: np.ndarray) -> float:
    """Mean distance between two speakers' faces of one emotion."""
    return float(D[(emotions[:, None] == emotions[None]) & (speakers[:, None] != speakers[None])].mean())


def evaluate(args: argparse.Namespace) -> dict:
    gen, _ = FaceGenerator.from_checkpoint(args.generator)
    latent_dim = gen.model.config.latent_dim
    voice, _ = VoicePrint.from_checkpoint(args.voice)
    clips, E = corpus_embeddings(voice, args.data, args.cache, step=40 if args.dry_run else 1)
    ser = checkpoint.load(args.ser, arch=checkpoint.SER_MODELS, labels=EMOTIONS)
    heard = head_answers(ser.model, cached_embeddings([c.path for c in clips],
                                                      SpeechEmbedder(ser.model.config.encoder), Path(args.ser_cache)))
    classes = np.array([fer_index(EMOTIONS[a]) for a in heard])
    speakers, corpus = np.array([c.speaker for c in clips]), np.array([c.corpus for c in clips])
    judges = {name: checkpoint.load(path, arch="fer-classifier", labels=FER_CLASSES).model
              for name, path in map(named, args.judge)}
    rng = np.random.default_rng(0)
    result = {"judges": list(judges), "voice": voice.sha256, "generator": args.generator, "ser": ser.sha256,
              "clips_per_corpus": args.clips, "by_dims": {}}
    for dims in args.dims:
        rows = {}
        for held in speech.CORPORA:
            tr, te = np.flatnonzero(corpus != held), np.flatnonzero(corpus == held)
            te = np.sort(rng.choice(te, min(args.clips, len(te)), replace=False)) if args.clips else te
            center, to_latent = fit_map(E[tr], speakers[tr], latent_dim, dims)
            z = voice_latent(torch.from_numpy(E[te]), torch.from_numpy(center), torch.from_numpy(to_latent))
            drawn = classes[te].tolist()
            faces, seeded = gen.render(drawn, list(z)), gen.render(drawn, list(range(len(te))))
            row = {"clips": int(len(te)), "speakers": int(len(np.unique(speakers[te]))),
                   "embedding_ratio": round(pair_ratio(distances(E[te]), speakers[te], None), 3),
                   "latent_ratio": round(pair_ratio(distances(z.numpy()), speakers[te], None), 3)}
            for name, judge in judges.items():
                pred, F = classify(judge, faces)
                pred_seeded, F_seeded = classify(judge, seeded)
                D, seed_ids = distances(F), np.arange(len(te)).astype(str)
                row[name] = {"identity_ratio": round(pair_ratio(D, speakers[te], classes[te]), 3),
                             "identity_ratio_all_pairs": round(pair_ratio(D, speakers[te], None), 3),
                             "diversity": round(between(D, speakers[te], classes[te])
                                                / between(distances(F_seeded), seed_ids, classes[te]), 3),
                             "expression": round(float((pred == classes[te]).mean()), 3),
                             "expression_seeded": round(float((pred_seeded == classes[te]).mean()), 3)}
            rows[held] = row
            print(dims, held, json.dumps(row), flush=True)
        result["by_dims"][str(dims)] = rows
    return result


def table(result: dict) -> str:
    lines = [f"Judges: {', '.join(result['judges'])} ({CHOOSING_JUDGE} chooses). Up to {result['clips_per_corpus']} "
             "clips per corpus; the map fitted on the other four corpora.", ""]
    for dims, rows in result["by_dims"].items():
        lines += [f"{dims} directions", "", "| corpus | speakers | " + " | ".join(
            f"{j} ratio | {j} all pairs | {j} diversity | {j} expression (seeds)" for j in result["judges"]) + " |",
            "|---|---|" + "---|" * (4 * len(result["judges"]))]
        for held, row in rows.items():
            lines.append(f"| {held} | {row['speakers']} | " + " | ".join(
                f"{row[j]['identity_ratio']:.2f} | {row[j]['identity_ratio_all_pairs']:.2f} | {row[j]['diversity']:.2f} | "
                f"{100 * row[j]['expression']:.1f} ({100 * row[j]['expression_seeded']:.1f})" for j in result["judges"]) + " |")
        for j in result["judges"]:
            lines.append(f"\nmean {j} identity ratio: {np.mean([r[j]['identity_ratio'] for r in rows.values()]):.3f}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--out", default="runs/voice_eval")
    p.add_argument("--voice", default="weights/voice.pt", help="its network is used; the map is refitted per corpus")
    p.add_argument("--generator", default="weights/generator.pt")
    p.add_argument("--ser", default="weights/ser.pt")
    p.add_argument("--judge", nargs="+", default=[j for j in JUDGES if not j.startswith(CHOOSING_JUDGE + "=")])
    p.add_argument("--dims", nargs="+", type=int, default=[DIMS])
    p.add_argument("--clips", type=int, default=600, help="clips per corpus (0: all)")
    p.add_argument("--cache", default="runs/voice_cache")
    p.add_argument("--ser-cache", default="runs/ser_cache")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--dry-run", action="store_true", help="every 40th clip: every path in a minute")
    args = p.parse_args(argv)
    setup_cli(args.threads, "cpu")
    t0 = time.time()
    result = evaluate(args)
    result["wall_s"] = round(time.time() - t0, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(result, indent=1))
    (out / "eval.md").write_text(table(result))
    print(table(result))


if __name__ == "__main__":
    main()
