"""TimeBudget: real Lightning fits of a tiny model, timed by a fake clock that batches advance."""

from __future__ import annotations

from collections import Counter

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from acga_lightning.time_budget import TimeBudget, scale_milestones

LEAFSPEC = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Tiny(pl.LightningModule):
    """A linear regression with Adam and an epoch MultiStepLR; records every step's lr and
    counts its validation and test batches. Each training batch advances the clock."""

    def __init__(
        self, milestones: list[int], clock: FakeClock, seconds_per_batch: float | list[float]
    ) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)
        self.milestones = milestones
        self.clock = clock
        self.seconds_per_batch = seconds_per_batch
        self.step_lrs: list[float] = []
        self.validated = self.tested = 0
        self.validated_at: list[int] = []

    def training_step(self, batch, batch_idx):
        self.step_lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        per_epoch = self.seconds_per_batch
        if isinstance(per_epoch, list):  # one value per epoch, the last one repeated
            per_epoch = per_epoch[min(self.current_epoch, len(per_epoch) - 1)]
        self.clock.now += per_epoch
        x, y = batch
        return nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        self.validated += 1
        if batch_idx == 0:
            self.validated_at.append(self.trainer.global_step)
        x, y = batch
        return nn.functional.mse_loss(self.layer(x), y)

    def test_step(self, batch, batch_idx):
        self.tested += 1

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=1.0)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, self.milestones, gamma=0.1)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}


def trainer_for(budget: TimeBudget | None, epochs: int) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[budget] if budget else [],
    )  # fmt: skip


def loader(n: int = 16) -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(n, 4), torch.randn(n, 1)), batch_size=4)


def fit(
    budget: TimeBudget | None,
    clock: FakeClock,
    seconds_per_batch: float | list[float] = 10.0,
    epochs: int = 6,
    milestone: int = 4,
    validate: bool = True,
) -> Tiny:
    """Fit (4 training batches an epoch: 40 fake seconds; validation takes no time) and test."""
    torch.manual_seed(0)
    model = Tiny([milestone], clock, seconds_per_batch)
    trainer = trainer_for(budget, epochs)
    trainer.fit(model, loader(), loader(8) if validate else None)
    trainer.test(model, loader(8), verbose=False)
    return model


def test_scale_milestones() -> None:
    assert scale_milestones(Counter([16]), 24, 8, done=2) == Counter([5])
    assert scale_milestones(Counter([16]), 24, 3, done=1) == Counter([2])  # one low step left
    assert scale_milestones(Counter([4, 16]), 24, 12, done=6) == Counter([4, 8])  # 4 passed
    assert scale_milestones(Counter([16]), 24, 12, done=10) == Counter([11])  # not in the past


@LEAFSPEC
def test_a_schedule_cut_to_a_third_ends_at_the_low_lr_and_validates_and_tests(
    tmp_path, monkeypatch
) -> None:
    """6 epochs x 4 steps of 10 s, the lr divided by 10 after epoch 4 (step 16 of 24): 240 s
    of steps, but 90 s of budget. After the first step (10 s, a validation estimated at 10 s)
    the plan becomes 8 steps with the drop after step round(16 * 8 / 24) = 5; once the first
    validation is timed (no time here) 9 fit, and the drop moves to round(16 * 9 / 24) = 6:
    steps 7-9 run at the low lr; training ends after step 9, in epoch 3, is validated there and
    tested."""
    monkeypatch.chdir(tmp_path)
    clock = FakeClock()
    budget = TimeBudget(minutes=90 / 60, reserve_minutes=0, clock=clock, check_every=1)
    with pytest.warns(
        UserWarning, match=r"24 training steps .* stopped after step 9 .*\[16\] -> \[6\]"
    ):
        model = fit(budget, clock)
    assert budget.shortened == (24, 9) and model.trainer.global_step == 9
    assert model.step_lrs == pytest.approx([1.0] * 6 + [0.1] * 3)
    assert model.validated_at == [4, 8, 9]  # after epochs 1 and 2, and at the stop in epoch 3
    assert model.tested == 2  # all of the test set
    assert clock.now - budget.started <= budget.budget - budget.reserve


