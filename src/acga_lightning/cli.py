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
    decoder's arguments, ``logger: {class_path: ...CSVLogger}`` the base logger's. A ``data``
    section that names another datamodule keeps the base's settings that every datamodule
    takes (batch and clip size, word vectors, cache, ...), not those of the base's dataset
    (``root``, ``toy``, reader options).
    """
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    is_part = len(_path) == 2 and _path[0] == "model"
    for key in ("name",) * is_part + ("class_path",):
        if key in base and key in override and base[key] != override[key]:
            if _path != ("data",) or key != "class_path":
                return override
            from acga_lightning.data.compat import same_class, shared_settings

            if not same_class(base[key], override[key]):  # A2DDataModule = its full path
                kept = shared_settings(base.get("init_args") or {})
                given = override.get("init_args") or {}
                return {**override, "init_args": merge_configs(kept, given, ("data", "init_args"))}
    merged = dict(base)
    for key, value in override.items():
        merged[key] = merge_configs(base[key], value, (*_path, key)) if key in base else value
    return merged


def read_yaml(path: Any) -> Any:
    """A YAML file's content; a syntax error is a ``ConfigError`` naming the file and line."""
    import yaml

    from acga_lightning.errors import ConfigError

    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML ({problem})") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a text (UTF-8) YAML file ({err.reason})") from err


def load_config(path: str | os.PathLike, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """A YAML config with its ``__base__`` includes resolved (recursively, cycles rejected)."""
    from pathlib import Path

    path = Path(path)
    key = str(path.resolve())
    if key in _seen:
        raise ValueError(f"{path}: __base__ includes form a cycle: {' -> '.join(_seen + (key,))}")
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    config = read_yaml(path) or {}
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
    their path); merged ones are passed as YAML text, which ``--config`` also accepts. A
    ``data`` section of the old form (``data.dataset``) is rewritten too
    (:func:`~acga_lightning.data.compat.migrate_data_config`), with a notice on stderr.
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
            raw = read_yaml(path)
            if isinstance(raw, dict) and (BASE_KEY in raw or "data" in raw):
                config = load_config(path)
                from acga_lightning.data.compat import migrate_data_config

                notice = None
                if "data" in config:  # a config without one must not gain ``data: null``
                    config["data"], notice = migrate_data_config(config["data"])
                if notice:
                    print(f"{path}: {notice}", file=sys.stderr)
                if BASE_KEY in raw or notice:
                    value = yaml.safe_dump(config, sort_keys=False)
        out.extend([arg, value])
    return out


def _plugins_main(argv: Sequence[str] | None = None) -> int:
    """``acga plugins``: every registered part with its constructor arguments and defaults.

    Parts of installed plug-in packages (entry-point group ``acga_lightning.plugins``) are listed
    with the package they come from.
    """
    import argparse

    from rich.console import Console
    from rich.table import Table

    from acga_lightning.registry import REGISTRIES, load_plugins, origin

    parser = argparse.ArgumentParser(prog="acga plugins", description=_plugins_main.__doc__)
    parser.add_argument("--kind", choices=sorted(REGISTRIES), help="only this kind of part")
    args = parser.parse_args(argv)
    modules = load_plugins()
    table = Table(title="acga-lightning plug-ins (use a name, or {name: ..., <argument>: ...})")
    for column in ("kind", "name", "from", "arguments (defaults)", "what it is"):
        table.add_column(column)
    for kind, registry in REGISTRIES.items():
        if args.kind and kind != args.kind:
            continue
        for name in registry.names():
            cls = registry.get(name)
            arguments = ", ".join(
                k if v is inspect.Parameter.empty else f"{k}={v!r}"
                for k, v in registry.signature(name).items()
            )
            doc = (inspect.getdoc(cls) or "").split("\n")[0]
            table.add_row(kind, name, origin(cls), arguments, doc)
    Console(width=200).print(table)
    packages = sorted(set(modules.values()))
    print(f"plug-in packages: {', '.join(packages) if packages else 'none installed'}")
    return 0


def _lazy(module: str, function: str) -> Callable[[Sequence[str] | None], int]:
    def run(argv: Sequence[str] | None = None) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), function)(argv) or 0)

    return run


TOOLS: dict[str, Callable[[Sequence[str] | None], int]] = {
    "plugins": _plugins_main,
    "toy-data": _lazy("acga_lightning.data.synthetic", "toy_data_main"),
    "check-data": _lazy("acga_lightning.data.check", "check_data_main"),
    "cache-features": lambda argv=None: cache_features_main(argv),
    "segment": _lazy("acga_lightning.segment", "segment_main"),
    "convert-official": _lazy("acga_lightning.convert", "convert_official_main"),
}


