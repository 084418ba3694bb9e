"""Checkpoints: last.ckpt after every epoch, atomic writes that honour the umask, and "last"."""

from __future__ import annotations

import os
import stat

import pytest
import torch

pl = pytest.importorskip("pytorch_lightning")

from acga_lightning.checkpointing import BestAndLastCheckpoint  # noqa: E402


class WorseEachEpoch(pl.LightningModule):
    """A linear model whose logged score is best at epoch 0 and drops after."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/score", -float(self.current_epoch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 2)))

    val_dataloader = train_dataloader


def fit(tmp_path, callback, epochs: int = 4):
    trainer = pl.Trainer(
        max_epochs=epochs, logger=False, callbacks=[callback], enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(WorseEachEpoch())
    return trainer


@pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning")
@pytest.mark.parametrize("cls", [BestAndLastCheckpoint, pl.callbacks.ModelCheckpoint])
def test_last_checkpoint_holds_the_final_epoch_when_the_metric_stops_improving(tmp_path, cls):
    callback = cls(dirpath=tmp_path / "ckpt", monitor="val/score", mode="max", save_last=True,
                   filename="best-{epoch}")  # fmt: skip
    fit(tmp_path, callback)
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    best = torch.load(callback.best_model_path, map_location="cpu", weights_only=False)
    assert best["epoch"] == 0 and callback.best_model_path.endswith("best-epoch=0.ckpt")
    if cls is BestAndLastCheckpoint:
        assert last["epoch"] == 3 and last["global_step"] == 16
    else:  # Lightning's own: the reason for the subclass (fails once Lightning changes it)
        assert last["epoch"] < 3


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_checkpoints_honour_the_umask(tmp_path, umask):
    from acga_lightning.checkpointing import atomic_torch_save

    previous = os.umask(umask)
    try:
        path = atomic_torch_save({"w": torch.zeros(2)}, tmp_path / "last.ckpt")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_a_write_torch_reports_as_unexpected_pos_names_the_file(tmp_path, monkeypatch):
    from acga_lightning.checkpointing import atomic_torch_save

    def full_disk(obj, f):
        f.write(b"PK partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    (tmp_path / "last.ckpt").write_bytes(b"previous")
    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match=rf"could not write checkpoint {tmp_path / 'last.ckpt'}"):
        atomic_torch_save({"w": 1}, tmp_path / "last.ckpt")
    assert (tmp_path / "last.ckpt").read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_atomic_save_round_trip_and_a_failed_write_keeps_the_old_file(tmp_path) -> None:
    from acga_lightning.checkpointing import atomic_torch_save

    path = atomic_torch_save({"step": 1}, tmp_path / "sub" / "last.ckpt")
    assert torch.load(path) == {"step": 1}
    with pytest.raises(Exception):  # noqa: B017 - whatever pickle raises for a lambda
        atomic_torch_save({"step": 2, "bad": lambda: None}, path)
    assert torch.load(path) == {"step": 1}
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind


def test_stale_temp_files_are_removed(tmp_path, caplog) -> None:
    from acga_lightning.checkpointing import remove_stale_temp_files

    stale = tmp_path / ".last.ckpt.abc123.tmp"
    stale.write_bytes(b"partial")
    keep = tmp_path / "last.ckpt"
    keep.write_bytes(b"whole")
    assert remove_stale_temp_files(tmp_path) == [stale]
    assert not stale.exists() and keep.exists()
    assert "partial checkpoint" in caplog.text
