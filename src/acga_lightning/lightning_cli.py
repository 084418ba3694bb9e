"""``ACGALightningCLI``: the LightningCLI behind ``acga fit | validate | test | predict``.

Another project extends it like any LightningCLI subclass::

    from acga_lightning.cli import ACGALightningCLI

    class MyCLI(ACGALightningCLI):
        def add_arguments_to_parser(self, parser):
            super().add_arguments_to_parser(parser)
            parser.add_argument("--my_flag", type=int, default=0)

    MyCLI(MySegmenter)  # the model class defaults to ACGASegmenter, the data to ours

On top of LightningCLI it links the data settings into the model (``num_frames``,
``frame_size``, ``resize_policy``), applies ``--torch_threads`` and ``--time_budget_minutes``,
tests after ``fit`` with ``--test_after_fit``, writes predictions in ``predict`` (masks and a
scores file, :class:`~acga_lightning.prediction.MaskWriter`), and reports a configuration
mistake (an unknown key, a wrong type, an unknown plug-in, a metric renamed since a config was
written) as one short message naming the key, not a usage dump or a traceback.
"""

from __future__ import annotations

import pickle
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Literal, NoReturn

from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from acga_lightning.errors import ConfigError
from acga_lightning.registry import PluginError


def one_line(message: str, limit: int = 6) -> str:
    """A parser message folded to a few short lines (jsonargparse's can list dozens)."""
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    if len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more lines)"]
    return "\n  ".join(lines)


#: Lines of jsonargparse's report on a value that fits no member of a union (the ``data`` class
#: in subclass mode, a settings dataclass such as ``data.toy``) that are not the error itself.
UNION_NOISE = (
    "Does not validate against any of the Union subtypes", "Subtypes:", "Errors:",
    "Given value type:", "Given value:", "Problem with given class_path",
    "Expected a <class 'NoneType'>",
)  # fmt: skip
#: The members' errors that mean an unknown class, not a bad argument of a known one.
UNKNOWN_CLASS = re.compile(
    r"Expected a dot import path string: (?P<a>\S+)|Import path (?P<b>\S+) does not correspond"
)


def union_error(message: str) -> str | None:
    """jsonargparse's report of a value that fits no member of a union, as one line naming the
    whole key (``data.toy.num_videos: Expected a <class 'int'>. Got value: six``), the deepest
    error of the nested report; None for a message of another kind."""
    if UNION_NOISE[0] not in message:
        return None
    keys: list[tuple[int, str]] = []
    found: list[tuple[int, str, str]] = []  # (depth, key, error)
    for line in message.splitlines():
        text = line.strip().removeprefix("- ").strip()
        if not text:
            continue
        indent = len(line) - len(line.lstrip())
        while keys and keys[-1][0] >= indent:
            keys.pop()
        key = re.fullmatch(r'Parser key "([^"]+)":', text)
        if key:
            keys.append((indent, key.group(1)))
        elif not text.startswith(UNION_NOISE):
            found.append((len(keys), ".".join(k for _, k in keys), text))
    # "--data X" is also tried as a config file: that error is about the other reading.
    found = [f for f in found if not f[2].startswith("Expected a path but")] or found
    if not found:
        return None
    _, key, text = max(found, key=lambda f: f[0])  # the first of the deepest
    unknown = UNKNOWN_CLASS.search(text)
    if unknown and key.split(".")[-1] == "data":
        from acga_lightning.data.base import DATAMODULES

        known = ", ".join(sorted(cls.__name__ for cls in DATAMODULES.values()))
        name = unknown.group("a") or unknown.group("b")
        return f"{key}.class_path: {name!r} is not a datamodule (known: {known})"
    if key.split(".")[-1] == "data" and text == "Option 'dataset' is not accepted":
        text += " (the old form: name the datamodule, e.g. --data A2DDataModule; see docs/data.md)"
    return f"{key}: {text}" if key else text


