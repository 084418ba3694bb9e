"""TimeBudget: real Lightning fits of a tiny model, timed by a fake clock that batches advance."""

from __future__ import annotations

from collections import Counter

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from acga_lightning.time_budget import TimeBudget, rescale_milestones

LEAFSPEC = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Tiny(pl.LightningModule):
    """A linear regression with Adam and a MultiStepLR; records the lr of every epoch."""

    def __init__(
        self, milestones: list[int], clock: FakeClock, seconds_per_batch: float | list[float]
    ) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)
        self.milestones = milestones
        self.clock = clock
        self.seconds_per_batch = seconds_per_batch
        self.epoch_lrs: list[float] = []

    def training_step(self, batch, batch_idx):
        if batch_idx == 0:
            self.epoch_lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        per_epoch = self.seconds_per_batch
        if isinstance(per_epoch, list):  # one value per epoch, the last one repeated
            per_epoch = per_epoch[min(self.current_epoch, len(per_epoch) - 1)]
        self.clock.now += per_epoch
        x, y = batch
        return nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=1.0)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, self.milestones, gamma=0.1)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}


def fit(
    budget: TimeBudget | None,
    clock: FakeClock,
    seconds_per_batch: float | list[float] = 10.0,
    epochs: int = 8,
    milestone: int = 6,
) -> Tiny:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(16, 4), torch.randn(16, 1))
    model = Tiny([milestone], clock, seconds_per_batch)
    trainer = pl.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[budget] if budget else [],
    )
    trainer.fit(model, DataLoader(data, batch_size=4))  # 4 batches: 40 fake seconds an epoch
    return model


def test_rescale_milestones() -> None:
    assert rescale_milestones(Counter([6]), 8, 3, done=1) == Counter([2])
    assert rescale_milestones(Counter([6]), 8, 2, done=1) == Counter([1])  # last epoch is low
    assert rescale_milestones(Counter([2, 6]), 8, 4, done=3) == Counter([2, 3])  # 2 applied
    assert rescale_milestones(Counter([8]), 12, 6, done=2) == Counter([4])
    assert rescale_milestones(Counter([6]), 8, 1, done=1) == Counter([1])  # stopping: moot


