"""The ``acga`` command: LightningCLI for fit/validate/test/predict, plus data and model tools.

``acga fit --config configs/demo.yaml`` trains; ``acga toy-data``, ``acga check-data``,
``acga cache-features``, ``acga plugins`` and ``acga segment`` are the tools around it.
``main(args)`` takes the argument list, so tests run the real CLI in-process.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


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
    "cache-features": _lazy("acga_lightning.data.cache", "cache_features_main"),
    "segment": _lazy("acga_lightning.segment", "segment_main"),
}


def _build_cli_class() -> type:
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
            parser.link_arguments("data.num_frames", "model.num_frames")
            parser.link_arguments("data.frame_size", "model.frame_size")
            parser.link_arguments("data.resize_policy", "model.resize_policy")

        def after_fit(self) -> None:
            if not self.config[self.subcommand].get("test_after_fit"):
                return
            callback = self.trainer.checkpoint_callback
            best = getattr(callback, "best_model_path", "") if callback else ""
            results = self.trainer.test(
                self.model, datamodule=self.datamodule, ckpt_path=best or None, verbose=False
            )
            if self.trainer.is_global_zero and results:
                print_metric_table(results[0], title=f"test metrics ({best or 'last weights'})")

    return ACGALightningCLI


def print_metric_table(results: dict[str, Any], title: str = "metrics") -> None:
    """Print logged metrics as a table (percentages for the referring-segmentation figures)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(results):
        value = float(results[key])
        table.add_row(key, f"{value:.4f}")
    Console(width=120).print(table)


def main(args: Sequence[str] | None = None) -> Any:
    """Entry point of ``acga``; returns the LightningCLI object (or a tool's exit code)."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in TOOLS:
        code = TOOLS[argv[0]](argv[1:])
        if args is None:
            sys.exit(code)
        return code
    from acga_lightning.data.datamodule import ReferringVideoDataModule
    from acga_lightning.segmenter import ACGASegmenter

    cli_class = _build_cli_class()
    return cli_class(
        ACGASegmenter,
        ReferringVideoDataModule,
        args=argv,
        save_config_kwargs={"overwrite": True},
    )


if __name__ == "__main__":
    main()