@LEAFSPEC
def test_ample_budget_changes_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    clock = FakeClock()
    budget = TimeBudget(minutes=60, clock=clock, check_every=1)
    with_budget = fit(budget, clock)
    without = fit(None, FakeClock())
    assert with_budget.step_lrs == without.step_lrs == pytest.approx([1.0] * 16 + [0.1] * 8)
    assert budget.shortened is None and budget.total_steps is None
    for a, b in zip(with_budget.parameters(), without.parameters(), strict=True):
        assert torch.equal(a, b)


@LEAFSPEC
def test_no_time_at_all_still_validates_and_tests(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    clock = FakeClock()
    budget = TimeBudget(minutes=1, reserve_minutes=0, clock=clock, check_every=1)
    with pytest.warns(UserWarning, match="stopped after step 1 "):
        model = fit(budget, clock, seconds_per_batch=70.0)  # one step is over the budget
    assert model.trainer.global_step == 1 and model.validated_at == [1] and model.tested == 2


def test_started_counts_time_before_fit_and_argument_errors() -> None:
    clock = FakeClock()
    budget = TimeBudget(minutes=2, reserve_minutes=0, started=clock.now - 90, clock=clock)
    assert budget.budget - (clock() - budget.started) == 30
    with pytest.raises(ValueError, match="minutes"):
        TimeBudget(minutes=0)
    with pytest.raises(ValueError, match="reserve_minutes"):
        TimeBudget(minutes=1, reserve_minutes=1)
    with pytest.raises(ValueError, match="check_every"):
        TimeBudget(minutes=2, check_every=0)


class Decoding(Dataset):
    """16 samples; every read costs ``seconds`` on the clock (decoding)."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        self.data = TensorDataset(torch.randn(16, 4), torch.randn(16, 1))
        self.clock, self.seconds = clock, seconds
        self.seen: set[int] = set()

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        self.clock.now += self.seconds
        return self.data[index]


class KeptInMemory(Decoding):
    """Only a sample's first read costs time; ``fully_cached`` as MemoryCachedDataset says it."""

    def __getitem__(self, index: int):
        if index in self.seen:
            return self.data[index]
        self.seen.add(index)
        return super().__getitem__(index)

    @property
    def fully_cached(self) -> bool:
        return len(self.seen) == len(self)


@LEAFSPEC
@pytest.mark.parametrize("caches", [True, False])
def test_waiting_for_data_kept_in_memory_is_not_projected_onto_later_epochs(
    tmp_path, monkeypatch, caches: bool
) -> None:
    """Epoch 1: 40 s of steps and 40 s decoding 16 samples; 4 epochs take 200 s when later
    epochs read from memory, 320 s when every epoch decodes. With 210 s the cached run keeps
    its whole schedule; the uncached one is cut and still ends at the low lr."""
    monkeypatch.chdir(tmp_path)
    clock = FakeClock()
    budget = TimeBudget(minutes=210 / 60, reserve_minutes=0, clock=clock, check_every=1)
    torch.manual_seed(0)
    model = Tiny([3], clock, 10.0)
    dataset = KeptInMemory(clock, 2.5) if caches else Decoding(clock, 2.5)
    train = DataLoader(dataset, batch_size=4, shuffle=True)
    trainer = trainer_for(budget, 4)
    if caches:
        trainer.fit(model, train, loader(8))
        assert budget.shortened is None
        assert model.step_lrs == pytest.approx([1.0] * 12 + [0.1] * 4)
        assert clock.now - budget.started == pytest.approx(200.0)
    else:
        with pytest.warns(UserWarning, match=r"stopped after step 10 .*\[12\] -> \[8\]"):
            trainer.fit(model, train, loader(8))
        assert budget.shortened == (16, 10) and model.trainer.global_step == 10
        assert model.step_lrs == pytest.approx([1.0] * 8 + [0.1] * 2)
        assert clock.now - budget.started <= 210
