"""Probe (docs/experiments/ser.md, 2026-12-04): what fine-tuning Whisper tiny.en's encoder would
cost on this machine's CPU: one forward and backward pass of the whole encoder in float32, one
thread, on a 3 s clip (the corpora's typical length), timed over 10 passes after one warm-up.

    python docs/experiments/scripts/finetune_cost.py   # from the repository root
"""
import time

import torch

from ml import audio, pretrained

torch.set_num_threads(1)
encoder = pretrained.load_encoder("whisper-tiny-en").train()
for p in encoder.parameters():
    p.requires_grad_(True)
mel = audio.whisper_log_mel(torch.randn(3 * audio.SAMPLE_RATE) * audio.LEVEL_RMS)


def step() -> None:
    encoder(mel)[-1].pow(2).mean().backward()


step()
t0 = time.perf_counter()
for _ in range(10):
    step()
per_clip = (time.perf_counter() - t0) / 10
views = 3 * 10_581  # every clip as recorded, as its training view and through AMR-WB
print(f"forward + backward, float32, one thread: {1000 * per_clip:.0f} ms per 3 s clip; "
      f"one epoch of {views} clip views: {views * per_clip / 3600:.2f} core-hours")
