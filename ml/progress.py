"""The bookkeeping of the resumable training loops (``ml/train_gan.py``, ``ml/train_editor.py``):
running means of the logged losses, a log line and a history point every ``log_every`` steps, a
save every few minutes, a resumable stop after ``max_minutes``, and the loss chart at the end;
and the training state in ``last.pt`` (each network's and optimiser's state, step, history, rng)."""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ml import checkpoint, plots

log = logging.getLogger(__name__)


class Progress:
    def __init__(self, history: dict[str, list[float]], log_every: int, save_every_min: float, max_minutes: float) -> None:
        self.history, self.log_every = history, log_every
        self.save_every_s, self.max_s = save_every_min * 60, max_minutes * 60
        self.sums, self.count = np.zeros(len(history)), 0
        self.t0 = self.last_save = time.time()

    def add(self, values: list[float]) -> None:
        """This step's figures, one per history key, in order."""
        self.sums += values
        self.count += 1

    def after(self, step: int, end: int, label: str, save: Callable[[], None]) -> bool:
        """After ``step``: log and record the running means every ``log_every`` steps (and at the
        end), save when due, and say whether to stop here (the time limit)."""
        if step % self.log_every == 0 or step == end:
            for key, value in zip(self.history, self.sums / max(self.count, 1)):
                self.history[key].append(float(value))
            log.info("step %d/%d (%s): %s", step, end, label, {k: round(v[-1], 4) for k, v in self.history.items()})
            self.sums, self.count = np.zeros(len(self.history)), 0
        stop = bool(self.max_s) and time.time() - self.t0 > self.max_s
        if stop or step == end or time.time() - self.last_save > self.save_every_s:
            save()
            self.last_save = time.time()
        if stop:
            log.info("stopped after %.1f min at step %d; rerun the same command to resume", (time.time() - self.t0) / 60, step)
        return stop

    def elapsed(self) -> float:
        return time.time() - self.t0

    def finish(self, out: Path, step: int, title: str) -> dict[str, list[float]]:
        plots.line_chart(self.history, out / "losses.png", title=title)
        (out / "history.json").write_text(json.dumps({"step": step, **self.history}, indent=1))
        return self.history


def training_state(modules: dict, step: int, history: dict[str, list[float]], rng: torch.Generator) -> dict:
    """What ``last.pt`` holds to resume: each of ``modules``' (networks', optimisers') state by its key."""
    return {**{key: m.state_dict() for key, m in modules.items()}, "step": step, "history": history,
            "rng": rng.get_state()}


def resume(last: Path, modules: dict, rng: torch.Generator) -> tuple[int, dict[str, list[float]]]:
    """Load :func:`training_state` from ``last`` into ``modules`` and ``rng``; the step and history."""
    state = checkpoint.read(last)["training_state"]
    for key, module in modules.items():
        module.load_state_dict(state[key])
    rng.set_state(state["rng"])
    log.info("resumed from %s at step %d", last, state["step"])
    return state["step"], state["history"]


def add_run_arguments(p: argparse.ArgumentParser, out: str, dry_run: str) -> None:
    """The flags every resumable training entry point on FER-2013 takes."""
    p.add_argument("--data", required=True, help="fer2013.csv or fer2013.csv.gz")
    p.add_argument("--out", default=out, help="run directory (resumed if it holds last.pt)")
    p.add_argument("--steps", type=int, help="stop at this step instead of the recipe's end")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    p.add_argument("--save-every-min", type=float, default=5.0)
    p.add_argument("--max-minutes", type=float, default=0, help="stop (resumably) after this long; 0 = no limit")
    p.add_argument("--dry-run", action="store_true", help=dry_run)
