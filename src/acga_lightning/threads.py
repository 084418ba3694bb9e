"""``torch_threads: auto``: as many torch threads as this machine has cores free, kept up to date.

On a small CPU, torch's OpenMP threads wait for one another at every operation; when another
process keeps one of two cores busy, a thread that has to share its core holds the other one
up, and one thread then beats two several-fold; making the threads sleep instead of spin
(``OMP_WAIT_POLICY=PASSIVE``) does not help (docs/demo.md, "A shared machine", has the
measurements). So the count follows the load: :func:`free_cores` reads how busy the cores
were, less this process's own use, and :class:`ThreadsForLoad` re-reads it while training and
sets ``torch.set_num_threads`` to match.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import pytorch_lightning as pl
import torch

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_busy_seconds() -> float | None:
    """Seconds all cores spent busy since boot (``/proc/stat``), or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return (sum(fields[:8]) - idle) / ticks


class LoadProbe:
    """How many cores other processes kept busy between two readings."""

    def __init__(self) -> None:
        self.mark = self._read()

    @staticmethod
    def _read() -> tuple[float, float | None, float]:
        return time.monotonic(), _cpu_busy_seconds(), time.process_time()

    def others_busy(self) -> float | None:
        """Cores' worth of other processes' work since the last call (None: unknown)."""
        then, now = self.mark, self._read()
        self.mark = now
        wall = now[0] - then[0]
        if then[1] is None or now[1] is None or wall <= 0.05:
            return None
        return max(0.0, ((now[1] - then[1]) - (now[2] - then[2])) / wall)


def free_cores(seconds: float = 0.5) -> int:
    """Cores not kept busy by other processes, measured over ``seconds`` (at least 1)."""
    probe = LoadProbe()
    time.sleep(seconds)
    others = probe.others_busy()
    cores = usable_cores()
    return cores if others is None else max(1, min(cores, cores - round(others)))


class ThreadsForLoad(pl.Callback):
    """Keeps ``torch.set_num_threads`` at the cores other processes leave free.

    Checked at the start of each training epoch and every ``every_seconds`` of training; a
    change is logged. With nothing else running it is the number of usable cores.
    """

    def __init__(self, every_seconds: float = 20.0) -> None:
        self.every_seconds = every_seconds
        self.probe = LoadProbe()
        self.last = time.monotonic()
        self.history: list[int] = [torch.get_num_threads()]

    def _update(self) -> None:
        others = self.probe.others_busy()
        self.last = time.monotonic()
        if others is None:
            return
        cores = usable_cores()
        threads = max(1, min(cores, cores - round(others)))
        if threads != torch.get_num_threads():
            log.info("torch_threads auto: %.1f cores busy elsewhere, %d threads", others, threads)
            torch.set_num_threads(threads)
            self.history.append(threads)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._update()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if time.monotonic() - self.last >= self.every_seconds:
            self._update()
