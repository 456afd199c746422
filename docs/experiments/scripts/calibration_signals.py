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
from ml.ser_head import HeldOut, fit_calibration


def main() -> None:
    clips = speech.load_all(sys.argv[1])
    y = np.array([c.label for c in clips])
    classes = speech.corpus_classes(clips)
    z = np.load(sys.argv[2])

    def held(prefix: str, name: str) -> HeldOut:
        return HeldOut(name, z[f"{prefix}/{name}/index"], z[f"{prefix}/{name}/logits"], z[f"{prefix}/{name}/distance"])

    for corpus in speech.CORPORA:
        h = held("outer", corpus)
        raw = calibration.confidence_report(calibration.Calibration().apply(h.logits, h.distance), y[h.index], classes[corpus])
        cal = fit_calibration("distance", [held(f"inner/{corpus}", d) for d in speech.CORPORA if d != corpus], clips)
        fitted = calibration.confidence_report(cal.apply(h.logits, h.distance), y[h.index], classes[corpus])
        top2 = np.sort(h.logits, 1)[:, -2:]
        print(f"{corpus}: distance {h.distance.mean():.2f} ± {h.distance.std():.2f}, raw confidence "
              f"{raw['mean_confidence']:.2f} / accuracy {raw['accuracy']:.2f}, top logit {top2[:, 1].mean():.1f}, "
              f"margin {(top2[:, 1] - top2[:, 0]).mean():.1f}; distance calibration a {cal.log_scale:.2f} "
              f"b {cal.slope:.2f}: confidence {fitted['mean_confidence']:.2f}, ECE {fitted['ece']:.3f}")


if __name__ == "__main__":
    main()
