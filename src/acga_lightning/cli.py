"""The ``acga`` command: LightningCLI for fit/validate/test/predict, plus data and model tools.

``acga fit --config configs/demo.yaml`` trains; ``acga toy-data``, ``acga check-data``,
``acga cache-features``, ``acga plugins`` and ``acga segment`` are the tools around it.
``main(args)`` takes the argument list, so tests run the real CLI in-process.

Composing configs: a YAML file may name other YAML files under the top-level key
``__base__`` (a path or a list of paths, relative to the file that names them). They are
loaded first, in order, and the file's own settings are merged over them (see
:func:`load_config`), so ``configs/a2d_baseline.yaml`` only states how it differs from the
shared ``configs/base/*.yaml``. ``acga fit --config FILE`` resolves the includes before
LightningCLI sees the file; later ``--config`` files and ``--section.key`` flags still override.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# Lightning 2.6 still calls jsonargparse APIs that 4.4x deprecates: noise for our users.
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

BASE_KEY = "__base__"
CONFIG_FLAGS = ("--config", "-c")


def merge_configs(base: Any, override: Any, _path: tuple[str, ...] = ()) -> Any:
    """``override`` merged over ``base``: mappings key by key (recursively), anything else replaced.

    Lists (e.g. ``trainer.callbacks``) are replaced whole. A model part spec
    (``model.<part>: {name: ...}``) whose ``name`` changes, or a ``{class_path: ...}`` whose
    class changes, is replaced, not merged: ``decoder: {name: single}`` drops the base
    decoder's arguments, ``logger: {class_path: ...CSVLogger}`` the base logger's.
    """
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    is_part = len(_path) == 2 and _path[0] == "model"
    for key in ("name",) * is_part + ("class_path",):
        if key in base and key in override and base[key] != override[key]:
            return override
    merged = dict(base)
    for key, value in override.items():
        merged[key] = merge_configs(base[key], value, (*_path, key)) if key in base else value
    return merged


def load_config(path: str | os.PathLike, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """A YAML config with its ``__base__`` includes resolved (recursively, cycles rejected)."""
    from pathlib import Path

    import yaml

    path = Path(path)
    key = str(path.resolve())
    if key in _seen:
        raise ValueError(f"{path}: __base__ includes form a cycle: {' -> '.join(_seen + (key,))}")
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    config = yaml.safe_load(path.read_text()) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: a config must be a mapping, got {type(config).__name__}")
    bases = config.pop(BASE_KEY, None) or []
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ValueError(f"{path}: {BASE_KEY} must be a path or a list of paths, got {bases!r}")
    merged: dict[str, Any] = {}
    for base in bases:
        merged = merge_configs(merged, load_config(path.parent / base, _seen + (key,)))
    return merge_configs(merged, config)


def resolve_config_args(argv: Sequence[str]) -> list[str]:
    """``argv`` with every ``--config FILE`` that uses ``__base__`` replaced by the merged YAML.

    Files without includes are passed on unchanged (LightningCLI then reports errors with
    their path); merged ones are passed as YAML text, which ``--config`` also accepts.
    """
    from pathlib import Path

    import yaml

    out: list[str] = []
    i = 0
    while i < len(argv):
        arg, value = argv[i], None
        if arg in CONFIG_FLAGS and i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
        elif arg.startswith("--config="):
            arg, value, i = "--config", arg.split("=", 1)[1], i + 1
        else:
            out.append(arg)
            i += 1
            continue
        path = Path(value)
        if path.suffix in (".yaml", ".yml") and path.is_file():
            raw = yaml.safe_load(path.read_text())
            if isinstance(raw, dict) and BASE_KEY in raw:
                value = yaml.safe_dump(load_config(path), sort_keys=False)
        out.extend([arg, value])
    return out


def _plugins_main(argv: Sequence[str] | None = None) -> int:
    """``acga plugins``: every registered part with its constructor arguments and defaults."""
    import argparse

    from rich.console import Console
    from rich.table import Table

    from acga_lightning.registry import REGISTRIES

    parser = argparse.ArgumentParser(prog="acga plugins", description=_plugins_main.__doc__)
    parser.add_argument("--kind", choices=sorted(REGISTRIES), help="only this kind of part")
    args = parser.parse_args(argv)
    table = Table(title="acga-lightning plug-ins (use a name, or {name: ..., <argument>: ...})")
    for column in ("kind", "name", "arguments (defaults)", "what it is"):
        table.add_column(column)
    for kind, registry in REGISTRIES.items():
        if args.kind and kind != args.kind:
            continue
        for name in registry.names():
            arguments = ", ".join(
                k if v is inspect.Parameter.empty else f"{k}={v!r}"
                for k, v in registry.signature(name).items()
            )
            doc = (inspect.getdoc(registry.get(name)) or "").split("\n")[0]
            table.add_row(kind, name, arguments, doc)
    Console(width=200).print(table)
    return 0


def _lazy(module: str, function: str) -> Callable[[Sequence[str] | None], int]:
    def run(argv: Sequence[str] | None = None) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), function)(argv) or 0)

    return run


TOOLS: dict[str, Callable[[Sequence[str] | None], int]] = {
    "plugins": _plugins_main,
    "toy-data": _lazy("acga_lightning.data.toy", "toy_data_main"),
    "check-data": _lazy("acga_lightning.data.check", "check_data_main"),
    "cache-features": lambda argv=None: cache_features_main(argv),
    "segment": _lazy("acga_lightning.segment", "segment_main"),
    "convert-official": _lazy("acga_lightning.convert", "convert_official_main"),
}


def check_feature_spec(model: Any, datamodule: Any) -> None:
    """Fail early when cached features and the model's ``video_encoder`` do not fit together."""
    wanted = getattr(datamodule, "feature_spec", None)
    encoder = dict(model.hparams.get("video_encoder") or {})
    if wanted is None:
        if encoder.get("name") == "precomputed":
            raise ValueError(
                "model.video_encoder is 'precomputed' but the data has no cached features: set "
                "data.cache.mode (mixed_4e or final) or use a frames encoder such as i3d"
            )
        return
    if encoder.get("name") != "precomputed" or encoder.get("endpoint") != wanted["endpoint"]:
        raise ValueError(
            f"data.cache.mode {wanted['endpoint']!r} gives cached features: model.video_encoder "
            f"must be {wanted} (got {encoder})"
        )


