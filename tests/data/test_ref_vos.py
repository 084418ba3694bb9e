"""Ref-YouTube-VOS and Ref-DAVIS17 readers on generated data in the real layouts."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
from PIL import Image
from torch.utils.data import DataLoader

from acga_lightning.data.collate import collate_samples
from acga_lightning.data.datasets.ref_vos import ReferringVOS, RefVOSSampleError
from acga_lightning.data.synthetic.ref_vos import write_ref_vos
from acga_lightning.prediction import SubmissionWriter, check_submission

ASSET = Path(__file__).resolve().parents[1] / "assets/sentence_acga.ckpt"


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("refvos")
    return {
        "ytvos": write_ref_vos(base / "ytvos", "ytvos", num_videos=5, seed=1),
        "davis": write_ref_vos(base / "davis", "davis", num_videos=4, seed=2),
    }


def expressions(root: Path, split: str) -> dict:
    with open(root / "meta_expressions" / split / "meta_expressions.json") as f:
        return json.load(f)["videos"]


@pytest.mark.parametrize("fmt", ["ytvos", "davis"])
@pytest.mark.parametrize("split", ["train", "valid"])
def test_every_expression_and_frame_is_a_sample_with_the_pngs_mask(roots, fmt, split) -> None:
    root = roots[fmt]
    data = ReferringVOS(root, split, num_frames=3, frame_size=32, name=fmt)
    meta = expressions(root, split)
    wanted = {
        (vid, exp_id, name)
        for vid, entry in meta.items()
        for exp_id in entry["expressions"]
        for name in entry["frames"]
    }
    got = [(r["video_id"], r["exp_id"], r["frame_name"]) for r in data.records]
    assert len(got) == len(set(got)) and set(got) == wanted
    has_masks = not (fmt == "ytvos" and split == "valid")
    assert data.has_masks == has_masks
    for index in range(0, len(data), 5):
        sample = data[index]
        r = data.records[index]
        jpeg = root / split / "JPEGImages" / r["video_id"] / f"{r['frame_name']}.jpg"
        with Image.open(jpeg) as image:
            assert sample["orig_size"] == (image.height, image.width)
        assert sample["frames"].shape == (3, 3, 32, 32)
        assert sample["frame_idx"] == int(r["frame_name"])
        if not has_masks:
            assert "orig_mask" not in sample and "mask" not in sample
            continue
        png = root / split / "Annotations" / r["video_id"] / f"{r['frame_name']}.png"
        labels = np.array(Image.open(png))  # palette indices: the object ids
        obj_id = int(meta[r["video_id"]]["expressions"][r["exp_id"]]["obj_id"])
        assert sample["instance_id"] == obj_id
        assert np.array_equal(sample["orig_mask"].numpy(), labels == obj_id)
        assert np.array_equal(sample["void"].numpy(), labels == 255)


def test_object_ids_follow_the_meta_files(roots) -> None:
    root = roots["ytvos"]
    data = ReferringVOS(root, "train", num_frames=1, frame_size=16)
    with open(root / "train/meta.json") as f:
        objects = json.load(f)["videos"]
    for r in data.records:
        assert str(r["obj_id"]) in objects[r["video_id"]]["objects"]
        # a frame where meta.json lists the object shows it; one it leaves out does not
        shown = r["frame_name"] in objects[r["video_id"]]["objects"][str(r["obj_id"])]["frames"]
        png = root / "train/Annotations" / r["video_id"] / f"{r['frame_name']}.png"
        assert shown == bool((np.array(Image.open(png)) == r["obj_id"]).any())


def test_davis_evaluation_leaves_out_first_and_last_frames(roots) -> None:
    full = ReferringVOS(roots["davis"], "valid", num_frames=1, frame_size=16)
    inner = ReferringVOS(roots["davis"], "valid", num_frames=1, frame_size=16,
                         exclude_first_last=True)  # fmt: skip
    for vid, frames in full.listed.items():
        names = {r["frame_name"] for r in inner.records if r["video_id"] == vid}
        assert names == set(frames[1:-1])


def _copy(root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(root, tmp_path / "copy"))


@pytest.mark.parametrize(
    "fault, reason",
    [("missing_frame", "missing_frame"), ("missing_mask", "missing_mask"),
     ("empty_query", "empty_query"), ("unknown_object", "unknown_object"),
     ("bad_obj_id", "bad_obj_id")],
)  # fmt: skip
def test_faults_raise_in_strict_mode_and_are_counted_otherwise(roots, tmp_path, fault, reason):
    root = _copy(roots["ytvos"], tmp_path)
    meta_path = root / "meta_expressions/train/meta_expressions.json"
    meta = json.loads(meta_path.read_text())
    vid = sorted(meta["videos"])[0]
    entry = meta["videos"][vid]
    first = entry["frames"][0]
    if fault == "missing_frame":
        (root / "train/JPEGImages" / vid / f"{first}.jpg").unlink()
    elif fault == "missing_mask":
        (root / "train/Annotations" / vid / f"{first}.png").unlink()
    else:
        exp = entry["expressions"]["0"]
        exp.update({"empty_query": {"exp": " ,. "}, "unknown_object": {"obj_id": "9"},
                    "bad_obj_id": {"obj_id": "one"}}[fault])  # fmt: skip
        meta_path.write_text(json.dumps(meta))
    with pytest.raises(RefVOSSampleError, match=reason):
        ReferringVOS(root, "train", strict=True)
    data = ReferringVOS(root, "train")
    clean = ReferringVOS(roots["ytvos"], "train")
    assert data.skipped.get(reason, 0) >= 1
    assert len(data) < len(clean)


def test_a_bad_meta_file_names_itself(roots, tmp_path) -> None:
    root = _copy(roots["davis"], tmp_path)
    path = root / "meta_expressions/train/meta_expressions.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="meta_expressions.json: not readable JSON"):
        ReferringVOS(root, "train")
    path.write_text('{"vids": {}}')
    with pytest.raises(ValueError, match="'videos' mapping"):
        ReferringVOS(root, "train")


def test_a_submission_has_exactly_the_files_the_server_expects(roots, tmp_path) -> None:
    """A trained ACGASegmenter (the test asset) over a generated valid split, as docs show."""
    from acga_lightning import ACGASegmenter

    root = roots["ytvos"]
    model = ACGASegmenter.load_from_checkpoint(ASSET, map_location="cpu")
    hp = model.hparams
    vectors = root / "word2vec.bin"
    data = ReferringVOS(
        root, "valid", num_frames=hp.num_frames, frame_size=hp.frame_size, word_vectors=vectors
    )
    loader = DataLoader(data, batch_size=4, collate_fn=collate_samples)
    out = tmp_path / "submission"
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False,
        callbacks=[SubmissionWriter(out)], enable_model_summary=False,
    )  # fmt: skip
    trainer.predict(model, dataloaders=loader, return_predictions=False)
    archive = out.with_suffix(".zip")
    assert check_submission(archive, root, "valid") == []
    with zipfile.ZipFile(archive) as z:
        assert len(z.namelist()) == len(data)
        assert all(n.startswith("Annotations/") for n in z.namelist())
    # the check does catch a wrong archive
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as z:
        z.write(next(out.rglob("*.png")), "Annotations/x/0/00000.png")
    problems = check_submission(tmp_path / "bad.zip", root, "valid")
    assert any(p.startswith("missing ") for p in problems)
    assert "unexpected Annotations/x/0/00000.png" in problems
    with pytest.raises(FileExistsError):  # never over an earlier submission
        trainer.predict(model, dataloaders=loader, return_predictions=False)


@pytest.mark.parametrize("fmt", ["ytvos", "davis"])
def test_toy_data_and_check_data_commands(tmp_path, fmt, capsys) -> None:
    from acga_lightning.cli import main

    root = tmp_path / fmt
    assert main(["toy-data", str(root), "--format", fmt, "--videos", "3", "--height", "32"]) == 0
    assert main(["check-data", "--root", str(root), "--format", fmt, "--no-progress"]) == 0
    assert "OK" in capsys.readouterr().out
    # check-data reports what the reader would skip, and sizes the reader meets only later
    meta = json.loads((root / "meta_expressions/train/meta_expressions.json").read_text())
    vid = sorted(meta["videos"])[0]
    name = meta["videos"][vid]["frames"][-1]
    (root / "train/JPEGImages" / vid / f"{name}.jpg").unlink()
    other = sorted(meta["videos"])[1]
    png = root / "train/Annotations" / other / f"{meta['videos'][other]['frames'][0]}.png"
    Image.fromarray(np.zeros((5, 5), np.uint8), mode="L").save(png)
    assert main(["check-data", "--root", str(root), "--format", fmt, "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "missing_frame" in out and "mask_size_mismatch" in out and "FAILED" in out
    with pytest.raises(RefVOSSampleError, match="missing_frame"):
        ReferringVOS(root, "train", strict=True)


def test_frame_stride_counts_listed_frames(roots) -> None:
    from acga_lightning.data.datasets.ref_vos import window

    assert window(5, 12, 4, 2) == [1, 3, 5, 7] and window(0, 12, 3, 4) == [0, 0, 4]
    assert window(11, 12, 3, 4) == [7, 11, 11]  # clamped to the listed frames
    root = roots["davis"]
    plain = ReferringVOS(root, "valid", num_frames=3, frame_size=32, name="davis")
    strided = ReferringVOS(root, "valid", num_frames=3, frame_size=32, name="davis",
                           frame_stride=2)  # fmt: skip
    index = len(plain) // 2
    assert plain.records[index] == strided.records[index]
    a, b = plain[index]["frames"], strided[index]["frames"]
    assert np.array_equal(a[:, 1], b[:, 1]) and not np.array_equal(a, b)  # same centre frame
