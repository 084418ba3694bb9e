"""check-data: clean on fresh generated data, and each injected fault is reported."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from acga_lightning.data.check import check_data_main, check_dataset, findings

MASKS = "text_annotations/a2d_annotation_with_instances"


@pytest.fixture(scope="module")
def a2d_source(toy_a2d) -> Path:
    return toy_a2d(num_videos=5, height=48, num_frames=(10, 12), word2vec=False, seed=1)


@pytest.fixture
def a2d(a2d_source: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(a2d_source, tmp_path / "a2d"))


@pytest.fixture(scope="module")
def jhmdb_source(toy_jhmdb) -> Path:
    return toy_jhmdb(num_videos=3, height=32, width=40, num_frames=(5, 7), word2vec=False)


@pytest.fixture
def jhmdb(jhmdb_source: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(jhmdb_source, tmp_path / "jhmdb"))


def run(root: Path, fmt: str = "a2d", *extra: str) -> int:
    return check_data_main(["--root", str(root), "--format", fmt, "--no-progress", *extra])


def first_video(root: Path) -> str:
    return (root / "Release" / "videoset.csv").read_text().splitlines()[0].split(",")[0]


def test_fresh_a2d_is_clean_with_known_quirks_as_warnings(a2d: Path, capsys) -> None:
    report = check_dataset(a2d, "a2d", progress=False)
    assert report.ok, report.summary()
    warned = {f.check for f in report.warnings}
    assert {"copy_row", "missed_video", "duplicate_instance_id", "extra_masks"} <= warned
    assert report.counts["videos"] == 5 and report.counts["h5 files"] == 15
    assert run(a2d) == 0
    out = capsys.readouterr().out
    assert "errors: 0" in out and "copy_row: 1" in out and out.rstrip().endswith("OK")
    assert run(a2d, "a2d", "--strict") == 1  # warnings count in strict mode


def test_fresh_jhmdb_is_clean(jhmdb: Path) -> None:
    report = check_dataset(jhmdb, "jhmdb", progress=False)
    assert report.ok and not report.warnings, report.summary()
    assert report.counts["videos with masks on fewer frames"] >= 1
    assert run(jhmdb, "jhmdb", "--strict") == 0


def _delete_h5(root: Path) -> None:
    next((root / MASKS).glob("*/*.h5")).unlink()


def _truncate_mp4(root: Path) -> None:
    path = root / "Release" / "clips320H" / f"{first_video(root)}.mp4"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _delete_mp4(root: Path) -> None:
    (root / "Release" / "clips320H" / f"{first_video(root)}.mp4").unlink()


def _short_row(root: Path) -> None:
    with open(root / "Release" / "videoset.csv", "a") as f:
        f.write("abcdefghijk,11,00:00:01,00:00:02,48,64\n")


def _text_field(root: Path) -> None:
    path = root / "Release" / "videoset.csv"
    lines = path.read_text().splitlines()
    fields = lines[0].split(",")
    fields[6] = "many"
    path.write_text("\n".join([",".join(fields), *lines[1:]]) + "\n")


def _empty_query(root: Path) -> None:
    with open(root / "text_annotations" / "a2d_annotation.txt", "a") as f:
        f.write(f"{first_video(root)},0,   \n")


def _bad_instance_id(root: Path) -> None:
    with open(root / "text_annotations" / "a2d_annotation.txt", "a") as f:
        f.write(f"{first_video(root)},two,a red ball\n")


def _rewrite_first_h5(root: Path, edit: Callable[[dict], None]) -> None:
    path = sorted((root / MASKS).glob("*/*.h5"))[0]
    with h5py.File(path, "r") as f:
        data = {k: f[k][()] for k in f}
    edit(data)
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            f.create_dataset(k, data=v)


def _fewer_masks(root: Path) -> None:
    def edit(d: dict) -> None:
        d["instance"] = np.concatenate([d["instance"], [7.0, 8.0]])

    _rewrite_first_h5(root, edit)


def _wrong_mask_size(root: Path) -> None:
    def edit(d: dict) -> None:
        d["reMask"] = d["reMask"][..., :-4]  # (N, W, H-4)

    _rewrite_first_h5(root, edit)


def _untransposed_masks(root: Path) -> None:
    def edit(d: dict) -> None:
        d["reMask"] = np.ascontiguousarray(np.swapaxes(d["reMask"], -1, -2))

    _rewrite_first_h5(root, edit)


def _corrupt_h5(root: Path) -> None:
    sorted((root / MASKS).glob("*/*.h5"))[0].write_bytes(b"not an hdf5 file")


@pytest.mark.parametrize(
    "inject, check",
    [
        (_delete_h5, "missing_h5"),
        (_truncate_mp4, "corrupt_video"),
        (_delete_mp4, "missing_video"),
        (_short_row, "csv_columns"),
        (_text_field, "csv_field"),
        (_empty_query, "empty_query"),
        (_bad_instance_id, "csv_field"),
        (_fewer_masks, "instance_mask_mismatch"),
        (_wrong_mask_size, "mask_size"),
        (_untransposed_masks, "mask_size"),
        (_corrupt_h5, "corrupt_h5"),
    ],
)
def test_each_injected_a2d_fault_is_an_error(a2d: Path, inject, check: str, capsys) -> None:
    inject(a2d)
    report = check_dataset(a2d, "a2d", progress=False)
    assert [f.check for f in report.errors] == [check], report.summary()
    assert run(a2d) == 1
    out = capsys.readouterr().out
    assert f"{check}: 1" in out and "FAILED" in out


def test_an_unusable_action_id_is_a_warning(a2d: Path) -> None:
    # the reader keeps the samples with action -1: check-data says so, and fails only --strict
    _rewrite_first_h5(a2d, lambda d: d.update(id=np.full_like(d["id"], 0.5)))
    report = check_dataset(a2d, "a2d", progress=False)
    assert report.ok and [f.check for f in report.warnings].count("action_id") == 1
    assert run(a2d, "a2d", "--strict") == 1


def test_summary_names_the_offending_file(a2d: Path) -> None:
    _truncate_mp4(a2d)
    summary = check_dataset(a2d, "a2d", progress=False).summary()
    assert f"{first_video(a2d)}.mp4" in summary


def _jhmdb_video(root: Path) -> tuple[str, dict]:
    manifest = json.loads((root / "toy_manifest.json").read_text())
    return next(iter(manifest["videos"].items()))


@pytest.mark.parametrize("fault", ["missing_frame", "missing_mask", "missing_video", "mask_size"])
def test_each_injected_jhmdb_fault_is_an_error(jhmdb: Path, fault: str) -> None:
    vid, info = _jhmdb_video(jhmdb)
    frames = jhmdb / "Rename_Images" / info["action"] / vid
    mat = jhmdb / "puppet_mask" / info["action"] / vid / "puppet_mask.mat"
    if fault == "missing_frame":
        (frames / "00002.png").unlink()
    elif fault == "missing_mask":
        mat.unlink()
    elif fault == "missing_video":
        shutil.rmtree(frames)
    else:
        from scipy.io import loadmat, savemat

        savemat(mat, {"part_mask": loadmat(mat)["part_mask"][:-2]})
    report = check_dataset(jhmdb, "jhmdb", progress=False)
    assert [f.check for f in report.errors] == [fault], report.summary()
    assert run(jhmdb, "jhmdb") == 1


def test_missing_root_and_bad_format(tmp_path: Path) -> None:
    report = check_dataset(tmp_path / "nowhere", "a2d", progress=False)
    assert not report.ok and list(findings(report, "missing_file"))
    with pytest.raises(ValueError, match="format"):
        check_dataset(tmp_path, "refcoco")
