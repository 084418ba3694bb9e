"""``acga check-data``: validate a dataset folder (A2D, J-HMDB, Ref-YouTube-VOS, Ref-DAVIS17).

Checks what breaks or silently biases a run: missing or corrupt videos (each is opened and its
first frame decoded; whole videos are never decoded), frame counts, missing annotation frames,
malformed CSV rows, instance/mask mismatches, mask sizes that differ from the video, empty
queries. Faults known in the real releases (the ``1 (copy)`` row, the missed videos, a duplicate
instance id, frames with more masks than instances) are warnings: the readers handle them.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from tqdm.auto import tqdm

from acga_lightning.data.datasets.a2d_fields import (
    FieldError,
    check_annotation_header,
    frame_number,
    parse_annotation_row,
    parse_videoset_row,
    read_csv_rows,
    read_h5_frame,
)
from acga_lightning.data.io.words import tokenize
from acga_lightning.data.sample import normalise_query

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


def _read_csv(path: Path, report: CheckReport) -> list[tuple[int, list[str]]] | None:
    """``(line, row)`` of the non-blank rows (as the readers see them), or None."""
    if not path.is_file():
        report.error("missing_file", path, "not found")
        return None
    try:
        return read_csv_rows(path)
    except FieldError as err:
        report.error(err.check, path, err.message.removeprefix(f"{path}"))
        return None


def _check_videoset(root: Path, report: CheckReport) -> tuple[dict[str, list[str]], set[str]]:
    """Well-formed rows of videoset.csv by video id, and every id listed (malformed rows too)."""
    rows = _read_csv(root / VIDEOSET, report) or []
    videos: dict[str, list[str]] = {}
    listed = {row[0].strip() for _, row in rows if row}
    for line, row in rows:
        where = f"{root / VIDEOSET}:{line}"
        try:
            video = parse_videoset_row(row)
        except FieldError as err:
            report.error(err.check, where, err.message)
            continue
        if video.video_id in videos:
            report.error("duplicate_video", where, f"video {video.video_id} listed twice")
            continue
        videos[video.video_id] = row
    report.counts["videos"] = len(videos)
    return videos, listed


def _check_queries(root: Path, listed: set[str], report: CheckReport) -> dict[str, set[int]]:
    """Instance ids queried per video, from a2d_annotation.txt."""
    path = root / ANNOTATION
    rows = _read_csv(path, report)
    queried: dict[str, set[int]] = defaultdict(set)
    if rows is None:
        return queried
    try:
        check_annotation_header(path, rows)
    except FieldError as err:
        report.error(err.check, path, err.message.removeprefix(f"{path}: "))
    seen: set[tuple[str, str, str]] = set()
    for line, row in rows[1:]:
        where = f"{path}:{line}"
        try:
            vid, inst, query = parse_annotation_row(row)
        except FieldError as err:
            report.error(err.check, where, err.message)
            continue
        if len(row) > 3:
            report.warn("unquoted_commas", where, f"{vid}: query with unquoted commas (read whole)")
        key = (vid, inst, normalise_query(query))
        if key in seen and inst.isdigit():
            report.error("duplicate_query", where, f"{vid} instance {inst}: the same query again")
            continue
        seen.add(key)
        if inst == "1 (copy)":
            report.warn("copy_row", where, f"{vid}: instance_id '1 (copy)' (known; dropped)")
        elif not inst.isdigit():
            report.error("csv_field", where, f"{vid}: instance_id {inst!r} is not a whole number")
        elif not tokenize(query):
            report.error("empty_query", where, f"{vid} instance {inst}: empty query")
        elif vid not in listed:
            report.error("unknown_video", where, f"{vid} is not in {VIDEOSET}")
        else:
            queried[vid].add(int(inst))
    report.counts["query rows"] = max(len(rows) - 1, 0)
    return queried


def _check_h5(path: Path, size: tuple[int, int] | None, report: CheckReport) -> list[int]:
    """One annotation frame; returns its instance ids ([] when unusable)."""
    try:
        frame = read_h5_frame(path)  # the readers' own checks
        with h5py.File(path, "r") as f:
            missing = [k for k in H5_KEYS if k not in f]
            box_shape = f["reBBox"].shape if "reBBox" in f else None
    except FieldError as err:
        report.error(err.check, path, err.message.removeprefix(f"{path}: "))
        return []
    except (OSError, ValueError) as err:
        report.error("corrupt_h5", path, f"cannot read: {err}")
        return []
    if missing:
        report.error("h5_keys", path, f"missing keys {missing}")
        return frame.instances
    instances, num_masks = frame.instances, frame.num_masks
    mask_shape = (frame.size[1], frame.size[0])  # (W, H), as stored
    if num_masks < len(instances):
        report.error("instance_mask_mismatch", path,
                     f"{len(instances)} instances but {num_masks} masks")  # fmt: skip
    elif num_masks > len(instances):
        report.warn("extra_masks", path, f"{num_masks} masks for {len(instances)} instances")
    if len(set(instances)) < len(instances):
        report.warn("duplicate_instance_id", path, f"instance ids {instances}")
    if box_shape is None or len(box_shape) != 2 or box_shape[0] != 4:
        report.error("bbox_shape", path, f"reBBox shape {box_shape}, expected (4, N)")
    w, h = mask_shape[-2:]  # stored transposed
    if size is not None and (h, w) != size:
        hint = " (stored untransposed?)" if (w, h) == size else ""
        report.error("mask_size", path, f"mask {h}x{w} but video {size[0]}x{size[1]}{hint}")
    return instances


def _check_video(path: Path, row: list[str], report: CheckReport) -> tuple[int, int, int] | None:
    if not path.is_file():
        report.error("missing_video", path, "not found")
        return None
    try:
        frames, h, w = probe_first_frame(path)
    except ValueError as err:
        report.error("corrupt_video", path, str(err).removeprefix(f"{path}: "))
        return None
    if (h, w) != (int(row[4]), int(row[5])):
        report.error("video_size", path, f"{h}x{w} but videoset.csv says {row[4]}x{row[5]}")
    if abs(frames - int(row[6])) > max(2, 0.05 * int(row[6])):
        report.warn("frame_count", path, f"{frames} frames but videoset.csv says {row[6]}")
    return frames, h, w


def _check_a2d_video(root: Path, vid: str, row: list[str], queried: set[int],
                     report: CheckReport) -> None:  # fmt: skip
    probe = _check_video(root / CLIPS / f"{vid}.mp4", row, report)
    folder = root / MASKS / vid
    h5_files = sorted(folder.glob("*.h5")) if folder.is_dir() else []
    report.counts["h5 files"] += len(h5_files)
    if queried and not h5_files:
        report.error("missing_h5", folder, f"no annotation frames for queried video {vid}")
    elif len(h5_files) < int(row[7]):
        listed = f"videoset.csv lists {row[7]} annotated frames"
        report.error("missing_h5", folder, f"{len(h5_files)} h5 files but {listed}")
    seen: set[int] = set()
    for path in h5_files:
        try:
            frame_number(path, probe[0] if probe is not None else None)
        except FieldError as err:
            report.error(err.check, path, err.message.removeprefix(f"{path}: "))
            continue
        seen.update(_check_h5(path, probe[1:] if probe else None, report))
    for inst in sorted(queried - seen):
        if h5_files:
            report.warn("unseen_instance", folder,
                        f"queried instance {inst} appears in no annotated frame")  # fmt: skip


def check_a2d(root: Path, report: CheckReport, progress: bool) -> None:
    """All A2D-Sentences checks (see the module docstring)."""
    videos, listed = _check_videoset(root, report)
    queried = _check_queries(root, listed, report)
    if (root / MISSED).is_file():
        for vid in (root / MISSED).read_text(encoding="utf-8-sig").split():
            report.warn("missed_video", root / MISSED, f"{vid} (known; excluded by the readers)")
    else:
        report.warn("missing_file", root / MISSED, "not found: no video will be excluded")
    for vid, row in tqdm(videos.items(), desc="check-data a2d", unit="video", disable=not progress):
        _check_a2d_video(root, vid, row, queried.get(vid, set()), report)


def _mask_shape(path: Path) -> tuple[np.ndarray, tuple[int, ...]]:
    """``part_mask`` and its shape as (H, W, T), from a MATLAB v5 or v7.3 (HDF5) file."""
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            masks = np.asarray(f["part_mask"]).T  # HDF5 .mat files store arrays transposed
    else:
        from scipy.io import loadmat

        masks = loadmat(str(path), variable_names=["part_mask"])["part_mask"]
    return masks, masks.shape


def _check_jhmdb_video(root: Path, vid: str, report: CheckReport) -> None:
    from acga_lightning.data.datasets.jhmdb import video_problem

    dirs = [p for p in (root / "Rename_Images").glob(f"*/{vid}") if p.is_dir()]
    if len(dirs) != 1:
        report.error("missing_video" if not dirs else "ambiguous_video", root / "Rename_Images",
                     f"{vid}: {len(dirs)} frame folders")  # fmt: skip
        return
    pngs = sorted(dirs[0].glob("*.png"))
    problem = video_problem(pngs, None)  # the readers' own check
    if problem is not None:
        report.error(problem[0], dirs[0], problem[1])
        return
    from PIL import Image

    with Image.open(pngs[0]) as im:
        width, height = im.size
    report.counts["frames"] += len(pngs)
    path = root / "puppet_mask" / dirs[0].parent.name / vid / "puppet_mask.mat"
    if not path.is_file():
        report.error("missing_mask", path, "not found")
        return
    try:
        masks, shape = _mask_shape(path)
    except (OSError, ValueError, KeyError, TypeError) as err:
        report.error("corrupt_mask", path, f"cannot read part_mask: {err}")
        return
    if len(shape) != 3 or shape[:2] != (height, width):
        report.error("mask_size", path, f"part_mask {shape}, frames are {height}x{width}")
    elif (problem := video_problem(pngs, shape[2])) is not None:
        report.error(problem[0], path, problem[1])
    elif not masks.any():
        report.warn("empty_mask", path, "part_mask is all zero")
    elif shape[2] < len(pngs):
        report.counts["videos with masks on fewer frames"] += 1  # normal in J-HMDB


def check_jhmdb(root: Path, report: CheckReport, progress: bool) -> None:
    """All J-HMDB-Sentences checks: annotation rows, frame folders, masks."""
    path = root / "jhmdb_annotation.txt"
    rows = _read_csv(path, report)
    if rows is None:
        return
    if not rows or [c.strip() for c in rows[0][1]] != ["video_id", "query"]:
        report.error(
            "csv_header", path, f"header {rows[0][1] if rows else []}, expected video_id,query"
        )
    videos: list[str] = []
    for line, row in rows[1:]:
        if len(row) != 2:
            report.error("csv_columns", f"{path}:{line}", f"expected 2 columns, got {row}")
        elif not row[1].strip():
            report.error("empty_query", f"{path}:{line}", f"{row[0]}: empty query")
        else:
            videos.append(row[0].strip())
    report.counts["videos"] = len(videos)
    for vid in tqdm(videos, desc="check-data jhmdb", unit="video", disable=not progress):
        _check_jhmdb_video(root, vid, report)


def _check_ref_vos(root: Path, report: CheckReport, progress: bool) -> None:
    from acga_lightning.data.datasets.ref_vos import check_ref_vos

    check_ref_vos(root, report, progress)


CHECKS = {"a2d": check_a2d, "jhmdb": check_jhmdb, "ytvos": _check_ref_vos, "davis": _check_ref_vos}


def check_dataset(root: str | Path, format: str = "a2d", progress: bool = True) -> CheckReport:
    """Validate the dataset at ``root`` (``format``: a key of :data:`CHECKS`); the report."""
    if format not in CHECKS:
        raise ValueError(f"format must be one of {sorted(CHECKS)}, got {format!r}")
    root = Path(root)
    report = CheckReport(format, root)
    if not root.is_dir():
        report.error("missing_file", root, "dataset root not found")
        return report
    CHECKS[format](root, report, progress)
    return report


def check_data_main(argv: Sequence[str] | None = None) -> int:
    """``acga check-data --root DIR --format a2d|jhmdb|ytvos|davis [--strict]``: 1 on errors."""
    parser = argparse.ArgumentParser(prog="acga check-data", description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="dataset root folder")
    parser.add_argument("--format", choices=tuple(CHECKS), default="a2d")
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
