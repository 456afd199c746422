"""The bookkeeping of the resumable training loops (``ml/train_gan.py``, ``ml/train_editor.py``):
running means of the logged losses, a log line and a history point every ``log_every`` steps, a
save every few minutes, a resumable stop after ``max_minutes``, and the loss chart at the end."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ml import plots

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
