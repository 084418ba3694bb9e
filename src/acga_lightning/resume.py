"""``--ckpt_path last`` that finds the run to resume, whatever folder its logger put it in.

Lightning looks for ``last.ckpt`` only in the checkpoint folder of the run it is starting. With
a logger that names that folder after a fresh run id (wandb: ``<save_dir>/<project>/<run
id>/checkpoints``) the folder is new on every start, so ``last`` never finds the interrupted run
and training silently starts again from epoch 0.

Here each fit writes :data:`RUN_RECORD` beside its checkpoints (the experiment's name, the
logger and its run id or version). ``last`` then means: the newest ``last*.ckpt`` among the
checkpoint folders of the same experiment, that is the same logger ``save_dir``, the same
project (``name`` for CSV and TensorBoard loggers) and, for wandb, the same run ``name``; or
the ``ModelCheckpoint``'s own ``dirpath`` when the config sets one. The logger then continues
that run (wandb: same run id, ``resume="allow"``; CSV/TensorBoard: same version folder), so
the resumed epochs land in the same folder as the first ones.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

log = logging.getLogger(__name__)

RUN_RECORD = "run.json"


def experiment_name(logger: Any) -> str | None:
    """What makes two runs "the same experiment" for ``logger`` (beyond its folder)."""
    init = getattr(logger, "_wandb_init", None)
    if isinstance(init, dict):
        return init.get("name")
    return None


def _checkpoint_callbacks(trainer: pl.Trainer) -> list[ModelCheckpoint]:
    return [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]


def _logger(trainer: pl.Trainer) -> Any:
    return trainer.loggers[0] if trainer.loggers else None


def _identity(logger: Any) -> dict[str, Any]:
    """The fields of a run record that say which experiment a run belongs to."""
    return {"logger": type(logger).__name__ if logger else None,
            "experiment": experiment_name(logger)}  # fmt: skip


def _project_root(logger: Any, trainer: pl.Trainer) -> Path:
    """``<save_dir>/<name>``: the folder holding every run of ``logger``'s project."""
    save_dir = logger.save_dir if logger.save_dir is not None else trainer.default_root_dir
    return Path(save_dir) / str(logger.name)


def candidate_dirs(trainer: pl.Trainer) -> list[tuple[Path, bool]]:
    """Checkpoint folders that may hold this experiment's runs, each with "needs a record".

    A folder the config names (``dirpath``) or the no-logger default is the experiment's own;
    folders under the logger's ``save_dir/name`` are shared by every run of the project and
    count only when their :data:`RUN_RECORD` names the same experiment.
    """
    dirs: list[tuple[Path, bool]] = []
    for callback in _checkpoint_callbacks(trainer):
        if callback.dirpath is not None:
            dirs.append((Path(callback.dirpath), False))
    if dirs:
        return dirs
    if not trainer.loggers:
        return [(Path(trainer.default_root_dir) / "checkpoints", False)]
    root = _project_root(_logger(trainer), trainer)
    return [(d, True) for d in sorted(root.glob("*/checkpoints"))] if root.is_dir() else []


def read_record(directory: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((directory / RUN_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def find_last_checkpoint(trainer: pl.Trainer) -> tuple[Path, dict[str, Any]] | None:
    """The newest ``last*.ckpt`` of this experiment and its run record, or None."""
    wanted = _identity(_logger(trainer))
    found: list[tuple[float, Path, dict[str, Any]]] = []
    for directory, needs_record in candidate_dirs(trainer):
        record = read_record(directory)
        if needs_record and (record is None or any(record.get(k) != v for k, v in wanted.items())):
            continue
        for path in directory.glob("last*.ckpt"):
            found.append((path.stat().st_mtime, path, record or {}))
    if not found:
        return None
    _, path, record = max(found, key=lambda item: item[0])
    return path, record


def continue_logger_run(logger: Any, version: Any) -> bool:
    """Point a not-yet-started ``logger`` at run ``version``; False where it cannot be done."""
    if version is None or logger is None:
        return False
    init = getattr(logger, "_wandb_init", None)
    if isinstance(init, dict):
        if getattr(logger, "_experiment", None) is not None:
            return False
        init["id"], init["resume"] = str(version), "allow"
        logger._id = str(version)
        return True
    if hasattr(logger, "_version") and getattr(logger, "_experiment", None) is None:
        logger._version = version
        return True
    return False


def resolve_last(trainer: pl.Trainer) -> tuple[Path | None, str]:
    """``ckpt_path="last"`` for ``trainer``: the checkpoint (or None) and a one-line notice."""
    found = find_last_checkpoint(trainer)
    if found is None:
        where = ", ".join(str(d) for d, _ in candidate_dirs(trainer)) or _search_root(trainer)
        return None, (
            f"--ckpt_path last: nothing to resume (no last.ckpt of this experiment under {where}); "
            "training starts from scratch"
        )
    path, record = found
    version = record.get("version")
    continued = continue_logger_run(_logger(trainer), version)
    run = f", continuing logger run {version}" if continued else ""
    return path, f"--ckpt_path last: resuming from {path}{run}"


def _search_root(trainer: pl.Trainer) -> str:
    if not trainer.loggers:
        return str(Path(trainer.default_root_dir) / "checkpoints")
    return str(_project_root(_logger(trainer), trainer) / "*" / "checkpoints")


class RunRecord(Callback):
    """Writes :data:`RUN_RECORD` (experiment, logger, run id) beside each run's checkpoints."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        logger = _logger(trainer)
        record = {**_identity(logger), "version": logger.version if logger else None}
        for callback in _checkpoint_callbacks(trainer):
            if callback.dirpath is None or "://" in str(callback.dirpath):
                continue
            directory = Path(callback.dirpath)
            directory.mkdir(parents=True, exist_ok=True)
            tmp = directory / f".{RUN_RECORD}.tmp"
            tmp.write_text(json.dumps(record) + "\n")
            os.replace(tmp, directory / RUN_RECORD)
