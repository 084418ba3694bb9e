"""A callback that presses Ctrl-C: SIGINT to its own process at a chosen epoch and batch."""

from __future__ import annotations

import os
import signal

import pytorch_lightning as pl


class SigintAt(pl.Callback):
    """Sends SIGINT to this process after batch ``batch`` of epoch ``epoch`` (0-based)."""

    def __init__(self, epoch: int = 1, batch: int = 0) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGINT)
