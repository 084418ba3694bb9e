"""Generated Ref-YouTube-VOS / Ref-DAVIS17 data: the real layouts, the same bytes per seed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from acga_lightning.data.synthetic.ref_vos import VOID, write_ref_vos


def files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("fmt", ["ytvos", "davis"])
def test_the_same_arguments_write_the_same_bytes(tmp_path, fmt) -> None:
    a = write_ref_vos(tmp_path / "a", fmt, num_videos=3, seed=5, height=32, width=48)
    b = write_ref_vos(tmp_path / "b", fmt, num_videos=3, seed=5, height=32, width=48)
    c = write_ref_vos(tmp_path / "c", fmt, num_videos=3, seed=6, height=32, width=48)
    assert files(a) == files(b)
    assert files(a) != files(c)


def test_layouts_follow_each_benchmark(tmp_path) -> None:
    yt = write_ref_vos(tmp_path / "yt", "ytvos", num_videos=3, seed=1, height=32, width=48)
    dv = write_ref_vos(tmp_path / "dv", "davis", num_videos=3, seed=1, height=32, width=48)
    # Ref-YouTube-VOS: every 5th frame number, no masks or obj_id for valid
    meta = json.loads((yt / "meta_expressions/valid/meta_expressions.json").read_text())
    for entry in meta["videos"].values():
        assert [int(f) for f in entry["frames"]] == list(range(0, 5 * len(entry["frames"]), 5))
        assert all("obj_id" not in e for e in entry["expressions"].values())
    assert not (yt / "valid/Annotations").exists() and (yt / "train/Annotations").is_dir()
    # Ref-DAVIS17: consecutive frames, masks in both splits, a void ring around one object
    for split in ("train", "valid"):
        meta = json.loads((dv / f"meta_expressions/{split}/meta_expressions.json").read_text())
        for vid, entry in meta["videos"].items():
            assert [int(f) for f in entry["frames"]] == list(range(len(entry["frames"])))
            labels = [np.array(Image.open(dv / split / "Annotations" / vid / f"{f}.png"))
                      for f in entry["frames"]]  # fmt: skip
            assert any((label == VOID).any() for label in labels)
            with Image.open(dv / split / "Annotations" / vid / f"{entry['frames'][0]}.png") as im:
                assert im.mode == "P"
