"""acga_lightning.loggers.WandbLogger: Lightning's logger without wandb's two spurious warnings."""

from __future__ import annotations

import pytest
from pytorch_lightning.loggers import WandbLogger as LightningWandbLogger

from acga_lightning.loggers import WandbLogger


def test_drops_anonymous_and_creates_save_dir(tmp_path) -> None:
    save_dir = tmp_path / "not" / "yet"
    logger = WandbLogger(save_dir=str(save_dir), offline=True, project="p", entity="e")
    assert isinstance(logger, LightningWandbLogger)  # callbacks find it as a WandbLogger
    assert "anonymous" not in logger._wandb_init
    assert save_dir.is_dir()
    assert logger._wandb_init["entity"] == "e"
    # Asked for explicitly, anonymous logging is still passed on.
    assert WandbLogger(save_dir=str(save_dir), anonymous=True)._wandb_init["anonymous"] == "allow"


def test_offline_run_prints_no_wandb_warning(tmp_path, monkeypatch, capfd) -> None:
    """A real offline run, from a folder outside any git repository, as the demo's first run."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "false")
    monkeypatch.chdir(tmp_path)
    lightning = LightningWandbLogger(save_dir="lightning_outputs", offline=True, project="p")
    ours = WandbLogger(save_dir="outputs", offline=True, project="p")
    for logger in (lightning, ours):
        logger.log_metrics({"x": 1.0}, step=0)
        logger.experiment.finish()
        logger._experiment = None
        captured = capfd.readouterr()
        warnings = [line for line in (captured.out + captured.err).splitlines() if "WARN" in line]
        if logger is lightning:
            # The control: Lightning's own logger does print them (else this test proves nothing).
            assert any("anonymous" in line for line in warnings), warnings
        else:
            assert warnings == []
    assert (tmp_path / "outputs" / "wandb").is_dir()
