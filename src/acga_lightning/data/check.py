"""``acga check-data``: validate a dataset folder in any format a datamodule knows.

Checks what breaks or silently biases a run: missing or corrupt videos (each is opened and its
first frame decoded; whole videos are never decoded), frame counts, missing annotation frames,
malformed CSV rows, instance/mask mismatches, mask sizes that differ from the video, empty
queries. Faults known in the real releases (the ``1 (copy)`` row, the missed videos, a duplicate
instance id, frames with more masks than instances) are warnings: the readers handle them.
Each dataset's checks live beside its reader (``check_*`` in :mod:`acga_lightning.data.datasets`),
reached through its datamodule's ``check``; this module holds the report and the command.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acga_lightning.data.datasets.a2d_fields import (
    FieldError,
    read_csv_rows,
)

VIDEOSET = "Release/videoset.csv"
CLIPS = "Release/clips320H"
ANNOTATION = "text_annotations/a2d_annotation.txt"
MISSED = "text_annotations/a2d_missed_videos.txt"
MASKS = "text_annotations/a2d_annotation_with_instances"
H5_KEYS = ("instance", "reMask", "reBBox", "id")


@dataclass
class Finding:
    """One problem: which check found it, where, and what is wrong."""

    check: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class CheckReport:
    """The outcome of :func:`check_dataset`: errors, warnings and how much was examined."""

    format: str
    root: Path
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        """True when no error was found (warnings allowed)."""
        return not self.errors

    def error(self, check: str, path: Path | str, message: str) -> None:
        self.errors.append(Finding(check, str(path), message))

    def warn(self, check: str, path: Path | str, message: str) -> None:
        self.warnings.append(Finding(check, str(path), message))

    def summary(self, examples: int = 3) -> str:
        """Counts examined, then each check's number of findings and its first few files."""
        examined = ", ".join(f"{n} {what}" for what, n in sorted(self.counts.items()))
        lines = [f"check-data {self.format} {self.root}: {examined or 'nothing examined'}"]
        for title, findings in (("errors", self.errors), ("warnings", self.warnings)):
            by_check: dict[str, list[Finding]] = defaultdict(list)
            for f in findings:
                by_check[f.check].append(f)
            lines.append(f"{title}: {len(findings)}")
            for check, group in sorted(by_check.items()):
                lines.append(f"  {check}: {len(group)}")
                lines.extend(f"    {f}" for f in group[:examples])
                if len(group) > examples:
                    lines.append(f"    ... and {len(group) - examples} more")
        lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)


def _is_int(text: str) -> bool:
    return text.strip().lstrip("-").isdigit()


def probe_first_frame(path: Path) -> tuple[int, int, int]:
    """``(frames, height, width)`` from the header, after decoding the first frame only.

    Raises ``ValueError`` naming the file when it cannot be opened or decoded.
    """
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: no video stream")
            stream = container.streams.video[0]
            frame = next(container.decode(stream), None)
            if frame is None:
                raise ValueError(f"{path}: no decodable frame")
            frames = stream.frames
            if frames <= 0 and stream.duration and stream.average_rate:  # no count in header
                frames = round(float(stream.duration * stream.time_base * stream.average_rate))
            return int(frames), frame.height, frame.width
    except (av.error.FFmpegError, OSError, StopIteration) as err:
        raise ValueError(f"{path}: cannot read video: {err}") from err


def read_checked_csv(path: Path, report: CheckReport) -> list[tuple[int, list[str]]] | None:
    """``(line, row)`` of the non-blank rows (as the readers see them), or None."""
    if not path.is_file():
        report.error("missing_file", path, "not found")
        return None
    try:
        return read_csv_rows(path)
    except FieldError as err:
        report.error(err.check, path, err.message.removeprefix(f"{path}"))
        return None


def formats() -> dict[str, Any]:
    """The datamodule of every format, by name (``acga check-data/toy-data --format``)."""
    from acga_lightning.data.datamodules import DATAMODULES

    return dict(sorted(DATAMODULES.items()))


def checkable() -> list[str]:
    """The formats whose datamodule has a checker."""
    from acga_lightning.data.base import ReferringDataModule

    base = ReferringDataModule.check.__func__
    return [name for name, cls in formats().items() if cls.check.__func__ is not base]


def check_dataset(root: str | Path, format: str = "a2d", progress: bool = True) -> CheckReport:
    """Validate the dataset at ``root`` in ``format`` (one of :func:`checkable`); the report."""
    known = checkable()
    if format not in known:
        raise ValueError(f"format must be one of {known}, got {format!r}")
    root = Path(root)
    report = CheckReport(format, root)
    if not root.is_dir():
        report.error("missing_file", root, "dataset root not found")
        return report
    formats()[format].check(root, report, progress)
    return report


def check_data_main(argv: Sequence[str] | None = None) -> int:
    """``acga check-data --root DIR --format a2d|jhmdb|ytvos|davis|... [--strict]``: 1 on errors."""
    parser = argparse.ArgumentParser(prog="acga check-data", description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="dataset root folder")
    parser.add_argument("--format", choices=checkable(), default="a2d")
    parser.add_argument("--strict", action="store_true", help="count warnings as errors")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    report = check_dataset(args.root, args.format, progress=not args.no_progress)
    print(report.summary())
    failed = not report.ok or (args.strict and bool(report.warnings))
    return 1 if failed else 0


def findings(report: CheckReport, check: str) -> Iterable[Finding]:
    """The errors and warnings of one check (for tests and scripts)."""
    return [f for f in report.errors + report.warnings if f.check == check]
