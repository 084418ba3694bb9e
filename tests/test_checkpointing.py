"""checkpointing: atomic saves leave the old file whole when a write fails, and stale temp
files of a killed write are found and removed."""

from __future__ import annotations

import pytest
import torch

from acga_lightning.checkpointing import atomic_torch_save, remove_stale_temp_files


def test_atomic_save_round_trip_and_a_failed_write_keeps_the_old_file(tmp_path) -> None:
    path = atomic_torch_save({"step": 1}, tmp_path / "sub" / "last.ckpt")
    assert torch.load(path) == {"step": 1}
    with pytest.raises(Exception):  # noqa: B017 - whatever pickle raises for a lambda
        atomic_torch_save({"step": 2, "bad": lambda: None}, path)
    assert torch.load(path) == {"step": 1}
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind


def test_stale_temp_files_are_removed(tmp_path, caplog) -> None:
    stale = tmp_path / ".last.ckpt.abc123.tmp"
    stale.write_bytes(b"partial")
    keep = tmp_path / "last.ckpt"
    keep.write_bytes(b"whole")
    assert remove_stale_temp_files(tmp_path) == [stale]
    assert not stale.exists() and keep.exists()
    assert "partial checkpoint" in caplog.text
