"""TimeBudget: keep a training run within a wall-clock budget by shortening its schedule.

The demo promises a trained and tested model within ten minutes on a 2-core laptop, and
laptops differ several-fold in speed. Stopping at a deadline (Lightning's ``max_time``) would
end a step schedule before its learning-rate drop, where the model is at its worst. Instead,
after each training epoch (its validation included) :class:`TimeBudget` projects the finish
from that epoch's duration; when the planned epochs do not fit it lowers ``max_epochs`` to what
fits and moves the epoch milestones of ``MultiStepLR`` schedulers in proportion, so the short
run still ends at the low learning rate. On a machine fast enough for the whole schedule it
changes nothing, and the run is the same as without it.

When every training and validation dataset says it is now ``fully_cached`` (the datamodule's
``memory_cache`` after its first epoch), the time the epoch spent waiting for batches is left
out of the projection: later epochs decode nothing. In one demo run that wait was 28 s of a
97 s first epoch, against 3 s of a 75 s second one.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
from torch.optim.lr_scheduler import MultiStepLR


def rescale_milestones(milestones: Counter, old_epochs: int, new_epochs: int, done: int) -> Counter:
    """``MultiStepLR`` milestones for a schedule cut from ``old_epochs`` to ``new_epochs``.

    ``done`` epochs have run; epoch ``done`` (0-based) is next. Milestones already passed
    (``< done``) stay; later ones move to ``round(m * new / old)``, no earlier than ``done``
    and no later than ``new_epochs - 1``, so the last epoch runs after the drop.
    """
    out: Counter = Counter()
    for milestone, count in milestones.items():
        if milestone >= done:
            scaled = round(milestone * new_epochs / old_epochs)
            milestone = min(max(scaled, done), max(new_epochs - 1, done))
        out[milestone] += count
    return out


class TimeBudget(pl.Callback):
    """Shortens training so that the run, and ``reserve_minutes`` after it, end in ``minutes``.

    Args:
        minutes: the wall-clock budget, counted from ``started``.
        reserve_minutes: time kept for what follows training (``acga fit``'s final test).
        started: the ``clock()`` value the budget counts from (default: when this is created;
            ``acga fit`` passes its start-up time, so data generation counts too).
        clock: seconds, monotonic (tests pass a fake one).

    The projection uses the latest epoch's duration (training plus validation), less the time
    spent waiting for batches when every dataset is now ``fully_cached``. A cut is
    applied only when the next epoch would differ under it (an lr milestone moves onto it, or
    no further epoch fits); otherwise the decision waits an epoch, for a better estimate. It
    only ever shortens, never lengthens, and every rank follows rank 0's decision. What it cut
    is kept in ``self.shortened`` (``(planned_epochs, epochs)``) and reported as a warning.
    """

    def __init__(
        self,
        minutes: float,
        reserve_minutes: float = 1.0,
        started: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not minutes > 0:
            raise ValueError(f"minutes: expected > 0, got {minutes}")
        if not 0 <= reserve_minutes < minutes:
            raise ValueError(
                f"reserve_minutes: expected 0 <= reserve_minutes < minutes ({minutes}), "
                f"got {reserve_minutes}"
            )
        self.budget = 60.0 * minutes
        self.reserve = 60.0 * reserve_minutes
        self.clock = clock
        self.started = clock() if started is None else float(started)
        self.epoch_started: float | None = None
        self.waited = 0.0  # this epoch's seconds between a batch's end and the next one's start
        self._mark = 0.0
        self.estimate: float | None = None  # the latest projection of one epoch, in seconds
        self.shortened: tuple[int, int] | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epoch_started = self._mark = self.clock()
        self.waited = 0.0

    def _batch_starts(self) -> None:
        now = self.clock()
        self.waited += now - self._mark  # fetching (and, first time round, decoding) the batch
        self._mark = now

    def _batch_ends(self) -> None:
        self._mark = self.clock()

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self._batch_starts()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self._batch_ends()

    def on_validation_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self._batch_ends()

    def on_validation_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if not trainer.sanity_checking:
            self._batch_starts()

    def on_validation_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self._batch_ends()

    @staticmethod
    def data_in_memory(trainer: pl.Trainer) -> bool:
        """Whether every training and validation dataset is now ``fully_cached``."""
        loaders = [*_flatten(trainer.train_dataloader), *_flatten(trainer.val_dataloaders)]
        return bool(loaders) and all(
            getattr(getattr(loader, "dataset", None), "fully_cached", False) for loader in loaders
        )

    def epochs_that_fit(self, epoch_seconds: float) -> int:
        """Whole epochs of ``epoch_seconds`` left before the reserve."""
        left = self.budget - self.reserve - (self.clock() - self.started)
        return max(0, int(left // max(epoch_seconds, 1e-9)))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        planned = trainer.fit_loop.max_epochs
        if self.epoch_started is None or planned is None or planned < 0:
            return  # no epoch timed yet, or no planned end to move
        done = trainer.current_epoch + 1
        took = self.clock() - self.epoch_started
        self.estimate = took - self.waited if self.data_in_memory(trainer) else took
        fit = self.epochs_that_fit(self.estimate)
        epochs = min(planned, done + fit)
        if done < epochs < planned and not self.next_epoch_differs(trainer, planned, epochs, done):
            # The next epoch runs the same in the short plan as in the full one: decide after
            # it, with its duration (the first epoch, which decodes and warms up, overstates
            # the later ones).
            epochs = planned
        epochs = int(trainer.strategy.broadcast(epochs, src=0))
        if epochs < planned:
            self.shorten(trainer, planned, epochs, done, took)

    @staticmethod
    def next_epoch_differs(trainer: pl.Trainer, planned: int, epochs: int, done: int) -> bool:
        """Whether epoch ``done`` (0-based) would start with another lr in the shortened plan."""
        for config in trainer.lr_scheduler_configs:
            scheduler: Any = config.scheduler
            if config.interval == "epoch" and isinstance(scheduler, MultiStepLR):
                moved = rescale_milestones(scheduler.milestones, planned, epochs, done)
                if (done in scheduler.milestones) != (done in moved):
                    return True
        return False

    def shorten(
        self, trainer: pl.Trainer, planned: int, epochs: int, done: int, took: float
    ) -> None:
        """Lower ``max_epochs`` from ``planned`` to ``epochs`` and move the lr milestones
        (``took``: the last epoch's seconds, for the warning)."""
        trainer.fit_loop.max_epochs = epochs
        if epochs <= done:
            trainer.should_stop = True
        moved, kept = [], []
        for config in trainer.lr_scheduler_configs:
            scheduler: Any = config.scheduler
            if config.interval == "epoch" and isinstance(scheduler, MultiStepLR):
                before = scheduler.milestones
                after = rescale_milestones(before, planned, epochs, done)
                # Lightning steps epoch schedulers at an epoch's last batch, before this hook:
                # epoch `done` already has its lr, so a drop moved onto it is applied here.
                late = after[done] - before[done]
                if late > 0:
                    for group in scheduler.optimizer.param_groups:
                        group["lr"] *= scheduler.gamma**late
                    scheduler._last_lr = [g["lr"] for g in scheduler.optimizer.param_groups]
                scheduler.milestones = after
                moved.append(f"{sorted(before.elements())} -> {sorted(after.elements())}")
            else:
                kept.append(type(scheduler).__name__)
        first = self.shortened[0] if self.shortened else planned
        self.shortened = (first, epochs)
        message = (
            f"TimeBudget: {planned} epochs do not fit in {self.budget / 60:g} minutes on this "
            f"machine (the last epoch took {took:.0f} s, {self.estimate:.0f} s expected from "
            f"the next); "
            f"training stops after epoch {epochs} instead"
        )
        if moved:
            message += f", lr milestones moved {', '.join(moved)}"
        if kept:
            message += f" (left as they were: {', '.join(kept)})"
        message += ". Results will be below those of the full schedule."
        if trainer.is_global_zero:
            warnings.warn(message, UserWarning, stacklevel=2)


def _flatten(loaders: Any) -> list[Any]:
    """The loaders in Lightning's ``train_dataloader`` / ``val_dataloaders`` (one or several)."""
    if loaders is None:
        return []
    if isinstance(loaders, dict):
        return [x for v in loaders.values() for x in _flatten(v)]
    if isinstance(loaders, list | tuple):
        return [x for v in loaders for x in _flatten(v)]
    return [loaders]
