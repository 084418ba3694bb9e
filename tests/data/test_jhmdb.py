"""J-HMDB-Sentences reader on generated data: uniform frames, MTTR's metadata list, masks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from acga_lightning.data.datasets.jhmdb import JHMDBSampleError, JHMDBSentences, uniform_frames
from acga_lightning.data.io.resize import normalise_frames, resize_frames
from acga_lightning.data.sample import frames_to_tensor

KW = {"num_frames": 4, "frame_size": 32}


@pytest.fixture(scope="module")
def root(toy_jhmdb) -> Path:
    return toy_jhmdb(num_videos=4, seed=2, height=48, width=64, num_frames=(12, 18))


@pytest.fixture(scope="module")
def manifest(root: Path) -> dict:
    return json.loads((root / "toy_manifest.json").read_text())


def part_mask(root: Path, vid: str, action: str) -> np.ndarray:
    return scipy.io.loadmat(str(root / "puppet_mask" / action / vid / "puppet_mask.mat"))[
        "part_mask"
    ]  # (H, W, T_m)


def test_uniform_frames_are_segment_centres() -> None:
    assert uniform_frames(30, 3) == [6, 16, 26]
    assert uniform_frames(40, 3) == [7, 21, 34]
    assert uniform_frames(2, 3) == [1, 2]  # fewer annotated frames than asked: no repeats
    assert uniform_frames(1, 1) == [1]


def test_uniform_sampling_uses_annotated_frames_only(root: Path, manifest: dict) -> None:
    ds = JHMDBSentences(root, **KW)
    assert len(ds) == 3 * len(manifest["videos"])
    short = manifest["short_mask_videos"]
    assert short, "the toy data should have a video whose masks stop early"
    for r in ds.records:
        v = manifest["videos"][r["video_id"]]
        assert r["num_annotated"] == v["num_mask_frames"] and r["num_frames"] == v["num_frames"]
        assert 1 <= r["frame_idx"] <= v["num_mask_frames"]
        assert r["query"] == " ".join(v["query"].lower().split())
    assert [r["frame_idx"] for r in ds.records if r["video_id"] == short[0]] == uniform_frames(
        manifest["videos"][short[0]]["num_mask_frames"], 3
    )
    assert [r["frame_idx"] for r in JHMDBSentences(root, **KW).records] == [
        r["frame_idx"] for r in ds.records
    ]  # deterministic


def test_samples_match_the_files(root: Path, manifest: dict) -> None:
    ds = JHMDBSentences(root, word_vectors=root / "word2vec.bin", **KW)
    for i, r in enumerate(ds.records):
        s = ds[i]
        action = manifest["videos"][r["video_id"]]["action"]
        expected = part_mask(root, r["video_id"], action)[:, :, r["frame_idx"] - 1] != 0
        np.testing.assert_array_equal(s["orig_mask"].numpy(), expected)
        assert s["orig_size"] == (48, 64) and s["frames"].shape == (3, 4, 32, 32)
        assert s["instance_id"] == 0 and s["frame_idx"] == r["frame_idx"]
        assert s["word_mask"].any() and ds.word_stats.oov == 0
    # The annotated frame sits at T // 2: the centre frame equals the png (cover = 48x64 -> crop).
    s, r = ds[0], ds.records[0]
    png = np.asarray(Image.open(r["frames_dir"] / f"{r['frame_idx']:05d}.png").convert("RGB"))

    torch.testing.assert_close(
        s["frames"][:, 2], frames_to_tensor(resize_frames(png[None], 32))[:, 0]
    )


def mttr_metadata(root: Path, manifest: dict, frames: dict[str, list[int]]) -> list[list]:
    """Entries in MTTR's layout, with its './jhmdb_sentences/...' relative paths."""
    entries = []
    for vid, v in manifest["videos"].items():
        for f in frames.get(vid, []):
            entries.append([
                vid,
                f"./jhmdb_sentences/Rename_Images/{v['action']}/{vid}/{f:05d}.png",
                f"./jhmdb_sentences/puppet_mask/{v['action']}/{vid}/puppet_mask.mat",
                v["num_mask_frames"],
                v["query"],
            ])  # fmt: skip
    return entries


