"""TimeBudget: keep a training run within a wall-clock budget by shortening its schedule.

The demo promises a trained and tested model within ten minutes on a 2-core laptop, and
laptops differ several-fold in speed. Stopping at a deadline (Lightning's ``max_time``) would
end a step schedule before its learning-rate drop, where the model is at its worst; cutting
whole epochs is too coarse when a run has only a few (a machine too slow for two epochs would
train one, all at the high learning rate). Instead :class:`TimeBudget` re-plans the
run in optimizer steps:

- While training, every few steps and after each validation, it projects how many steps still
  fit: the current epoch's remaining steps at the current epoch's step time (decoding
  included), later epochs at the step time without the wait for data when every training
  dataset keeps its samples in memory after their first read (``fully_cached``, the
  datamodules' ``memory_cache``), and one validation at every epoch end and at the stop
  (timed when one has run; estimated from the step time before).
- When the planned steps do not fit, it ends training after the steps that do, and replaces the
  epoch ``MultiStepLR`` with a step ``MultiStepLR`` whose milestones sit at the same fractions
  of the shorter run (a drop after 3 of 4 epochs comes after 3/4 of the steps that fit), so
  the run still ends at the low learning rate. Milestones already passed stay passed. Later
  projections move the end (and the milestones not yet passed) again, in either direction but
  never past the original plan: an early estimate that was too slow (the first validation is
  estimated before it is timed) costs nothing once a better one comes.
- Training ends after the step that completes the shortened plan; Lightning then validates (as
  at any stop) and the final test runs in the reserve. No validation or test is skipped.

It only ever shortens, never lengthens; every rank follows rank 0's decision. On a machine fast
enough for the whole schedule it changes nothing, and the run is the same as without it.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
from torch.optim.lr_scheduler import MultiStepLR

from acga_lightning.timing import EpochClock


def scale_milestones(
    original: Counter, planned: int, steps: int, done: int, current: Counter | None = None
) -> Counter:
    """Step milestones for a run of ``steps`` optimizer steps instead of ``planned``.

    ``original``: the milestones of the ``planned`` run; ``current``: the ones in force now
    (default ``original``), paired with them in order. ``done`` steps have run: a current
    milestone already passed (``<= done``) stays; the others move to
    ``round(m * steps / planned)`` of their original ``m``, after ``done`` and before ``steps``
    (so at least the last step runs after each drop).
    """
    originals = sorted(original.elements())
    currents = sorted((current if current is not None else original).elements())
    out: Counter = Counter()
    for first, now in zip(originals, currents, strict=True):
        if now > done:
            scaled = round(first * steps / planned)
            now = min(max(scaled, done + 1), max(steps - 1, done + 1))
        out[now] += 1
    return out


class TimeBudget(pl.Callback):
    """Shortens training so that the run, and ``reserve_minutes`` after it, end in ``minutes``.

    Args:
        minutes: the wall-clock budget, counted from ``started``.
        reserve_minutes: time kept for what follows training (``acga fit``'s final test).
        started: the ``clock()`` value the budget counts from (default: when this is created;
            ``acga fit`` passes its start-up time, so data generation counts too).
        clock: seconds, monotonic (tests pass a fake one).
        check_every: steps between projections (None: a twentieth of an epoch, at least 5).
        tolerance: shorten only when the projection falls this share short of the plan.

    ``self.shortened`` holds ``(planned_steps, steps)`` after a cut (reported as a warning);
    ``self.total_steps`` the steps training now ends after.
    """

    def __init__(
        self,
        minutes: float,
        reserve_minutes: float = 1.0,
        started: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        check_every: int | None = None,
        tolerance: float = 0.02,
    ) -> None:
        if not minutes > 0:
            raise ValueError(f"minutes: expected > 0, got {minutes}")
        if not 0 <= reserve_minutes < minutes:
            raise ValueError(
                f"reserve_minutes: expected 0 <= reserve_minutes < minutes ({minutes}), "
                f"got {reserve_minutes}"
            )
        if check_every is not None and check_every < 1:
            raise ValueError(f"check_every: expected >= 1, got {check_every}")
        self.budget = 60.0 * minutes
        self.reserve = 60.0 * reserve_minutes
        self.clock = clock
        self.started = clock() if started is None else float(started)
        self.check_every = check_every
        self.tolerance = tolerance
        self.total_steps: int | None = None
        self.planned: int | None = None  # the run's own plan, in steps, once a cut was made
        self.shortened: tuple[int, int] | None = None
        self._original: list[Counter] = []  # each taken-over scheduler's step milestones
        self.validation_seconds: float | None = None
        self.epoch = EpochClock(clock)  # the current epoch's steps
        self._validation_started: float | None = None

    # ----------------------------------------------------------------------------- timing
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epoch.start()

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self.epoch.batch_starts()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           *args: Any) -> None:  # fmt: skip
        self.epoch.batch_ends()
        if self.total_steps is not None and trainer.global_step >= self.total_steps:
            trainer.should_stop = True  # Lightning validates, then fit ends
            return
        every = self.check_every or max(5, self._steps_per_epoch(trainer) // 20)
        if trainer.global_step % every == 0:
            self._replan(trainer)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validation_started = self.clock()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._validation_started is not None and not trainer.sanity_checking:
            self.validation_seconds = self.clock() - self._validation_started
            self._validation_started = None
            self.epoch.resume()
            if not trainer.should_stop:
                self._replan(trainer)

    # --------------------------------------------------------------------------- planning
    @staticmethod
    def _steps_per_epoch(trainer: pl.Trainer) -> int:
        batches = trainer.num_training_batches
        accumulate = max(1, trainer.accumulate_grad_batches)
        if not isinstance(batches, int) and not math.isfinite(batches):
            return 0
        return max(1, math.ceil(int(batches) / accumulate))

    @staticmethod
    def data_in_memory_later(trainer: pl.Trainer) -> bool:
        """Whether every training dataset keeps its samples once read (``fully_cached``)."""
        loaders = _flatten(trainer.train_dataloader)
        return bool(loaders) and all(
            hasattr(getattr(loader, "dataset", None), "fully_cached") for loader in loaders
        )

    def planned_steps(self, trainer: pl.Trainer) -> int | None:
        """The steps the run planned before any cut (``max_epochs`` of them)."""
        if self.planned is not None:
            return self.planned
        epochs, per_epoch = trainer.max_epochs, self._steps_per_epoch(trainer)
        if epochs is None or epochs < 0 or per_epoch == 0:
            return None
        steps = epochs * per_epoch
        if trainer.max_steps is not None and trainer.max_steps >= 0:
            steps = min(steps, trainer.max_steps)
        return steps

    def steps_that_fit(self, trainer: pl.Trainer) -> int | None:
        """Optimizer steps still affordable before the reserve, validations included."""
        epoch = self.epoch
        if epoch.steps == 0:
            return None
        per_epoch = self._steps_per_epoch(trainer)
        now_seconds = (epoch.compute + epoch.waited) / epoch.steps
        later_seconds = (
            epoch.compute / epoch.steps if self.data_in_memory_later(trainer) else now_seconds
        )
        validation = self.validation_seconds
        if validation is None:  # none has run: a forward pass per batch, about a third of a step
            validation = 0.5 * now_seconds * _num_batches(trainer.num_val_batches)
        # the stop's own validation is paid first; then the rest of this epoch, then later ones
        left = self.budget - self.reserve - (self.clock() - self.started) - validation
        in_epoch = max(0, per_epoch - epoch.steps)
        if left <= 0:
            return 0
        if in_epoch * now_seconds >= left:
            return int(left // now_seconds)
        fit = in_epoch
        left -= in_epoch * now_seconds
        while True:  # whole epochs, each ending with a validation, then a part of one
            epoch_cost = per_epoch * later_seconds + validation
            if epoch_cost > left or fit > 10**9:
                return fit + int(left // later_seconds)
            fit += per_epoch
            left -= epoch_cost

    def _replan(self, trainer: pl.Trainer) -> None:
        planned = self.planned_steps(trainer)
        fit = self.steps_that_fit(trainer)
        if planned is None or fit is None:
            return
        done = trainer.global_step
        steps = min(done + fit, planned)
        if steps >= planned * (1 - self.tolerance):
            steps = planned
        steps = int(trainer.strategy.broadcast(max(steps, done), src=0))
        if self.total_steps is None:
            if steps < planned:
                self.shorten(trainer, planned, steps)
        elif steps < self.total_steps or steps > self.total_steps + self.tolerance * planned:
            self.shorten(trainer, planned, steps)  # sooner at once; later only by a margin

    def shorten(self, trainer: pl.Trainer, planned: int, steps: int) -> None:
        """End training after ``steps`` optimizer steps instead of ``planned``, with the lr
        milestones not yet passed at the same fractions of the shorter run."""
        done = trainer.global_step
        per_epoch = self._steps_per_epoch(trainer)
        first_cut = self.total_steps is None
        for index, config in enumerate(self._stepped(trainer)):
            scheduler: Any = config.scheduler
            if first_cut:  # take over: the same schedule, counted in steps
                original = Counter(scheduler.milestones)
                if config.interval == "epoch":
                    original = Counter({m * per_epoch: n for m, n in original.items()})
                    stepped = MultiStepLR(scheduler.optimizer, [1], gamma=scheduler.gamma)
                    stepped.last_epoch = done
                    stepped._last_lr = list(scheduler.get_last_lr())
                    config.scheduler, config.interval, config.frequency = stepped, "step", 1
                    scheduler = stepped
                self._original.append(original)
                scheduler.milestones = original
            current = Counter(scheduler.milestones)
            scheduler.milestones = scale_milestones(
                self._original[index], planned, steps, done, current
            )
        self.planned = planned
        self.shortened = (planned, steps) if steps < planned else None
        self.total_steps = steps
        if done >= steps:
            trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Say what the budget changed (once, at the end: the plan may move while training)."""
        if self.shortened is None or not trainer.is_global_zero:
            return
        planned, _ = self.shortened
        per_epoch = self._steps_per_epoch(trainer)
        kept = [
            type(c.scheduler).__name__
            for c in trainer.lr_scheduler_configs
            if not isinstance(c.scheduler, MultiStepLR)
        ]
        message = (
            f"TimeBudget: {planned} training steps ({planned / per_epoch:.3g} epochs) did not "
            f"fit in {self.budget / 60:g} minutes on this machine; training stopped after step "
            f"{trainer.global_step} (epoch {trainer.global_step / per_epoch:.2f})"
        )
        moved = [
            f"{sorted(original.elements())} -> {sorted(config.scheduler.milestones.elements())}"
            for original, config in zip(self._original, self._stepped(trainer), strict=False)
        ]
        if moved:
            message += f", lr milestones (steps) moved {', '.join(moved)}"
        if kept:
            message += f" (left as they were: {', '.join(kept)})"
        message += ". Results will be below those of the full schedule."
        warnings.warn(message, UserWarning, stacklevel=2)

    @staticmethod
    def _stepped(trainer: pl.Trainer) -> list[Any]:
        return [c for c in trainer.lr_scheduler_configs if isinstance(c.scheduler, MultiStepLR)]


def _num_batches(value: Any) -> int:
    """Lightning's ``num_val_batches`` (a number or a list, one per loader) as one count."""
    values = value if isinstance(value, list | tuple) else [value]
    return int(sum(v for v in values if isinstance(v, int | float) and math.isfinite(v)))


def _flatten(loaders: Any) -> list[Any]:
    """The loaders in Lightning's ``train_dataloader`` / ``val_dataloaders`` (one or several)."""
    if loaders is None:
        return []
    if isinstance(loaders, dict):
        return [x for v in loaders.values() for x in _flatten(v)]
    if isinstance(loaders, list | tuple):
        return [x for v in loaders for x in _flatten(v)]
    return [loaders]
