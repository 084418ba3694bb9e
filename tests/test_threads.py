"""torch_threads auto: the cores other processes leave free, followed while training."""

from __future__ import annotations

import pytest
import torch

from acga_lightning import threads
from acga_lightning.threads import LoadProbe, ThreadsForLoad, free_cores, usable_cores


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_others_busy_is_the_machine_less_this_process(monkeypatch) -> None:
    # (wall s, all cores' busy s, this process's cpu s)
    readings = iter([(0.0, 100.0, 5.0), (10.0, 118.0, 13.0), (20.0, 128.0, 23.0)])
    monkeypatch.setattr(LoadProbe, "_read", staticmethod(lambda: next(readings)))
    probe = LoadProbe()
    assert probe.others_busy() == pytest.approx(1.0)  # 18 busy, 8 of them ours, over 10 s
    assert probe.others_busy() == pytest.approx(0.0)  # all of it ours


def test_no_proc_stat_means_unknown(monkeypatch) -> None:
    monkeypatch.setattr(threads, "_cpu_busy_seconds", lambda: None)
    assert LoadProbe().others_busy() is None
    assert free_cores(0.0) == usable_cores()


def test_free_cores_is_between_one_and_the_usable_cores() -> None:
    assert 1 <= free_cores(0.2) <= usable_cores()


def test_the_callback_follows_the_load(monkeypatch, restore_threads) -> None:
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    busy = iter([1.2, 1.0, 0.1, None])
    monkeypatch.setattr(LoadProbe, "others_busy", lambda self: next(busy))
    torch.set_num_threads(2)
    callback = ThreadsForLoad()
    seen = []
    for _ in range(4):
        callback.on_train_epoch_start(None, None)
        seen.append(torch.get_num_threads())
    assert seen == [1, 1, 2, 2]  # another process on a core: 1; gone: 2; unknown: unchanged
    assert callback.history == [2, 1, 2]
