"""How far the SER's float32 path (what a CUDA host runs) lies from its int8 CPU path: 240 clips
drawn at random (seed 0) from the five corpora, both paths run on the CPU, the share of equal
answers and the gaps between their probabilities.

    PYTHONPATH=. python docs/experiments/scripts/float_path.py ../shared/data weights/ser.pt
"""

import sys

import numpy as np
import torch

from ml import audio
from ml.data import speech
from ml.recognize import EmotionRecognizer


def main() -> None:
    torch.set_num_threads(1)
    clips = speech.load_all(sys.argv[1])
    pick = np.random.default_rng(0).choice(len(clips), 240, replace=False)
    waves = [audio.decode(clips[i].path).samples for i in pick]
    int8, _ = EmotionRecognizer.from_checkpoint(sys.argv[2])
    float32, _ = EmotionRecognizer.from_checkpoint(sys.argv[2], quantized=False)
    a, b = int8.predict(waves), float32.predict(waves)
    gap = np.abs(a - b).max(1)
    print(f"clips {len(pick)}, same answer {(a.argmax(1) == b.argmax(1)).mean():.3f}, largest probability gap "
          f"{gap.max():.3f}, p99 {np.quantile(gap, 0.99):.3f}, median {np.median(gap):.3f}")


if __name__ == "__main__":
    main()
