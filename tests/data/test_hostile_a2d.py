"""The hostile dataset: the clean generated A2D dataset mutated field by field, file by file.

Each mutation changes which samples exist, which split they are in, which frame they show or
what their mask or query holds. For each: the reader in strict mode raises naming the file (and
the line, for the CSV files); otherwise it skips and counts the reason; ``acga check-data``
reports it under the same check the readers use. Harmless variations (BOM, CRLF, blank lines,
quoting, unquoted commas in a query) must read exactly as the clean files.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from acga_lightning.data.check import check_dataset
from acga_lightning.data.datasets.a2d import (
    ANNOTATION,
    CLIPS,
    MASKS,
    MISSED,
    VIDEOSET,
    A2DSampleError,
    A2DSentences,
)
from acga_lightning.data.synthetic import write_a2d
from acga_lightning.errors import DataError

KW = {"num_frames": 2, "frame_size": 32, "index_cache": False}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    root = write_a2d(tmp_path_factory.mktemp("hostile") / "clean", num_videos=4, height=32, seed=1)
    assert check_dataset(root, progress=False).ok
    return root


@pytest.fixture
def root(clean: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(clean, tmp_path / "a2d"))


# ------------------------------------------------------------------------------- helpers
def videoset(root: Path) -> list[list[str]]:
    return [line.split(",") for line in (root / VIDEOSET).read_text().splitlines()]


def target(root: Path) -> tuple[int, str]:
    """(0-based row, video id) of the first training video that is not excluded and has h5s."""
    missed = set((root / MISSED).read_text().split())
    for i, row in enumerate(videoset(root)):
        if row[8] == "0" and row[0] not in missed and list((root / MASKS / row[0]).glob("*.h5")):
            return i, row[0]
    raise AssertionError("no usable training video")


def edit_videoset(root: Path, edit: Callable[[list[str]], None], append: bool = False) -> int:
    """Edit the target's row (or append an edited copy); returns the 1-based line changed."""
    rows = videoset(root)
    i, _ = target(root)
    row = list(rows[i])
    edit(row)
    if append:
        rows.append(row)
    else:
        rows[i] = row
    (root / VIDEOSET).write_text("".join(",".join(r) + "\n" for r in rows))
    return len(rows) if append else i + 1