@LEAFSPEC
def test_short_budget_cuts_epochs_and_keeps_the_lr_drop(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    clock = FakeClock()
    # 3 minutes, 30 s reserved: after epoch 1 (40 s) 110 s are left, room for 2 more epochs.
    budget = TimeBudget(minutes=3, reserve_minutes=0.5, clock=clock)
    with pytest.warns(UserWarning, match=r"8 epochs do not fit .* after epoch 3.*\[6\] -> \[2\]"):
        model = fit(budget, clock)
    assert model.epoch_lrs == pytest.approx([1.0, 1.0, 0.1])
    assert model.trainer.current_epoch == 3 and budget.shortened == (8, 3)
    assert clock.now - budget.started <= budget.budget - budget.reserve


@LEAFSPEC
def test_ample_budget_changes_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    clock = FakeClock()
    budget = TimeBudget(minutes=60, clock=clock)
    with_budget = fit(budget, clock)
    without = fit(None, FakeClock())
    assert with_budget.epoch_lrs == without.epoch_lrs == pytest.approx([1.0] * 6 + [0.1] * 2)
    assert budget.shortened is None
    for a, b in zip(with_budget.parameters(), without.parameters(), strict=True):
        assert torch.equal(a, b)


@LEAFSPEC
def test_first_epoch_over_budget_stops_after_it(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    clock = FakeClock()
    budget = TimeBudget(minutes=1, reserve_minutes=0, clock=clock)
    with pytest.warns(UserWarning, match="training stops after epoch 1"):
        model = fit(budget, clock, seconds_per_batch=20.0)  # 80 s > 60 s
    assert model.trainer.current_epoch == 1 and len(model.epoch_lrs) == 1


def test_started_counts_time_before_fit() -> None:
    clock = FakeClock()
    budget = TimeBudget(minutes=2, reserve_minutes=0, started=clock.now - 90, clock=clock)
    assert budget.epochs_that_fit(10.0) == 3  # 120 - 90 = 30 s left


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match="minutes"):
        TimeBudget(minutes=0)
    with pytest.raises(ValueError, match="reserve_minutes"):
        TimeBudget(minutes=1, reserve_minutes=1)


@LEAFSPEC
def test_a_slow_first_epoch_alone_does_not_cut(tmp_path, monkeypatch) -> None:
    """Epoch 1 takes 60 s (decoding, warm-up), later ones 40 s; 4 epochs (180 s) fit in 190 s.
    After epoch 1 a 60 s estimate says 3 epochs, but the short plan runs epoch 2 as the full
    one would, so the decision waits, and with epoch 2's 40 s all 4 fit."""
    monkeypatch.chdir(tmp_path)
    clock = FakeClock()
    budget = TimeBudget(minutes=190 / 60, reserve_minutes=0, clock=clock)
    model = fit(budget, clock, seconds_per_batch=[15.0, 10.0], epochs=4, milestone=3)
    assert budget.shortened is None and model.trainer.current_epoch == 4
    assert model.epoch_lrs == pytest.approx([1.0, 1.0, 1.0, 0.1])
    assert clock.now - budget.started == 180


class FirstReadsSlow(Dataset):
    """16 samples; reading one the first time costs ``seconds`` on the clock (decoding).

    With ``caches`` it keeps what it read and says ``fully_cached`` once all are in, as
    MemoryCachedDataset does; without, every read is a first read.
    """

    def __init__(self, clock: FakeClock, seconds: float, caches: bool) -> None:
        self.data = TensorDataset(torch.randn(16, 4), torch.randn(16, 1))
        self.clock, self.seconds, self.caches = clock, seconds, caches
        self.seen: set[int] = set()

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        if not (self.caches and index in self.seen):
            self.clock.now += self.seconds
        self.seen.add(index)
        return self.data[index]

    @property
    def fully_cached(self) -> bool:
        return self.caches and len(self.seen) == len(self)


class TinyValidated(Tiny):
    def validation_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.layer(x), y)


@LEAFSPEC
@pytest.mark.parametrize("caches", [True, False])
def test_waiting_for_data_that_is_now_in_memory_is_not_projected(
    tmp_path, monkeypatch, caches: bool
) -> None:
    """Epoch 1: 40 s of steps and 40 s decoding 16 samples; 4 epochs take 200 s if later epochs
    read from memory. After epoch 1, 130 s of 210 are left: 3 epochs of 40 s fit, 1 of 80 s.
    With the data cached the full schedule runs; uncached, every epoch decodes and it is cut."""
    monkeypatch.chdir(tmp_path)
    clock = FakeClock()
    budget = TimeBudget(minutes=210 / 60, reserve_minutes=0, clock=clock)
    torch.manual_seed(0)
    model = TinyValidated([3], clock, 10.0)
    trainer = pl.Trainer(
        max_epochs=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[budget], num_sanity_val_steps=0,
    )  # fmt: skip
    train = DataLoader(FirstReadsSlow(clock, 2.5, caches), batch_size=4, shuffle=True)
    val = DataLoader(FirstReadsSlow(clock, 0.0, caches=True), batch_size=4)
    if caches:
        trainer.fit(model, train, val)
        assert budget.shortened is None and budget.estimate == pytest.approx(40.0)
        assert model.epoch_lrs == pytest.approx([1.0, 1.0, 1.0, 0.1])
        assert clock.now - budget.started == pytest.approx(200.0)
    else:
        with pytest.warns(UserWarning, match=r"80 s expected from the next.*\[3\] -> \[1\]"):
            trainer.fit(model, train, val)
        assert budget.shortened == (4, 2)
        assert model.epoch_lrs == pytest.approx([1.0, 0.1])
