"""How strong a judge is the realness CNN (ml/realness.py) as it trains longer? The same split as
ml.evaluate_gan's realness test: 12,000 real Training faces and as many generated ones (seeds from
2**31, the real class mix) to learn from; the 3,589 PrivateTest faces and the shipped generator's
faces of seeds 0-499 (in the real class mix) to score. Prints accuracy and the share of generated
faces it is over 90% sure about, for each number of epochs.

    PYTHONPATH=. python docs/experiments/scripts/realness_power.py ../shared/data/fer2013/fer2013.csv.gz 10,30
"""

import sys
import time

import numpy as np
import torch

from ml.data import fer2013
from ml.evaluate_gan import TRAIN_SEEDS, draw_faces
from ml.face_metrics import share_sample
from ml.realness import two_sample_test


def main() -> None:
    torch.set_num_threads(2)
    data, epochs = sys.argv[1], [int(e) for e in sys.argv[2].split(",")]
    x, y = fer2013.load(data, "PrivateTest")
    tx, ty = fer2013.load(data, "Training")
    pick = np.random.default_rng(0).permutation(len(tx))[:12000]
    tx, ty = tx[pick], ty[pick]
    rng = np.random.default_rng(0)
    faces, _ = draw_faces("weights/generator.pt", 500, 0)
    mixed = share_sample(np.repeat(np.arange(7), 500), np.bincount(y, minlength=7) / len(y), rng)
    share = np.bincount(ty, minlength=7) / len(ty)
    per_class = int(np.ceil(len(tx) * share.max()))
    train_faces, _ = draw_faces("weights/generator.pt", per_class, TRAIN_SEEDS)
    train_mixed = share_sample(np.repeat(np.arange(7), per_class), share, rng)
    for e in epochs:
        t0 = time.time()
        r = two_sample_test(tx, train_faces.reshape(-1, 48, 48)[train_mixed], x, faces.reshape(-1, 48, 48)[mixed], epochs=e)
        print(f"epochs {e}: accuracy {r.accuracy:.3f}, over 90% sure of {r.sure_share:.1%} of generated faces "
              f"({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