def _build_cli_class(started: float | None = None) -> type:
    """The CLI class; ``started`` (``time.monotonic()``) is when a ``--time_budget_minutes``
    starts counting (default: when fit starts)."""
    from pytorch_lightning.cli import LightningCLI

    class ACGALightningCLI(LightningCLI):
        """LightningCLI with the data settings linked into the model and an optional final test."""

        def add_arguments_to_parser(self, parser: Any) -> None:
            parser.add_argument(
                "--test_after_fit",
                type=bool,
                default=False,
                help="after fit, test the best (else last) checkpoint and print the metric table",
            )
            parser.add_argument(
                "--torch_threads",
                type=int | None,
                default=None,
                help="torch.set_num_threads before anything runs (None: torch's default). "
                "On a small CPU shared with other jobs, 1 avoids OpenMP oversubscription.",
            )
            parser.add_argument(
                "--time_budget_minutes",
                type=float | None,
                default=None,
                help="fit: end the whole command (start-up, data, training, the final test) "
                "within this many minutes, shortening the epoch schedule when this machine is "
                "too slow for it (acga_lightning.time_budget.TimeBudget). None: no budget.",
            )
            parser.add_argument(
                "--time_budget_reserve_minutes",
                type=float,
                default=1.0,
                help="of the time budget, the minutes kept for what follows training",
            )
            parser.link_arguments("data.num_frames", "model.num_frames")
            parser.link_arguments("data.frame_size", "model.frame_size")
            parser.link_arguments("data.resize_policy", "model.resize_policy")

        def before_instantiate_classes(self) -> None:
            config = self.config.get(self.subcommand, self.config) if self.subcommand else None
            threads = (config or self.config).get("torch_threads")
            if threads is not None:
                if threads < 1:
                    raise ValueError(f"torch_threads: expected >= 1, got {threads}")
                import torch

                torch.set_num_threads(threads)

        def _check(self) -> None:
            check_feature_spec(self.model, self.datamodule)

        before_validate = before_test = before_predict = _check

        def before_fit(self) -> None:
            self._check()
            minutes = self.config[self.subcommand].get("time_budget_minutes")
            if minutes is not None:
                from acga_lightning.time_budget import TimeBudget

                reserve = self.config[self.subcommand].get("time_budget_reserve_minutes", 1.0)
                self.trainer.callbacks.append(TimeBudget(minutes, reserve, started=started))

        def after_fit(self) -> None:
            if not self.config[self.subcommand].get("test_after_fit"):
                return
            if self.trainer.interrupted or self.trainer.fast_dev_run:
                best = ""  # fast_dev_run saves no checkpoint: test the weights in memory
            else:
                callback = self.trainer.checkpoint_callback
                best = getattr(callback, "best_model_path", "") if callback else ""
            results = self.trainer.test(
                self.model, datamodule=self.datamodule, ckpt_path=best or None, verbose=False
            )
            if self.trainer.is_global_zero and results:
                print(f"test metrics of {best or 'the last weights'}:")
                print_metric_table(results[0], title="test metrics")

    return ACGALightningCLI


