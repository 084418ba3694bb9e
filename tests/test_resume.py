"""resume: what ``--ckpt_path last`` picks, and the logger run it continues.

The whole Ctrl-C-then-resume sequence through the real CLI is in
``tests/reliability/test_resume_cli.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl

from acga_lightning.checkpointing import BestAndLastCheckpoint


def test_last_means_the_newest_last_ckpt_of_the_same_experiment(tmp_path):
    """Runs of other experiments in the same project, and folders without a record, are left."""
    import json
    import time

    from acga_lightning.loggers import WandbLogger
    from acga_lightning.resume import RUN_RECORD, resolve_last

    def run(run_id: str, experiment: str | None) -> Path:
        folder = tmp_path / "outputs" / "acga-lightning" / run_id / "checkpoints"
        folder.mkdir(parents=True)
        if experiment is not None:
            record = {"logger": "WandbLogger", "experiment": experiment, "version": run_id}
            (folder / RUN_RECORD).write_text(json.dumps(record))
        (folder / "last.ckpt").write_bytes(b"x")
        time.sleep(0.01)  # distinct mtimes, oldest first
        return folder / "last.ckpt"

    old, mine = run("aaaa1111", "demo"), run("bbbb2222", "demo")
    run("cccc3333", "a2d"), run("dddd4444", None)  # newer, but not this experiment's
    logger = WandbLogger(project="acga-lightning", name="demo", save_dir=str(tmp_path / "outputs"),
                         offline=True)  # fmt: skip
    trainer = pl.Trainer(logger=logger, callbacks=[BestAndLastCheckpoint(save_last=True)],
                         enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    path, notice = resolve_last(trainer)
    assert path == mine != old
    assert notice == f"--ckpt_path last: resuming from {mine}, continuing logger run bbbb2222"
    assert logger._wandb_init["id"] == "bbbb2222" and logger.version == "bbbb2222"
    other = WandbLogger(project="acga-lightning", name="new", save_dir=str(tmp_path / "outputs"),
                        offline=True)  # fmt: skip
    trainer = pl.Trainer(logger=other, enable_progress_bar=False, enable_model_summary=False)
    path, notice = resolve_last(trainer)
    assert path is None and "nothing to resume" in notice and "from scratch" in notice