def test_metadata_sampling_reads_mttr_layout(root: Path, manifest: dict, tmp_path: Path) -> None:
    chosen = {vid: [1, 2, v["num_mask_frames"]] for vid, v in manifest["videos"].items()}
    path = tmp_path / "jhmdb_sentences_samples_metadata.json"
    path.write_text(json.dumps(mttr_metadata(root, manifest, chosen)))
    ds = JHMDBSentences(root, sampling="metadata", metadata_path=path, **KW)
    assert [(r["video_id"], r["frame_idx"]) for r in ds.records] == [
        (vid, f) for vid, fs in chosen.items() for f in fs
    ]
    s = ds[2]
    vid = ds.records[2]["video_id"]
    expected = part_mask(root, vid, manifest["videos"][vid]["action"])[:, :, -1] != 0
    np.testing.assert_array_equal(s["orig_mask"].numpy(), expected)


def test_metadata_errors(root: Path, manifest: dict, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="metadata_path"):
        JHMDBSentences(root, sampling="metadata")
    short = manifest["short_mask_videos"][0]
    beyond = manifest["videos"][short]["num_mask_frames"] + 1
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(mttr_metadata(root, manifest, {short: [1, beyond]})))
    ds = JHMDBSentences(root, sampling="metadata", metadata_path=path, **KW)
    assert len(ds) == 1 and ds.skipped == {"unannotated_frame": 1}
    with pytest.raises(JHMDBSampleError, match=f"{beyond:05d}.png has no mask"):
        JHMDBSentences(root, sampling="metadata", metadata_path=path, strict=True, **KW)
    path.write_text(json.dumps([["only", "three", "fields"]]))
    with pytest.raises(ValueError, match="entry 0"):
        JHMDBSentences(root, sampling="metadata", metadata_path=path, **KW)


def test_window_past_the_ends_repeats_edge_frames(root: Path) -> None:
    ds = JHMDBSentences(root, num_frames=40, frame_size=32)  # longer than any video
    s = ds[0]
    assert s["frames"].shape[1] == 40
    assert torch.equal(s["frames"][:, 0], s["frames"][:, 1])
    assert torch.equal(s["frames"][:, -1], s["frames"][:, -2])


def test_missing_mask_file_is_skipped_or_raised(root: Path, manifest: dict, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(root, tmp_path / "data"))
    vid, v = next(iter(manifest["videos"].items()))
    (copy / "puppet_mask" / v["action"] / vid / "puppet_mask.mat").unlink()
    ds = JHMDBSentences(copy, **KW)
    assert ds.skipped == {"missing_mask": 1} and len(ds) == 3 * (len(manifest["videos"]) - 1)
    with pytest.raises(JHMDBSampleError, match="puppet_mask.mat not found"):
        JHMDBSentences(copy, strict=True, **KW)


