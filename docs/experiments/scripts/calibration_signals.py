"""What a calibration can read on each held-out corpus, from a saved evaluation run: the mean and
spread of the distance score, raw confidence against accuracy, the mean top logit and margin,
and the `distance` calibration fitted on the other four corpora's inner logits (its scale,
slope, calibrated confidence and ECE).

    PYTHONPATH=. python docs/experiments/scripts/calibration_signals.py ../shared/data runs/ser_eval_tiny/held_out_logits.npz
"""

import sys

import numpy as np

from ml import calibration
from ml.data import speech
from ml.evaluate_ser import load_logits
from ml.ser_head import fit_calibration


def main() -> None:
    clips = speech.load_all(sys.argv[1])
    y = np.array([c.label for c in clips])
    classes = speech.corpus_classes(clips)
    outer, inner = load_logits(sys.argv[2])
    for corpus, h in outer.items():
        raw = calibration.confidence_report(calibration.Calibration().apply(h.logits, h.distance), y[h.index], classes[corpus])
        cal = fit_calibration("distance", list(inner[corpus].values()), clips)
        fitted = calibration.confidence_report(cal.apply(h.logits, h.distance), y[h.index], classes[corpus])
        top2 = np.sort(h.logits, 1)[:, -2:]
        print(f"{corpus}: distance {h.distance.mean():.2f} ± {h.distance.std():.2f}, raw confidence "
              f"{raw['mean_confidence']:.2f} / accuracy {raw['accuracy']:.2f}, top logit {top2[:, 1].mean():.1f}, "
              f"margin {(top2[:, 1] - top2[:, 0]).mean():.1f}; distance calibration a {cal.log_scale:.2f} "
              f"b {cal.slope:.2f}: confidence {fitted['mean_confidence']:.2f}, ECE {fitted['ece']:.3f}")


if __name__ == "__main__":
    main()
