"""Configs written before one datamodule per dataset (``data: {dataset: a2d, ...}``).

Those configs named the dataset with ``data.dataset`` (``a2d``, ``jhmdb``, ``acga_h5`` or ``toy``,
generated A2D data) and passed reader options in ``data.dataset_options``.
:func:`migrate_data_config` rewrites such a ``data`` section into today's form
(``class_path`` + ``init_args``), so an old config or the ``config.yaml`` an old run saved still
runs; ``acga`` says once that it did so. An old config that includes (``__base__``) one of today's
gives, once merged, a section with ``class_path`` beside old-form keys (``root: ...``): those
keys are moved into ``init_args`` (``dataset``, if given, choosing the class).
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


#: The keys of a class section in today's form; any other key beside ``class_path`` is old-form.
SECTION_KEYS = ("class_path", "init_args", "dict_kwargs")


def shared_settings(init_args: dict[str, Any]) -> dict[str, Any]:
    """The settings of ``init_args`` that every datamodule takes (batch size, clip size, word
    vectors, cache, ...), without those of one dataset (``root``, ``toy``, reader options)."""
    import inspect

    from acga_lightning.data.base import ReferringDataModule

    shared = set(inspect.signature(ReferringDataModule.__init__).parameters)
    shared -= {"self", "root", "toy"}
    return {k: v for k, v in init_args.items() if k in shared}


def same_class(a: Any, b: Any) -> bool:
    """Whether two ``data.class_path`` values name one class (``A2DDataModule`` is short for
    ``acga_lightning.data.A2DDataModule``)."""
    return str(a).rpartition(".")[2] == str(b).rpartition(".")[2]


def migrate_data_config(data: Any) -> tuple[Any, str | None]:
    """``data`` in today's form and a one-line notice, or ``data`` as given and None."""
    if not isinstance(data, dict):
        return data, None
    old = {k: v for k, v in data.items() if k not in SECTION_KEYS}
    base = data.get("class_path")
    if (base is None and "dataset" not in old) or (base is not None and not old):
        return data, None
    from acga_lightning.cli import merge_configs
    from acga_lightning.data.datamodules import DATAMODULES
    from acga_lightning.errors import ConfigError

    name = old.pop("dataset", None)
    if name is not None and name not in LEGACY_DATASETS:
        raise ConfigError(
            f"data.dataset: {name!r} is not a dataset of the old form "
            f"({', '.join(LEGACY_DATASETS)}); name a datamodule with data.class_path instead"
        )
    old.update(old.pop("dataset_options", None) or {})
    kept = dict(data.get("init_args") or {})
    if name is None:  # old-form keys over today's section (an old config including a new one)
        class_path = base
        what = ", ".join(f"data.{key}" for key in sorted(data.keys() - set(SECTION_KEYS)))
        notice = f"{what} beside data.class_path: the old form; read as data.init_args"
        init_args = merge_configs(kept, old)
    else:
        fmt, generated = LEGACY_DATASETS[name]
        cls = DATAMODULES[fmt]
        class_path = f"{cls.__module__}.{cls.__name__}"
        if base is not None and not same_class(base, cls.__name__):
            kept = shared_settings(kept)  # another dataset than the included config's
        init_args = merge_configs(kept, old)
        if generated:
            init_args["toy"] = init_args.get("toy") or {}
        else:
            init_args.pop("toy", None)  # the old form ignored toy settings for real data
        notice = f"data.dataset: {name!r} is the old form; read as data.class_path: {cls.__name__}"
        notice += " with data.toy" if generated else ""
    section = {k: v for k, v in data.items() if k in SECTION_KEYS}
    section.update(class_path=class_path, init_args=init_args)
    return section, f"{notice} (see docs/data.md to update the config)"