def cache_features_main(argv: Sequence[str] | None = None) -> int:
    """``acga cache-features --config FILE [--data.* ...] [--splits train test]``.

    Parses the same config as ``acga fit`` (with the same parser), builds only the datamodule
    and computes its missing feature-cache entries with a progress bar; returns 0.
    """
    from acga_lightning.lightning_cli import ACGALightningCLI

    class CacheFeaturesCLI(ACGALightningCLI):
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
            import importlib

            from jsonargparse import Namespace

            data = self.config["data"]
            if isinstance(data, Namespace) and "class_path" in data:
                module, _, name = data.class_path.rpartition(".")
                cls = getattr(importlib.import_module(module), name)
                self.datamodule = cls(**(data.get("init_args") or Namespace()).as_dict())
            else:  # a datamodule class of its own (not subclass mode)
                self.datamodule = self.datamodule_class(**data.as_dict())

    # The model and data classes are ACGALightningCLI's defaults; it resolves __base__ itself.
    cli = CacheFeaturesCLI(
        args=list(argv or []), run=False, parser_kwargs={"prog": "acga cache-features"}
    )
    datamodule = cli.datamodule
    if not datamodule.cache_settings.enabled:
        raise SystemExit("acga cache-features: data.cache.mode is 'none'; nothing to cache")
    datamodule.generate_toy_data()
    splits = cli.config.get("splits")
    from acga_lightning.data.base import build_cache

    report = build_cache(datamodule, tuple(splits) if splits else None, progress=True)
    print(f"feature cache {datamodule.feature_cache().root}: {report}")
    return 0


SUBCOMMANDS: dict[str, str] = {
    "fit": "train (and validate) a model from a config: acga fit --config configs/demo.yaml",
    "validate": "evaluate a checkpoint on the validation split",
    "test": "evaluate a checkpoint on the test split and print the metric table",
    "predict": "write each sample's mask (PNG) and a scores file from a checkpoint",
    "segment": "segment the actor a sentence names in every frame of any video",
    "toy-data": "write generated data in a real layout (a2d, jhmdb, ytvos, davis)",
    "check-data": "check a data set on disk against its format, naming every fault",
    "cache-features": "compute a config's video-encoder feature cache ahead of training",
    "plugins": "list every registered part (built-in and plug-ins) with its arguments",
    "convert-official": "convert the official ACGA release's model_best.pth.tar to a checkpoint",
}


def print_help() -> None:
    """``acga --help``: every subcommand, one line each."""
    from acga_lightning import __version__

    width = max(len(name) for name in SUBCOMMANDS)
    lines = [
        f"usage: acga <command> [options]      (acga-lightning {__version__})",
        "",
        "Referring video segmentation with the Asymmetric Cross-Guided Attention network.",
        "",
        "commands:",
        *(f"  {name:<{width}}  {text}" for name, text in SUBCOMMANDS.items()),
        "",
        "acga <command> --help shows a command's options. fit, validate, test and predict are",
        "LightningCLI commands: --config FILE, then any key as --section.key VALUE.",
    ]
    print("\n".join(lines))


def data_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean the data on disk must change (exit code 1)."""
    from acga_lightning.data.io.video import VideoReadError
    from acga_lightning.errors import DataError

    return (DataError, VideoReadError)


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors printed as one line: :func:`data_errors` exit 1, the others (usage) exit 2."""
    from acga_lightning.data.caching.features import CacheIncompleteError, CacheMismatchError
    from acga_lightning.errors import ConfigError
    from acga_lightning.models.i3d import WeightsMismatchError
    from acga_lightning.registry import PluginError

    return (ConfigError, PluginError, FileNotFoundError, FileExistsError, WeightsMismatchError,
            CacheIncompleteError, CacheMismatchError, *data_errors())  # fmt: skip


def exit_code(error: BaseException) -> int:
    """1 for a data error (the data must change), 2 for a usage error (the command must)."""
    return 1 if isinstance(error, data_errors()) else 2


def error_line(error: BaseException) -> str:
    """The error's message; from a data-loader worker, its last line (the original message)."""
    message = str(error).strip()
    if "Original Traceback" in message:  # torch re-raises worker errors with the traceback
        message = message.splitlines()[-1].split(": ", 1)[-1]
    return message


def main(args: Sequence[str] | None = None) -> Any:
    """Entry point of ``acga``: returns the LightningCLI object (or a tool's exit code) when
    ``args`` is given (tests: errors propagate), None when it reads ``sys.argv`` (the console
    script: a configuration or file error ends with one line and exit code 2, a data error
    with one line and exit code 1)."""
    if args is not None:
        return run(list(args), time.monotonic())
    started = time.monotonic()
    argv = sys.argv[1:]
    try:
        result = run(argv, started)
    except user_errors() as error:
        if os.environ.get("ACGA_DEBUG"):
            raise
        command = f"acga {argv[0]}" if argv and not argv[0].startswith("-") else "acga"
        print(f"{command}: error: {error_line(error)}", file=sys.stderr)
        sys.exit(exit_code(error))
    sys.exit(result if isinstance(result, int) else 0)


def run(argv: list[str], started: float) -> Any:
    """Run one ``acga`` command line: a tool's exit code, or the LightningCLI object."""
    if not argv or argv[0] in ("-h", "--help"):
        print_help()
        return 0
    if argv[0] in TOOLS:
        return TOOLS[argv[0]](argv[1:])
    from acga_lightning.lightning_cli import ACGALightningCLI

    return ACGALightningCLI(args=argv, started=started)


def __getattr__(name: str) -> Any:
    # The Lightning-based classes load on first use: `acga plugins`, `acga --help` and the
    # data tools start without importing Lightning.
    if name in ("ACGALightningCLI", "print_metric_table", "check_feature_spec"):
        from acga_lightning import lightning_cli

        return getattr(lightning_cli, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
