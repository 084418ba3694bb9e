"""PhaseTimes: a fit and its test, timed by a fake clock that the steps advance."""

from __future__ import annotations

import io

import pytest
from torch.utils.data import DataLoader

from acga_lightning.timing import PhaseTimes
from tests.test_time_budget import Decoding, FakeClock, Tiny, loader, trainer_for

LEAFSPEC = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


class TimedTiny(Tiny):
    """Validation batches take 1 s and test batches 2 s of the fake clock."""

    def validation_step(self, batch, batch_idx):
        self.clock.now += 1.0
        return super().validation_step(batch, batch_idx)

    def test_step(self, batch, batch_idx):
        self.clock.now += 2.0


@LEAFSPEC
@pytest.mark.parametrize("after_test", [True, False])
def test_phases_add_up_to_the_run(tmp_path, monkeypatch, after_test: bool) -> None:
    monkeypatch.chdir(tmp_path)
    clock = FakeClock()
    out = io.StringIO()
    timer = PhaseTimes(started=clock.now - 30, clock=clock, report_after_test=after_test,
                       stream=out)  # fmt: skip
    model = TimedTiny([1], clock, 10.0)
    trainer = trainer_for(None, 2)
    trainer.callbacks.append(timer)
    # 4 batches of 10 s, each sample read costs 0.5 s (2 s a batch): 48 s an epoch
    trainer.fit(model, DataLoader(Decoding(clock, 0.5), batch_size=4), loader(8))
    assert bool(out.getvalue()) is not after_test  # printed at fit end only without a test
    trainer.test(model, loader(8), verbose=False)
    names = [name for name, _ in timer.phases]
    assert names == [
        "start-up: config, model, data written and indexed",
        "epoch 1 training (waiting for data: 8 s)", "epoch 1 validation",
        "epoch 2 training (waiting for data: 8 s)", "epoch 2 validation",
        "test",
    ]  # fmt: skip
    assert [s for _, s in timer.phases] == pytest.approx([30, 48, 2, 48, 2, 4])
    assert timer.total == pytest.approx(clock.now - timer.started)
    text = out.getvalue()
    assert ("test" in text) is after_test and "where the time went" in text
