"""A minimax variant of the `distance` calibration, tried on saved logits and not adopted: for
each held-out corpus, the scale and slope (grid: a in -3..0 by 0.1, b in -3..1 by 0.2) that
minimise the worst ECE over its four inner probes, then the ECE on the held-out corpus.

    PYTHONPATH=. python docs/experiments/scripts/calibration_minimax.py ../shared/data runs/ser_eval_tiny/held_out_logits.npz
"""

import sys

import numpy as np

from ml import calibration
from ml.data import speech
from ml.evaluate_ser import load_logits
from ml.ser_head import HeldOut


def main() -> None:
    clips = speech.load_all(sys.argv[1])
    y = np.array([c.label for c in clips])
    classes = speech.corpus_classes(clips)
    outer, inner = load_logits(sys.argv[2])

    def ece(h: HeldOut, corpus: str, a: float, b: float) -> float:
        probs = calibration.Calibration("distance", a, b).apply(h.logits, h.distance)
        return calibration.confidence_report(probs, y[h.index], classes[corpus])["ece"]

    reported = []
    grid = [(a, b) for a in np.arange(-3, 0.01, 0.1) for b in np.arange(-3, 1.01, 0.2)]
    for corpus, h in outer.items():
        worst, a, b = min((max(ece(p, d, a, b) for d, p in inner[corpus].items()), a, b) for a, b in grid)
        reported.append(ece(h, corpus, a, b))
        print(f"{corpus}: inner worst {worst:.3f} at a {a:.1f} b {b:.1f}; held out ECE {reported[-1]:.3f}", flush=True)
    print(f"mean {np.mean(reported):.3f}")


if __name__ == "__main__":
    main()
