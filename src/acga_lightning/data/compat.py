"""Configs written before one datamodule per dataset (``data: {dataset: a2d, ...}``).

Those configs named the dataset with ``data.dataset`` (``a2d``, ``jhmdb``, ``acga_h5`` or ``toy``,
generated A2D data) and passed reader options in ``data.dataset_options``.
:func:`migrate_data_config` rewrites such a ``data`` section into today's form
(``class_path`` + ``init_args``), so an old config or the ``config.yaml`` an old run saved still
runs; ``acga`` says once that it did so.
"""

from __future__ import annotations

from typing import Any

#: old ``data.dataset`` -> (today's format name, whether the data is generated)
LEGACY_DATASETS = {
    "a2d": ("a2d", False),
    "toy": ("a2d", True),
    "jhmdb": ("jhmdb", False),
    "acga_h5": ("acga_h5", False),
}


def migrate_data_config(data: Any) -> tuple[Any, str | None]:
    """``data`` in today's form and a one-line notice, or ``data`` as given and None."""
    if not isinstance(data, dict) or "dataset" not in data or "class_path" in data:
        return data, None
    from acga_lightning.data.datamodules import DATAMODULES
    from acga_lightning.errors import ConfigError

    old = dict(data)
    name = old.pop("dataset")
    if name not in LEGACY_DATASETS:
        raise ConfigError(
            f"data.dataset: {name!r} is not a dataset of the old form "
            f"({', '.join(LEGACY_DATASETS)}); name a datamodule with data.class_path instead"
        )
    fmt, generated = LEGACY_DATASETS[name]
    options = old.pop("dataset_options", None) or {}
    toy = old.pop("toy", None)
    init_args = {**old, **options}
    if generated:
        init_args["toy"] = toy or {}
    cls = DATAMODULES[fmt]
    notice = (
        f"data.dataset: {name!r} is the old form; read as data.class_path: {cls.__name__}"
        + (" with data.toy" if generated else "")
        + " (see docs/data.md to update the config)"
    )
    return {"class_path": f"{cls.__module__}.{cls.__name__}", "init_args": init_args}, notice
