"""The shipped SER's probabilities for each fixture clip as a WAV and through each phone or
browser format of ``tests/ml/test_containers.py``: where a codec changes an answer, by how much.

    PYTHONPATH=. python docs/experiments/scripts/codec_fixture.py [weights/ser.pt]
"""

import sys

from ml import audio
from ml.labels import EMOTIONS
from ml.recognize import EmotionRecognizer
from tests.conftest import fixture_clips
from tests.ml.test_containers import CONTAINERS, container_bytes


def main() -> None:
    recognizer, _ = EmotionRecognizer.from_checkpoint(sys.argv[1] if len(sys.argv) > 1 else "weights/ser.pt")
    waves = {name: audio.decode(path).samples for name, path in fixture_clips().items()}
    wav = dict(zip(waves, recognizer.predict(list(waves.values())), strict=True))
    for kind in sorted(CONTAINERS):
        heard = recognizer.predict([audio.decode_container(container_bytes(w, audio.SAMPLE_RATE, kind)).samples
                                    for w in waves.values()])
        for (clip, p_wav), p in zip(wav.items(), heard, strict=True):
            if p.argmax() != p_wav.argmax():
                top = lambda q: f"{EMOTIONS[q.argmax()]} {q.max():.3f}"  # noqa: E731
                print(f"{kind}: {clip} heard as {top(p)} ({clip} {p[EMOTIONS.index(clip)]:.3f}); as a WAV {top(p_wav)}")


if __name__ == "__main__":
    main()
