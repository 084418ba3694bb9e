"""Checkpoints that survive a crash: atomic writes, and what an exact mid-epoch resume needs.

A run killed while writing (SIGKILL, a full disk, a pre-empted node) must never leave a torn
``last.ckpt`` behind, or the resume it exists for fails. :class:`AtomicCheckpointIO` writes each
checkpoint to a temporary file in the same directory, fsyncs it, ``os.replace``-s it over the
target (atomic on POSIX within one filesystem) and fsyncs the directory; on any error the
temporary file is removed and the previous checkpoint is untouched.

Wiring. :class:`ACGASegmenter` returns :class:`AtomicCheckpoints` from ``configure_callbacks``,
which installs :class:`AtomicCheckpointIO` on the trainer's strategy unless the user chose their
own ``CheckpointIO``. Without the segmenter, pass ``plugins=[AtomicCheckpointIO()]`` to the
``Trainer`` (or ``trainer.plugins`` in a LightningCLI config, with
``class_path: acga_lightning.checkpointing.AtomicCheckpointIO``).

Exact resume. The fit loop stores its batch progress and the training loader's state
(:class:`~acga_lightning.data.samplers.ResumableDataLoader`: epoch and batches served), the
order of every epoch is a function of ``(seed, epoch)``, and the model has no random layers, so
``trainer.fit(..., ckpt_path="last")`` after a kill continues bit for bit: see
:func:`mid_epoch_checkpoint` for the callback that saves often enough to resume mid-epoch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_fabric.utilities.cloud_io import get_filesystem
from lightning_fabric.utilities.types import _PATH
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

log = logging.getLogger(__name__)


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` through a temp file in the same directory, fsync and rename.

    On any error (``OSError`` such as ENOSPC, an unpicklable object, KeyboardInterrupt) the
    temp file is removed and ``path`` keeps its previous content. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        from acga_lightning.data.caching.features import umask_mode  # (the data package loads late)

        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise OSError(
                err.errno, f"could not write checkpoint {path}: {err.strerror or err}"
            ) from err
        if isinstance(err, RuntimeError) and "inline_container" in str(err):
            # torch's zip writer reports a failed write (a full disk) as "unexpected pos"
            raise OSError(
                f"could not write checkpoint {path} (disk full?): {str(err).splitlines()[0]}"
            ) from err
        raise
    _fsync_dir(path.parent)
    return path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning ``CheckpointIO`` that never leaves a partial checkpoint on local disk.

    Local paths are written by :func:`atomic_torch_save`; remote URLs (``s3://`` ...) fall back
    to Lightning's own writer, whose object stores publish an object only when it is complete.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(
                "AtomicCheckpointIO.save_checkpoint takes no storage_options, got "
                f"{storage_options!r}; use a CheckpointIO that supports them"
            )
        if "://" in str(path) and not str(path).startswith("file://"):
            super().save_checkpoint(checkpoint, path)
            return
        local = Path(str(path).removeprefix("file://"))
        atomic_torch_save(checkpoint, local)

    def remove_checkpoint(self, path: _PATH) -> None:
        fs = get_filesystem(path)
        if fs.exists(path):
            fs.rm(path, recursive=True)


def install_atomic_checkpoint_io(trainer: pl.Trainer) -> bool:
    """Give ``trainer``'s strategy an :class:`AtomicCheckpointIO` if it uses Lightning's default.

    A user's own ``CheckpointIO`` (or one wrapped, e.g. ``AsyncCheckpointIO``, around a custom
    one) is kept. Returns True when the atomic writer is in place afterwards.
    """
    strategy = trainer.strategy
    io = strategy.checkpoint_io
    inner = getattr(io, "checkpoint_io", None)  # _WrappingCheckpointIO (AsyncCheckpointIO)
    if type(io) is TorchCheckpointIO:
        strategy.checkpoint_io = AtomicCheckpointIO()
        return True
    if inner is not None and type(inner) is TorchCheckpointIO:
        io.checkpoint_io = AtomicCheckpointIO()
        return True
    return isinstance(io, AtomicCheckpointIO) or isinstance(inner, AtomicCheckpointIO)


def remove_stale_temp_files(dirpath: str | os.PathLike) -> list[Path]:
    """Delete the temp files a killed :func:`atomic_torch_save` left in ``dirpath``."""
    removed = []
    for tmp in Path(dirpath).glob(".*.ckpt.*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    if removed:
        log.warning("removed %d partial checkpoint file(s) of a killed run in %s", len(removed),
                    dirpath)  # fmt: skip
    return removed


class AtomicCheckpoints(Callback):
    """Callback that makes every checkpoint of the run atomic (see :class:`AtomicCheckpointIO`).

    At fit start it also deletes the temp files a run killed in mid-write left behind.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not install_atomic_checkpoint_io(trainer):
            log.info(
                "keeping the trainer's own CheckpointIO %s; checkpoints may not be atomic",
                type(trainer.strategy.checkpoint_io).__name__,
            )

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        for callback in trainer.checkpoint_callbacks:
            dirpath = getattr(callback, "dirpath", None)
            if dirpath and "://" not in str(dirpath) and Path(dirpath).is_dir():
                remove_stale_temp_files(dirpath)


class BestAndLastCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose ``last.ckpt`` is refreshed at every save point.

    Lightning 2.6 refreshes ``last.ckpt`` at an epoch's end only when a top-k checkpoint is
    saved at the same step, i.e. when the monitored metric improved: a run that stopped
    improving at epoch 18 of 30 kept epoch 18 in ``last.ckpt``, and a resume lost every epoch
    since. Here ``last.ckpt`` is written at every point where the parent considers saving
    (each epoch's end, or validation end, or ``every_n_train_steps``), whether or not the
    metric improved; the best checkpoint stays its own file. Same arguments as the parent.
    """

    _last_saved_at: int | None = None

    def _save_last_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        if self.save_last:
            self._last_saved_at = trainer.global_step

    def _refresh_last(self, trainer: pl.Trainer) -> None:
        if self.save_last and self._last_saved_at != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        due = not self._should_skip_saving_checkpoint(trainer) and (
            self._should_save_on_train_epoch_end(trainer)
        )
        super().on_train_epoch_end(trainer, pl_module)
        if due:
            self._refresh_last(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        due = not self._should_skip_saving_checkpoint(trainer) and not (
            self._should_save_on_train_epoch_end(trainer)
        )
        super().on_validation_end(trainer, pl_module)
        if due:
            self._refresh_last(trainer)

    def _ModelCheckpoint__warn_if_dir_not_empty(self, dirpath: Any) -> None:
        # A resumed run writes into its own folder again: not worth the parent's warning.
        if getattr(self, "_resuming", False):
            return
        super()._ModelCheckpoint__warn_if_dir_not_empty(dirpath)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._resuming = bool(trainer.ckpt_path)
        super().setup(trainer, pl_module, stage)


def mid_epoch_checkpoint(
    dirpath: str | os.PathLike | None = None, every_n_train_steps: int = 100
) -> ModelCheckpoint:
    """A ``ModelCheckpoint`` that refreshes ``last.ckpt`` every ``every_n_train_steps`` steps.

    With it, a killed run loses at most that many steps: resume with ``ckpt_path="last"``.
    """
    if every_n_train_steps < 1:
        raise ValueError(f"every_n_train_steps: expected >= 1, got {every_n_train_steps}")
    return ModelCheckpoint(
        dirpath=dirpath, save_last=True, save_top_k=0, every_n_train_steps=every_n_train_steps
    )


def load_checkpoint_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint on CPU; a missing or torn file raises ``ValueError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint: file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        raise ValueError(f"{path}: truncated or corrupt checkpoint ({err})") from err


def check_checkpoint_file(path: str | os.PathLike) -> None:
    """Fail fast, naming ``path``, when it cannot be a checkpoint (missing, truncated, text).

    Reads only the zip directory at the file's end (``torch.save``'s format), so it costs
    milliseconds where loading costs the whole file; the old pickle format is let through.
    """
    import zipfile

    from acga_lightning.errors import ConfigError

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"ckpt_path: checkpoint file not found: {path}")
    if not path.is_file():
        raise ConfigError(f"ckpt_path: {path} is not a file")
    try:
        with path.open("rb") as f:
            head = f.read(2)
        if head[:1] == b"\x80":  # torch.save(..., _use_new_zipfile_serialization=False)
            return
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile) as err:
        size = path.stat().st_size if path.exists() else 0
        raise ConfigError(
            f"ckpt_path: {path} is not a readable PyTorch checkpoint (truncated, or not a "
            f"checkpoint file; {size} bytes): {err}"
        ) from err
    if not any(name.endswith("data.pkl") for name in names):
        raise ConfigError(f"ckpt_path: {path} is a zip file but not a PyTorch checkpoint")