class ShortErrorParser(LightningArgumentParser):
    """LightningCLI's parser, reporting a bad argument in one message instead of the usage."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        from jsonargparse._common import debug_mode_active  # jsonargparse's own switch

        if not self.exit_on_error or debug_mode_active():
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        text = union_error(message) or one_line(message)
        sys.stderr.write(f"{prog}: error: {text}\n(options: {prog} --help)\n")
        sys.exit(2)


def check_feature_spec(model: Any, datamodule: Any) -> None:
    """Fail early when cached features and the model's ``video_encoder`` do not fit together."""
    wanted = getattr(datamodule, "feature_spec", None)
    encoder = dict(model.hparams.get("video_encoder") or {})
    if wanted is None:
        if encoder.get("name") == "precomputed":
            raise ConfigError(
                "model.video_encoder is 'precomputed' but the data has no cached features: set "
                "data.cache.mode (mixed_4e or final) or use a frames encoder such as i3d"
            )
        return
    if encoder.get("name") != "precomputed" or encoder.get("endpoint") != wanted["endpoint"]:
        raise ConfigError(
            f"data.cache.mode {wanted['endpoint']!r} gives cached features: model.video_encoder "
            f"must be {wanted} (got {encoder})"
        )


def check_word_vectors(model: Any, datamodule: Any) -> None:
    """Word vectors whose size is not the model's ``word_dim`` fail now, naming the file."""
    from acga_lightning.data.io.words import word_vector_size

    hparams = getattr(datamodule, "hparams", {})
    word_dim = getattr(model, "hparams", {}).get("word_dim")
    path = hparams.get("word_vectors")
    if path is None and hparams.get("toy") is not None:
        path = Path(hparams.get("root", "")) / "word2vec.bin"
        if not path.is_file():
            return  # generated with the toy data, at the model's size
    if path is None or word_dim is None:
        return
    try:
        size = word_vector_size(path)
    except ValueError as err:
        raise ConfigError(f"data.word_vectors: {err}") from err
    if size != word_dim:
        raise ConfigError(
            f"data.word_vectors: {path} holds {size}-d word vectors, but model.word_dim is "
            f"{word_dim} (GoogleNews word2vec: 300)"
        )


def check_monitored_metrics(callbacks: list[Any]) -> None:
    """Metric names renamed since a config was written fail with the name to use instead."""
    from acga_lightning.metrics.functional import renamed_metric

    for callback in callbacks:
        monitor = getattr(callback, "monitor", None)
        if isinstance(monitor, str) and (new := renamed_metric(monitor)):
            raise ConfigError(
                f"trainer.callbacks: {type(callback).__name__} monitors {monitor!r}, which is now "
                f"logged as {new!r}: rename it in the config"
            )
        filename = getattr(callback, "filename", None)
        # "P@" is in both old names (P@0.5, mAP@0.5:0.95)
        if isinstance(callback, ModelCheckpoint) and "{" in str(filename) and "P@" in filename:
            raise ConfigError(
                f"trainer.callbacks: ModelCheckpoint filename {filename!r} names a metric "
                "renamed since (P@0.5 -> precision_50, mAP@0.5:0.95 -> map)"
            )


def print_metric_table(results: dict[str, Any], title: str = "metrics") -> None:
    """Print logged metrics as a table, one row per metric, with the paper's label beside it."""
    from rich.console import Console
    from rich.table import Table

    from acga_lightning.metrics.functional import METRIC_LABELS

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("paper")
    table.add_column("value", justify="right")
    for key in sorted(results):
        table.add_row(key, METRIC_LABELS.get(key.rpartition("/")[2], ""), f"{results[key]:.4f}")
    Console(width=120).print(table)