def print_metric_table(results: dict[str, Any], title: str = "metrics") -> None:
    """Print logged metrics as a table, one row per metric."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(results):
        value = float(results[key])
        table.add_row(key, f"{value:.4f}")
    Console(width=120).print(table)


def _lightning_classes() -> tuple[type, type]:
    from acga_lightning.data.datamodule import ReferringVideoDataModule
    from acga_lightning.segmenter import ACGASegmenter

    return ACGASegmenter, ReferringVideoDataModule


def cache_features_main(argv: Sequence[str] | None = None) -> int:
    """``acga cache-features --config FILE [--data.* ...] [--splits train test]``.

    Parses the same config as ``acga fit`` (with the same parser), builds only the datamodule
    and computes its missing feature-cache entries with a progress bar; returns 0.
    """
    model_class, data_class = _lightning_classes()

    class CacheFeaturesCLI(_build_cli_class()):
        def add_arguments_to_parser(self, parser: Any) -> None:
            super().add_arguments_to_parser(parser)
            parser.add_argument(
                "--splits",
                type=list[str] | None,
                default=None,
                help="splits to cache (default: every split the dataset has)",
            )

        def instantiate_classes(self) -> None:
            # Only the data: the model and trainer (logger, callbacks) are not needed here.
            self.datamodule = self.datamodule_class(**self.config["data"].as_dict())

    cli = CacheFeaturesCLI(
        model_class, data_class, args=resolve_config_args(list(argv or [])), run=False,
        parser_kwargs={"prog": "acga cache-features"},
    )  # fmt: skip
    datamodule = cli.datamodule
    if not datamodule.cache_settings.enabled:
        raise SystemExit("acga cache-features: data.cache.mode is 'none'; nothing to cache")
    if datamodule.hparams.dataset == "toy":
        datamodule.generate_toy_data()
    splits = cli.config.get("splits")
    from acga_lightning.data.datamodule import build_cache

    report = build_cache(datamodule, tuple(splits) if splits else None, progress=True)
    print(f"feature cache {datamodule.feature_cache().root}: {report}")
    return 0


def main(args: Sequence[str] | None = None) -> Any:
    """Entry point of ``acga``: returns the LightningCLI object (or a tool's exit code) when
    ``args`` is given (tests), None when it reads ``sys.argv`` (the console script)."""
    started = time.monotonic()
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in TOOLS:
        code = TOOLS[argv[0]](argv[1:])
        if args is None:
            sys.exit(code)
        return code
    model_class, data_class = _lightning_classes()
    cli_class = _build_cli_class(started)
    with warnings.catch_warnings():
        # The console script hands LightningCLI sys.argv with its __base__ includes resolved,
        # so `args` and sys.argv are the same command line by construction: LightningCLI's
        # "not recommended to provide both" warning would be printed on every `acga fit`.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        # Lightning 2.6's own use of torch.utils._pytree on torch >= 2.10: nothing a user of
        # ours can act on (tests list it in pyproject's allow-list too).
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`")
        cli = cli_class(
            model_class,
            data_class,
            args=resolve_config_args(argv),
            save_config_kwargs={"overwrite": True},
        )
    return cli if args is not None else None  # the console script passes this to sys.exit


if __name__ == "__main__":
    main()
