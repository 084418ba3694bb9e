"""Field checks of the A2D-Sentences files, shared by the reader and ``acga check-data``.

One definition of a well-formed ``videoset.csv`` row, ``a2d_annotation.txt`` row and h5
annotation frame: :class:`~.a2d.A2DSentences` raises (strict) or skips and
counts what these reject, and :func:`~acga_lightning.data.check.check_dataset` reports the same
rejections under the same names (:attr:`FieldError.check`).

Harmless variations read as the clean file: a UTF-8 byte-order mark, CRLF line ends, blank
lines, quoted or unquoted fields (an annotation row's query is everything after the second
comma, so a query with unquoted commas is read whole, not cut at its first comma).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from acga_lightning.errors import DataError

#: videoset.csv columns that must be integers (start/end time are free-form).
INT_COLUMNS = {1: "label", 4: "height", 5: "width", 6: "total_frames", 7: "annotated_frames",
               8: "subset"}  # fmt: skip
ANNOTATION_HEADER = ["video_id", "instance_id", "query"]


class FieldError(DataError):
    """A field the readers cannot use; ``check`` is its name in ``acga check-data``'s report."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check, self.message = check, message


def read_csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """``(line, row)`` of every non-blank CSV row; a BOM and CRLF are read as the clean file.

    Bytes that are not UTF-8 raise :class:`FieldError` naming the file and line.
    """
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise FieldError("encoding", f"{path}:{line}: not UTF-8 text ({err.reason})") from err
    rows = []
    reader = csv.reader(io.StringIO(text, newline=""))
    for row in reader:
        if any(cell.strip() for cell in row):
            rows.append((reader.line_num, row))
    return rows


@dataclass(frozen=True)
class VideosetRow:
    video_id: str
    height: int
    width: int
    total_frames: int
    annotated_frames: int
    subset: int


def parse_videoset_row(row: list[str]) -> VideosetRow:
    """One ``videoset.csv`` row, every field the readers use checked (FieldError otherwise)."""
    if len(row) != 9:
        raise FieldError("csv_columns", f"expected 9 columns, got {len(row)}: {row}")
    vid = row[0].strip()
    if not vid or any(c in vid for c in "/\\ ") or vid.startswith("."):
        raise FieldError("csv_field", f"video id {row[0]!r} is not a file name")
    bad = [name for col, name in INT_COLUMNS.items() if not row[col].strip().lstrip("-").isdigit()]
    if bad:
        raise FieldError("csv_field", f"non-integer {', '.join(bad)}: {row}")
    height, width, total, annotated, subset = (int(row[c]) for c in (4, 5, 6, 7, 8))
    if subset not in (0, 1):
        raise FieldError("csv_field", f"subset {subset}, expected 0 (train) or 1 (test): {row}")
    if min(height, width, total) < 1 or not 0 <= annotated <= total:
        raise FieldError(
            "csv_range",
            f"height {height}, width {width}, total_frames {total}, annotated_frames {annotated}:"
            " expected sizes >= 1 and 0 <= annotated_frames <= total_frames",
        )
    return VideosetRow(vid, height, width, total, annotated, subset)


def check_annotation_header(path: Path, rows: list[tuple[int, list[str]]]) -> None:
    header = [c.strip() for c in rows[0][1]] if rows else []
    if header != ANNOTATION_HEADER:
        raise FieldError("csv_header", f"{path}: header {header}, expected {ANNOTATION_HEADER}")


def parse_annotation_row(row: list[str]) -> tuple[str, str, str]:
    """``(video_id, instance_id text, query)`` of one ``a2d_annotation.txt`` row.

    Columns after the third are the query's unquoted commas: joined back, not dropped.
    """
    if len(row) < 3:
        raise FieldError("csv_columns", f"expected 3 columns, got {len(row)}: {row}")
    return row[0].strip(), row[1].strip(), ",".join(row[2:])


@dataclass(frozen=True)
class H5Frame:
    """What the readers use of one annotation frame: instance ids, mask count, mask size, and
    the actor-action class of each mask (``codes``; None when ``id`` is absent or unusable)."""

    frame_idx: int
    instances: list[int]
    num_masks: int
    size: tuple[int, int]  # (h, w)
    codes: list[int] | None = None


def frame_number(path: Path, num_frames: int | None = None) -> int:
    """The 1-based frame an h5 file annotates, from its name, checked against the video."""
    if not path.stem.isdigit():
        raise FieldError("h5_name", f"{path}: name is not a frame number")
    frame_idx = int(path.stem)
    if num_frames is not None and not 1 <= frame_idx <= num_frames:
        raise FieldError(
            "frame_range", f"{path}: frame {frame_idx} is outside the video's 1..{num_frames}"
        )
    return frame_idx


def read_h5_frame(path: Path) -> H5Frame:
    """An h5 annotation frame's instance ids, number of masks and mask size, every one checked.

    Instance ids must be whole non-negative numbers; ``reMask`` ``(N, W, H)`` or ``(W, H)`` of
    integers or booleans, or of floats that are all 0 or 1 (a NaN would read as foreground).
    ``id`` (A2D's actor-action class of each mask, ``actor * 10 + action``) is optional here:
    ``codes`` is None when it is absent, or is not one whole number >= 0 per mask.
    """
    frame_idx = frame_number(path)
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("instance", "reMask") if k not in f]
            if missing:
                raise FieldError("h5_keys", f"{path}: missing keys {missing}")
            ids = np.asarray(f["instance"], dtype=np.float64).ravel()
            dset = f["reMask"]
            shape, dtype = dset.shape, dset.dtype
            values = dset[()] if dtype.kind == "f" else None
            codes = np.asarray(f["id"], dtype=np.float64).ravel() if "id" in f else None
    except FieldError:
        raise
    except (OSError, ValueError, TypeError) as err:
        raise FieldError("corrupt_h5", f"{path}: cannot read: {err}") from err
    if not whole_non_negative(ids):
        raise FieldError("h5_instance", f"{path}: instance ids {ids.tolist()} are not whole >= 0")
    if len(shape) not in (2, 3):
        raise FieldError(
            "mask_shape", f"{path}: reMask shape {shape}, expected (N, W, H) or (W, H)"
        )
    if dtype.kind not in "biuf":
        raise FieldError("mask_values", f"{path}: reMask of {dtype}, expected numbers")
    if values is not None:
        if not np.all(np.isfinite(values)):
            raise FieldError("mask_values", f"{path}: reMask holds NaN or infinite values")
        if not np.all((values == 0) | (values == 1)):
            raise FieldError("mask_values", f"{path}: reMask holds values other than 0 and 1")
    num_masks = 1 if len(shape) == 2 else shape[0]
    return H5Frame(
        frame_idx, [int(i) for i in ids], num_masks, (shape[-1], shape[-2]),
        action_codes(codes, num_masks),
    )  # fmt: skip


def action_codes(codes: np.ndarray | None, num_masks: int) -> list[int] | None:
    """``id``'s actor-action classes, one per mask, or None where they cannot be used."""
    if codes is None or len(codes) != num_masks or not whole_non_negative(codes):
        return None
    return [int(c) for c in codes]


def whole_non_negative(values: np.ndarray) -> bool:
    """Whether every value is a finite whole number >= 0 (h5 numbers are stored as floats)."""
    if not np.all(np.isfinite(values)):
        return False
    return bool(np.all(values == np.round(values)) and np.all(values >= 0))