def test_bad_arguments(root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sampling"):
        JHMDBSentences(root, sampling="random")
    with pytest.raises(ValueError, match="root"):
        JHMDBSentences(tmp_path)


def test_uint8_frames_normalise_to_the_float_frames(root: Path) -> None:
    a = JHMDBSentences(root, **KW)[0]
    b = JHMDBSentences(root, frames_dtype="uint8", **KW)[0]
    assert b["frames"].dtype == torch.uint8
    assert torch.equal(normalise_frames(b["frames"]), a["frames"])


@pytest.mark.parametrize("fault", ["frame gap", "more masks than frames"])
def test_frames_that_would_shift_against_their_masks_are_an_error_a_skip_and_a_finding(
    root: Path, manifest: dict, tmp_path: Path, fault: str
) -> None:
    from acga_lightning.data.check import check_dataset

    copy = Path(shutil.copytree(root, tmp_path / "data"))
    vid, v = next(iter(manifest["videos"].items()))
    frames = copy / "Rename_Images" / v["action"] / vid
    mat = copy / "puppet_mask" / v["action"] / vid / "puppet_mask.mat"
    if fault == "frame gap":
        last = sorted(frames.glob("*.png"))[-1]
        last.rename(last.with_name(f"{int(last.stem) + 5:05d}.png"))
        reason, check, where = "missing_frames", "missing_frame", frames
    else:
        masks = scipy.io.loadmat(str(mat))["part_mask"]
        extra = np.repeat(masks[..., -1:], v["num_frames"] + 2 - masks.shape[2], axis=2)
        scipy.io.savemat(mat, {"part_mask": np.concatenate([masks, extra], axis=2)})
        reason, check, where = "mask_frames", "mask_frames", mat
    ds = JHMDBSentences(copy, **KW)
    assert ds.skipped == {reason: 1} and len(ds) == 3 * (len(manifest["videos"]) - 1)
    with pytest.raises(JHMDBSampleError, match=f"{reason}: {where}"):
        JHMDBSentences(copy, strict=True, **KW)
    report = check_dataset(copy, "jhmdb", progress=False)
    assert [(f.check, f.path) for f in report.errors] == [(check, str(where))], report.summary()


def test_a_float_mask_with_nan_is_a_named_error_not_foreground(root: Path, tmp_path: Path) -> None:
    import shutil

    import scipy.io

    copy = Path(shutil.copytree(root, tmp_path / "copy"))
    ds = JHMDBSentences(copy, **KW)
    path = ds.records[0]["masks_path"]
    masks = scipy.io.loadmat(str(path))["part_mask"].astype(np.float32)
    masks[masks == 0] = np.nan  # the background as NaN: `!= 0` would call it foreground
    scipy.io.savemat(str(path), {"part_mask": masks})
    with pytest.raises(JHMDBSampleError, match="puppet_mask.mat: part_mask frame .* NaN"):
        ds[0]
    masks[np.isnan(masks)] = 0.0  # float 0/1 masks are fine
    scipy.io.savemat(str(path), {"part_mask": masks})
    assert ds[0]["orig_mask"].any()


def test_bad_metadata_entries_are_counted_or_named(root: Path, manifest: dict, tmp_path) -> None:
    vid = next(iter(manifest["videos"]))
    good = mttr_metadata(root, manifest, {vid: [1, 2]})
    wrong_video = [good[0][:1] + [good[0][1].replace(vid, "other")] + good[0][2:]]
    unnumbered = [good[0][:1] + [good[0][1].replace("00001.png", "first.png")] + good[0][2:]]
    no_query = [good[0][:4] + [" ?! "]]
    path = tmp_path / "meta.json"
    cases = [(wrong_video, "bad_metadata_entry"), (unnumbered, "bad_metadata_entry"),
             (no_query, "empty_query")]  # fmt: skip
    for entries, reason in cases:
        path.write_text(json.dumps(good[1:] + entries))
        ds = JHMDBSentences(root, sampling="metadata", metadata_path=path, **KW)
        assert len(ds) == 1 and ds.skipped == {reason: 1}
        with pytest.raises(JHMDBSampleError, match=reason):
            JHMDBSentences(root, sampling="metadata", metadata_path=path, strict=True, **KW)
    path.write_text("{not json")
    with pytest.raises(JHMDBSampleError, match="meta.json: not a readable JSON list"):
        JHMDBSentences(root, sampling="metadata", metadata_path=path, **KW)


def test_frame_stride_reads_every_stride_th_png(root: Path) -> None:
    from acga_lightning.data.io.video import clip_indices

    ds = JHMDBSentences(root, frame_stride=2, **KW)
    r = ds.records[1]
    frames = []
    for i in clip_indices(r["frame_idx"], 4, 2):
        path = r["frames_dir"] / f"{min(max(i, 0), r['num_frames'] - 1) + 1:05d}.png"
        frames.append(np.array(Image.open(path).convert("RGB")))
    expected = frames_to_tensor(resize_frames(np.stack(frames), 32, "cover"))
    assert torch.equal(ds[1]["frames"], expected)
    assert not torch.equal(JHMDBSentences(root, **KW)[1]["frames"], expected)
