"""Experiment loggers: Lightning's WandbLogger without the two warnings it makes wandb print.

``pytorch_lightning.loggers.WandbLogger`` always passes ``anonymous=None`` to ``wandb.init``,
and wandb (0.19 on) warns "The anonymous setting has no effect" for any value it is given.
wandb also looks for a git repository from the run's ``dir`` before that folder exists, and
warns "git root outputs does not exist" on every first run. Both warnings are about our
plumbing, not the user's run, so this logger drops the one argument and creates the folder.
Everything else is Lightning's: same arguments, same behaviour.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger


class WandbLogger(_LightningWandbLogger):
    """Lightning's :class:`~pytorch_lightning.loggers.WandbLogger`, minus two spurious warnings.

    Takes exactly Lightning's arguments (``project``, ``entity``, ``save_dir``, ``offline``, ...).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
        save_dir = self._wandb_init.get("dir")
        if save_dir:
            Path(save_dir).mkdir(parents=True, exist_ok=True)