def annotation_rows(root: Path) -> list[list[str]]:
    with open(root / ANNOTATION, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def write_annotations(root: Path, rows: list[list[str]]) -> None:
    with open(root / ANNOTATION, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def target_query_line(root: Path) -> int:
    _, vid = target(root)
    return next(i for i, r in enumerate(annotation_rows(root)) if r[0] == vid and r[1].isdigit())


def edit_annotation(root: Path, edit: Callable[[list[str]], None], append: bool = False) -> int:
    rows = annotation_rows(root)
    i = target_query_line(root)
    row = list(rows[i])
    edit(row)
    if append:
        rows.append(row)
    else:
        rows[i] = row
    write_annotations(root, rows)
    return len(rows) if append else i + 1


def first_h5(root: Path) -> Path:
    _, vid = target(root)
    return sorted((root / MASKS / vid).glob("*.h5"))[0]


def rewrite_h5(root: Path, edit: Callable[[dict], None]) -> Path:
    path = first_h5(root)
    with h5py.File(path, "r") as f:
        data = {k: f[k][()] for k in f}
    edit(data)
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            f.create_dataset(k, data=v)
    return path


def float_mask(value: float) -> Callable[[dict], None]:
    def edit(d: dict) -> None:
        m = d["reMask"].astype(np.float64)
        m[m == 0] = value
        d["reMask"] = m

    return edit


def rename_h5(root: Path, name: str) -> Path:
    path = first_h5(root)
    return path.rename(path.with_name(name))


def set_col(col: int, value: str) -> Callable[[list[str]], None]:
    def edit(row: list[str]) -> None:
        row[col] = value

    return edit


# ------------------------------------------------------------------------------ mutations
# name -> (mutate(root) -> the file to be named (str; "file:line" for CSV rows), reader's
# skipped reason, check-data's check)
def _csv(path: str, line: int) -> str:
    return f"{path}:{line}"


MUTATIONS: dict[str, tuple[Callable[[Path], str], str, str]] = {
    "videoset subset out of range": (
        lambda r: _csv(VIDEOSET, edit_videoset(r, set_col(8, "2"))), "bad_videoset_row",
        "csv_field"),
    "videoset total_frames not a number": (
        lambda r: _csv(VIDEOSET, edit_videoset(r, set_col(6, "many"))), "bad_videoset_row",
        "csv_field"),
    "videoset row missing columns": (
        lambda r: _csv(VIDEOSET, edit_videoset(r, lambda row: row.__delitem__(slice(6, None)))),
        "bad_videoset_row", "csv_columns"),
    "videoset height negative": (
        lambda r: _csv(VIDEOSET, edit_videoset(r, set_col(4, "-32"))), "bad_videoset_row",
        "csv_range"),
    "videoset more annotated than total frames": (
        lambda r: _csv(VIDEOSET, edit_videoset(r, set_col(7, "999"))), "bad_videoset_row",
        "csv_range"),
    "videoset video id a path": (
        lambda r: _csv(VIDEOSET, edit_videoset(r, set_col(0, "../other"), append=True)),
        "bad_videoset_row", "csv_field"),
    "videoset video listed twice, other split": (
        lambda r: _csv(VIDEOSET, edit_videoset(r, set_col(8, "1"), append=True)),
        "duplicate_video", "duplicate_video"),
    "annotation video not in videoset": (
        lambda r: _csv(ANNOTATION, edit_annotation(r, set_col(0, "zzzzzzzzzzz"), append=True)),
        "unknown_video", "unknown_video"),
    "annotation instance id not a number": (
        lambda r: _csv(ANNOTATION, edit_annotation(r, set_col(1, "two"))), "bad_instance_id",
        "csv_field"),
    "annotation instance id negative": (
        lambda r: _csv(ANNOTATION, edit_annotation(r, set_col(1, "-1"))), "bad_instance_id",
        "csv_field"),
    "annotation query blank": (
        lambda r: _csv(ANNOTATION, edit_annotation(r, set_col(2, "   "))), "empty_query",
        "empty_query"),
    "annotation query only symbols": (
        lambda r: _csv(ANNOTATION, edit_annotation(r, set_col(2, "?! ..."))), "empty_query",
        "empty_query"),
    "annotation row repeated": (
        lambda r: _csv(ANNOTATION, edit_annotation(r, lambda row: None, append=True)),
        "duplicate_query", "duplicate_query"),
    "annotation row missing the query": (
        lambda r: _csv(ANNOTATION, edit_annotation(r, lambda row: row.pop(), append=True)),
        "bad_annotation_row", "csv_columns"),
    "h5 for a frame beyond the video": (
        lambda r: str(rename_h5(r, "00500.h5")), "frame_range", "frame_range"),
    "h5 for frame 0": (lambda r: str(rename_h5(r, "00000.h5")), "frame_range", "frame_range"),
    "h5 name not a frame number": (lambda r: str(rename_h5(r, "frame.h5")), "bad_h5", "h5_name"),
    "h5 float mask with NaN background": (
        lambda r: str(rewrite_h5(r, float_mask(np.nan))), "mask_values", "mask_values"),
    "h5 float mask with values other than 0/1": (
        lambda r: str(rewrite_h5(r, float_mask(0.5))), "mask_values", "mask_values"),
    "h5 fractional instance id": (
        lambda r: str(rewrite_h5(r, lambda d: d.update(instance=d["instance"] + 0.5))),
        "h5_instance", "h5_instance"),
    "h5 without reMask": (
        lambda r: str(rewrite_h5(r, lambda d: d.pop("reMask"))), "bad_h5", "h5_keys"),
    "h5 fewer masks than instances": (
        lambda r: str(rewrite_h5(r, lambda d: d.update(instance=np.append(d["instance"], 9.0)))),
        "missing_mask", "instance_mask_mismatch"),
    "h5 mask of another size": (
        lambda r: str(rewrite_h5(r, lambda d: d.update(reMask=d["reMask"][..., :-4]))),
        "mask_size_mismatch", "mask_size"),
    "h5 not an hdf5 file": (
        lambda r: (first_h5(r).write_bytes(b"not hdf5"), str(first_h5(r)))[1], "bad_h5",
        "corrupt_h5"),
    "h5 file missing": (
        lambda r: (first_h5(r).unlink(), str(r / MASKS / target(r)[1]))[1], "missing_h5",
        "missing_h5"),
    "video missing": (
        lambda r: (lambda p: (p.unlink(), str(p))[1])(r / CLIPS / f"{target(r)[1]}.mp4"),
        "missing_video", "missing_video"),
    "video not a video": (
        lambda r: (lambda p: (p.write_text("hello"), str(p))[1])(r / CLIPS / f"{target(r)[1]}.mp4"),
        "corrupt_video", "corrupt_video"),
}  # fmt: skip


def read_both(root: Path, strict: bool) -> dict[str, A2DSentences]:
    return {split: A2DSentences(root, split, strict=strict, **KW) for split in ("train", "test")}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_each_mutation_is_a_named_error_a_counted_skip_and_a_check_data_finding(root, name):
    mutate, reason, check = MUTATIONS[name]
    where = mutate(root)
    errors = []
    for split in ("train", "test"):
        try:
            A2DSentences(root, split, strict=True, **KW)
        except A2DSampleError as err:
            errors.append(str(err))
    assert errors, f"strict mode accepted: {name}"
    assert errors[0].startswith(f"{reason}: ") and where in errors[0], errors[0]

    readers = read_both(root, strict=False)
    assert sum(r.skipped.get(reason, 0) for r in readers.values()) >= 1, {
        s: r.skipped for s, r in readers.items()
    }

    report = check_dataset(root, progress=False)
    found = [f for f in report.errors if f.check == check]
    assert found, report.summary()
    assert any(where.split(":")[0] in f.path or where in str(f) for f in found), report.summary()


def records(root: Path) -> dict[str, list[dict]]:
    return {s: r.records for s, r in read_both(root, strict=True).items()}


def _bom(path: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        (root / path).write_bytes(b"\xef\xbb\xbf" + (root / path).read_bytes())

    return mutate


def _crlf_and_blank_lines(root: Path) -> None:
    for path in (VIDEOSET, ANNOTATION, MISSED):
        lines = (root / path).read_text().splitlines()
        (root / path).write_bytes(("\r\n".join(["", *lines, "", ""]) + "\r\n").encode())


def _quote_everything(root: Path) -> None:
    rows = annotation_rows(root)
    with open(root / ANNOTATION, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)


HARMLESS = {
    "BOM in videoset.csv": _bom(VIDEOSET),
    "BOM in a2d_annotation.txt": _bom(ANNOTATION),
    "BOM in a2d_missed_videos.txt": _bom(MISSED),
    "CRLF and blank lines": _crlf_and_blank_lines,
    "every field quoted": _quote_everything,
}


@pytest.mark.parametrize("name", list(HARMLESS))
def test_harmless_variations_read_as_the_clean_files(clean, root, name):
    HARMLESS[name](root)
    assert records(root) == records(clean)
    report = check_dataset(root, progress=False)
    assert report.ok, report.summary()


def test_a_query_with_unquoted_commas_reads_whole(clean, root, tmp_path):
    quoted = Path(shutil.copytree(clean, tmp_path / "quoted"))
    for base in (root, quoted):
        edit_annotation(base, set_col(2, "the dog, on the left, running"))
    text = (root / ANNOTATION).read_text().replace('"the dog, on the left, running"',
                                                    "the dog, on the left, running")  # fmt: skip
    (root / ANNOTATION).write_text(text)
    assert records(root) == records(quoted)
    assert any(r["query"] == "the dog, on the left, running" for r in records(root)["train"])
    report = check_dataset(root, progress=False)
    assert report.ok and [f.check for f in report.warnings if f.check == "unquoted_commas"]


@pytest.mark.parametrize("mutation", ["header", "encoding"])
def test_a_file_that_cannot_be_read_at_all_fails_in_both_modes(root, mutation):
    path = root / ANNOTATION
    if mutation == "header":
        path.write_text(path.read_text().replace("video_id,instance_id,query", "vid,inst,q", 1))
        message = f"{path}: header"
    else:
        path.write_bytes(path.read_bytes().replace(b"\n", b"\n\xff", 2))
        message = f"{path}:2: not UTF-8"
    for strict in (True, False):
        with pytest.raises(DataError, match=message):
            A2DSentences(root, "train", strict=strict, **KW)
    report = check_dataset(root, progress=False)
    assert {"encoding": "encoding", "header": "csv_header"}[mutation] in {
        f.check for f in report.errors
    }, report.summary()