class ACGALightningCLI(LightningCLI):
    """LightningCLI with the data settings linked into the model, a final test and a mask writer.

    Args:
        model_class: the LightningModule (default :class:`~acga_lightning.ACGASegmenter`).
        datamodule_class: the data (default: any subclass of
            :class:`~acga_lightning.data.base.ReferringDataModule`, chosen by the config's
            ``data.class_path``, e.g. ``A2DDataModule``).
        started: ``time.monotonic()`` when ``--time_budget_minutes`` starts counting (default:
            when this object is made).
        args, kwargs: as for :class:`~pytorch_lightning.cli.LightningCLI`.
    """

    def __init__(
        self,
        model_class: Any = None,
        datamodule_class: Any = None,
        *args: Any,
        started: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.started = time.monotonic() if started is None else started
        if model_class is None:
            from acga_lightning.segmenter import ACGASegmenter

            model_class = ACGASegmenter
        if datamodule_class is None:
            from acga_lightning.data.datamodules import ReferringDataModule

            datamodule_class = ReferringDataModule
            kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("parser_class", ShortErrorParser)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("parser_kwargs", {"prog": "acga"})
        # Configs may include others (``__base__``): resolved here, so a subclass gets it too.
        from acga_lightning.cli import resolve_config_args

        command = kwargs.get("args")
        if command is None or isinstance(command, list | tuple):
            command = sys.argv[1:] if command is None else list(command)
            kwargs["args"] = resolve_config_args(command)
        with warnings.catch_warnings():
            # The command line was read from sys.argv (resolved) when no args were given, so
            # LightningCLI's "not recommended to provide both" warning is about nothing.
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
            # Lightning 2.6's own use of torch.utils._pytree on torch >= 2.10: nothing a user
            # of ours can act on (tests list it in pyproject's allow-list too).
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`")
            super().__init__(model_class, datamodule_class, *args, **kwargs)

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="after fit, test the best (else last) checkpoint and print the metric table",
        )
        parser.add_argument(
            "--torch_threads",
            type=int | Literal["auto"] | None,
            default=None,
            help="torch.set_num_threads before anything runs (None: torch's default). 'auto': "
            "the cores other processes leave free, re-read while training "
            "(acga_lightning.threads): on a small CPU shared with other jobs, OpenMP threads "
            "that share a core with another process slow every step down several-fold.",
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
        parser.add_argument(
            "--predictions_dir",
            type=str | None,
            default=None,
            help="predict: where masks/ and scores.csv go (default: <log dir>/predictions)",
        )
        parser.add_argument(
            "--overwrite",
            type=bool,
            default=False,
            help="predict: replace predictions already in predictions_dir",
        )
        prefix = "data.init_args" if self.subclass_mode_data else "data"
        parser.link_arguments(f"{prefix}.num_frames", "model.num_frames")
        parser.link_arguments(f"{prefix}.frame_size", "model.frame_size")
        parser.link_arguments(f"{prefix}.frame_stride", "model.frame_stride")
        parser.link_arguments(f"{prefix}.resize_policy", "model.resize_policy")

    def _settings(self) -> Any:
        return self.config[self.subcommand] if self.subcommand else self.config

    def _parse_ckpt_path(self) -> None:
        # LightningCLI reads the checkpoint's hyper-parameters here, first of all: a missing,
        # truncated or text file is reported now, naming it, not as a raw unpickling error
        # (or, for a missing file, after minutes of model build and indexing).
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        special = ckpt_path in ("last", "best", "hpc") or "registry" in str(ckpt_path)
        if not ckpt_path or special or "://" in str(ckpt_path):
            super()._parse_ckpt_path()
            return
        from acga_lightning.checkpointing import check_checkpoint_file

        check_checkpoint_file(ckpt_path)
        try:
            super()._parse_ckpt_path()
        except (RuntimeError, EOFError, OSError, KeyError, IndexError, ValueError, TypeError,
                AttributeError, pickle.UnpicklingError) as err:  # fmt: skip
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(
                f"ckpt_path: {ckpt_path} is not a readable checkpoint: {type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}"
            ) from err
        # The checkpoint's hyper-parameters now stand in the config: an older checkpoint gets
        # the settings it was trained with, as ACGASegmenter.load_from_checkpoint gives them.
        from acga_lightning.segmenter import legacy_overrides, peek_hyperparameters, warn_legacy

        overrides = legacy_overrides(peek_hyperparameters(ckpt_path))
        if overrides:
            warn_legacy(ckpt_path, overrides)
            self.config = self.parser.parse_object({subcommand: {"model": overrides}}, self.config)

    def before_instantiate_classes(self) -> None:
        threads = self._settings().get("torch_threads")
        if threads == "auto":
            import torch

            from acga_lightning.threads import free_cores

            torch.set_num_threads(free_cores())
        elif threads is not None:
            if threads < 1:
                raise ConfigError(f"torch_threads: expected >= 1, got {threads}")
            import torch

            torch.set_num_threads(threads)

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except PluginError as error:
            key = f"model.{error.kind}" if error.kind else "model"
            raise ConfigError(f"{key}: {error}") from error
        except (ValueError, TypeError) as error:
            # A class chosen by class_path (the datamodule) that refuses its arguments reaches
            # here wrapped in jsonargparse's report on every member of the union it tried.
            line = union_error(str(error))
            if line is None or isinstance(error, ConfigError):
                raise
            raise ConfigError(line) from error

    def _check(self) -> None:
        check_feature_spec(self.model, self.datamodule)
        check_word_vectors(self.model, self.datamodule)
        check_monitored_metrics(self.trainer.callbacks)

    before_validate = before_test = _check

    def before_fit(self) -> None:
        self._check()
        from acga_lightning.resume import RunRecord, resolve_last

        self.trainer.callbacks.append(RunRecord())
        if self.config_init[self.subcommand].get("ckpt_path") == "last":
            path, notice = resolve_last(self.trainer)
            self.config_init[self.subcommand]["ckpt_path"] = str(path) if path else None
            if self.trainer.is_global_zero:
                print(notice, file=sys.stderr)
        minutes = self._settings().get("time_budget_minutes")
        if minutes is not None:
            from acga_lightning.time_budget import TimeBudget

            reserve = self._settings().get("time_budget_reserve_minutes", 1.0)
            self.trainer.callbacks.append(TimeBudget(minutes, reserve, started=self.started))
        if self._settings().get("torch_threads") == "auto":
            from acga_lightning.threads import ThreadsForLoad

            self.trainer.callbacks.append(ThreadsForLoad())
        from acga_lightning.timing import PhaseTimes

        # Where the time went, printed after the final test (or the fit when none follows).
        after_test = bool(self._settings().get("test_after_fit"))
        self.trainer.callbacks.append(PhaseTimes(self.started, report_after_test=after_test))

    def before_predict(self) -> None:
        self._check()
        from pytorch_lightning.callbacks import BasePredictionWriter

        from acga_lightning.prediction import MaskWriter

        # A config's own writer (a Ref-YouTube-VOS SubmissionWriter, say) replaces MaskWriter.
        writers = [c for c in self.trainer.callbacks if isinstance(c, BasePredictionWriter)]
        for writer in writers:
            if hasattr(writer, "check_destination") and self.trainer.is_global_zero:
                writer.check_destination()  # before any work: refuse to overwrite
        if writers:
            return
        settings = self._settings()
        directory = settings.get("predictions_dir")
        if directory is None:
            root = self.trainer.log_dir or self.trainer.default_root_dir
            directory = str(Path(root) / "predictions")
        writer = MaskWriter(directory, overwrite=bool(settings.get("overwrite")))
        writer.check_destination()  # before any work: refuse to overwrite
        self.trainer.callbacks.append(writer)

    def predict(self, **kwargs: Any) -> Any:
        # The writer keeps the masks on disk: holding every one in memory too (Lightning's
        # default) would grow with the data set.
        if kwargs.get("return_predictions") is None:
            kwargs["return_predictions"] = False
        return self.trainer.predict(**kwargs)

    def after_fit(self) -> None:
        if not self._settings().get("test_after_fit"):
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
