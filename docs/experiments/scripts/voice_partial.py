"""A shorter partial for the voice's GE2E network (docs/experiments/voice.md, 2026-12-07): the LSTM's
cost is linear in its frames, so FRAMES instead of the shipped 160 (1.6 s) at the clip's centre.
Runs ``ml.evaluate_voice`` on the choosing judge only (``vgg``), the map refitted per held-out corpus
as always; the embeddings are cached apart (``runs/voice_cache_pFRAMES``).

    PYTHONPATH=. python docs/experiments/scripts/voice_partial.py 100
"""

import sys

import ml.evaluate_voice as ev
from ml.voice import VoicePrint

frames = int(sys.argv[1])
load = VoicePrint.from_checkpoint.__func__


def shorter(cls, path, device="cpu"):
    voice, loaded = load(cls, path, device)
    voice.model.config.partial_frames = frames
    return voice, loaded


VoicePrint.from_checkpoint = classmethod(shorter)
ev.main(["--data", "../shared/data", "--judge", "vgg=weights/eval/fer_classifier.pt",
         "--cache", f"runs/voice_cache_p{frames}", "--out", f"runs/voice_choose_p{frames}"])
