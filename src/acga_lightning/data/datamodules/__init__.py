"""One LightningDataModule per dataset, each a small subclass of
:class:`~acga_lightning.data.base.ReferringDataModule`.

Every module in this package is imported here, so a new dataset's datamodule is registered
(:data:`~acga_lightning.data.base.DATAMODULES`, by format name) and known to LightningCLI's
``data.class_path`` by its short name as soon as its file is added; nothing else is edited.
"""

import importlib
import pkgutil

from acga_lightning.data.base import DATAMODULES, ReferringDataModule

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

from acga_lightning.data.datamodules.a2d import A2DDataModule  # noqa: E402
from acga_lightning.data.datamodules.acga_h5 import ACGAReleaseDataModule  # noqa: E402
from acga_lightning.data.datamodules.jhmdb import JHMDBDataModule  # noqa: E402
from acga_lightning.data.datamodules.ref_vos import (  # noqa: E402
    RefDAVIS17DataModule,
    RefYouTubeVOSDataModule,
)

__all__ = [
    "DATAMODULES",
    "A2DDataModule",
    "ACGAReleaseDataModule",
    "JHMDBDataModule",
    "RefDAVIS17DataModule",
    "RefYouTubeVOSDataModule",
    "ReferringDataModule",
]
