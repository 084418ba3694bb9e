"""PhaseTimes: where a run's wall time went, printed as a table when it ends.

``acga fit`` adds it: start-up (reading the config, building the model, writing generated data
and indexing it, counted from the command's start), each training epoch (and, of it, the time
spent waiting for batches: reading and decoding, or the memory cache's first fill), each
validation, and the final test. The same figures are kept in ``PhaseTimes.phases`` (seconds,
in order) for scripts and benchmarks.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl


class EpochClock:
    """One stretch of training steps: how many, seconds computing, seconds waiting for batches
    (fetching them; the first time round, decoding). :class:`PhaseTimes` and
    :class:`~acga_lightning.time_budget.TimeBudget` each keep one, fed from their batch hooks."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.start()

    def start(self) -> None:
        """A new stretch: counts to zero, timed from now."""
        self.started = self.mark = self._batch = self.clock()
        self.steps, self.compute, self.waited = 0, 0.0, 0.0

    def resume(self) -> None:
        """Go on after a pause that is no wait for data (a validation inside the epoch)."""
        self.mark = self.clock()

    def batch_starts(self) -> None:
        self._batch = self.clock()
        self.waited += self._batch - self.mark

    def batch_ends(self) -> None:
        self.mark = self.clock()
        self.compute += self.mark - self._batch
        self.steps += 1


class PhaseTimes(pl.Callback):
    """Times the phases of a fit (and of the test that follows it) on rank 0.

    Args:
        started: the ``clock()`` value the run started at (default: when this is created).
        clock: seconds, monotonic.
        report_after_test: print the table when the test that follows the fit ends (``acga fit
            --test_after_fit true``), not when the fit ends.
        stream: where the table goes (default: stderr).
    """

    def __init__(
        self,
        started: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        report_after_test: bool = False,
        stream: Any = None,
    ) -> None:
        self.clock = clock
        self.report_after_test = report_after_test
        self.started = clock() if started is None else float(started)
        self.stream = stream
        self.phases: list[tuple[str, float]] = []
        self.epoch = EpochClock(clock)
        self._val_start = self._test_start = 0.0
        self._fit_ended = False

    def _add(self, name: str, seconds: float) -> None:
        self.phases.append((name, seconds))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._add("start-up: config, model, data written and indexed", self.clock() - self.started)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epoch.start()

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self.epoch.batch_starts()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self.epoch.batch_ends()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        now = self.clock()
        if trainer.state.fn == "fit":  # the training so far this epoch, before its validation
            epoch = trainer.current_epoch + 1
            self._add(f"epoch {epoch} training (waiting for data: {self.epoch.waited:.0f} s)",
                      now - self.epoch.started)  # fmt: skip
        self._val_start = now

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._add(f"epoch {trainer.current_epoch + 1} validation", self.clock() - self._val_start)
        self.epoch.start()  # what follows in the epoch, if anything

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_ended = True
        if not self.report_after_test:
            self.report(trainer)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._test_start = self.clock()

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._add("test", self.clock() - self._test_start)
        if self._fit_ended and self.report_after_test:
            self.report(trainer)

    @property
    def total(self) -> float:
        return sum(seconds for _, seconds in self.phases)

    def report(self, trainer: pl.Trainer) -> None:
        if not trainer.is_global_zero or not self.phases:
            return
        stream = self.stream or sys.stderr
        width = max(len(name) for name, _ in self.phases)
        lines = ["where the time went:"]
        lines += [f"  {name:<{width}}  {seconds:7.1f} s" for name, seconds in self.phases]
        lines.append(f"  {'total':<{width}}  {self.total:7.1f} s")
        print("\n".join(lines), file=stream, flush=True)
