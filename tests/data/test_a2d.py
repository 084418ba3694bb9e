"""A2D-Sentences reader on generated data in the real layout (acga_lightning.data.synthetic)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from acga_lightning.data.collate import collate_samples
from acga_lightning.data.datasets import a2d as a2d_module
from acga_lightning.data.datasets.a2d import A2DSampleError, A2DSentences
from acga_lightning.data.io.resize import normalise_frames, resize_frames, resize_mask, restore_mask
from acga_lightning.data.io.video import read_window
from acga_lightning.data.sample import frames_to_tensor, make_sample_id
from acga_lightning.data.transforms import ClipAugment, swap_left_right

H5_DIR = "text_annotations/a2d_annotation_with_instances"
KW = {"num_frames": 4, "frame_size": 32}


@pytest.fixture(scope="module")
def root(a2d_root: Path) -> Path:
    return a2d_root  # 8 videos of 20-30 frames, 64 pixels high, seed 1 (conftest.A2D)


@pytest.fixture(scope="module")
def manifest(root: Path) -> dict:
    return json.loads((root / "toy_manifest.json").read_text())


@pytest.fixture
def copy(root: Path, tmp_path: Path) -> Path:
    """A private copy of the dataset that a test may break."""
    return Path(shutil.copytree(root, tmp_path / "data"))


def dataset(root: Path, split: str = "train", **kwargs) -> A2DSentences:
    kwargs.setdefault("index_cache", root.parent / f"cache_{root.name}")
    return A2DSentences(root, split, **{**KW, **kwargs})


def h5_mask(root: Path, vid: str, frame: int, instance_id: int) -> np.ndarray:
    """The mask of ``instance_id`` read straight from the h5 file (first entry for that id)."""
    with h5py.File(root / H5_DIR / vid / f"{frame:05d}.h5", "r") as f:
        ids = [int(i) for i in np.asarray(f["instance"]).ravel()]
        masks = np.asarray(f["reMask"])
    masks = masks[None] if masks.ndim == 2 else masks  # (N, W, H)
    return masks[ids.index(instance_id)].T.astype(bool)  # (H, W)


def expected_samples(manifest: dict, split: str) -> set[tuple]:
    missed = set(manifest["quirks"].get("missed_videos", []))
    return {
        (vid, f, a["instance_id"], a["query"])
        for vid, v in manifest["videos"].items()
        if v["subset"] == (split == "test") and vid not in missed
        for a in v["actors"]
        for f in a["frames"]
    }


def videos_of(split: str, manifest: dict) -> list[str]:
    missed = set(manifest["quirks"].get("missed_videos", []))
    return [v for v, d in manifest["videos"].items() if d["subset"] == (split == "test")
            and v not in missed]  # fmt: skip


@pytest.mark.parametrize("split", ["train", "test"])
def test_samples_are_the_query_frame_pairs(root: Path, manifest: dict, split: str) -> None:
    ds = dataset(root, split)
    assert len(ds) == manifest["num_samples"][split]
    got = {(r["video_id"], r["frame_idx"], r["instance_id"], r["query"]) for r in ds.records}
    assert got == expected_samples(manifest, split)
    assert all(q == " ".join(q.lower().split()) for *_, q in got)  # normalised queries


def test_quirks_are_handled_and_counted(root: Path, manifest: dict) -> None:
    train, test = dataset(root, "train"), dataset(root, "test")
    quirks = manifest["quirks"]
    skipped = {k: train.skipped.get(k, 0) + test.skipped.get(k, 0) for k in ("copy_row",)}
    faults = {k: train.faults.get(k, 0) + test.faults.get(k, 0)
              for k in ("duplicate_instance_id", "extra_masks")}  # fmt: skip
    assert skipped == {"copy_row": 1}
    assert faults == {"duplicate_instance_id": 1, "extra_masks": 1}
    missed = quirks["missed_videos"][0]
    assert all(r["video_id"] != missed for r in train.records + test.records)
    raw = quirks["raw_queries"][0]
    assert any(r["query"] == raw["query"] for r in train.records + test.records)
    assert not any(r["query"] == raw["raw"] for r in train.records + test.records)


def test_orig_mask_equals_the_h5_mask_exactly(root: Path, manifest: dict) -> None:
    quirks = manifest["quirks"]
    dup = quirks["duplicate_instance"]
    with h5py.File(root / H5_DIR / dup["video_id"] / f"{dup['frame']:05d}.h5", "r") as f:
        ids = list(np.asarray(f["instance"]).astype(int))
        entries = [i for i, x in enumerate(ids) if x == dup["instance_id"]]
        assert len(entries) == 2 and not np.array_equal(*[f["reMask"][i] for i in entries])
    special = {(dup["video_id"], dup["frame"]),
               (quirks["extra_mask"]["video_id"], quirks["extra_mask"]["frame"]),
               *map(tuple, quirks["single_instance_frames"])}  # fmt: skip
    seen = set()
    for split in ("train", "test"):
        ds = dataset(root, split)
        for i, r in enumerate(ds.records):
            s = ds[i]
            expected = h5_mask(root, r["video_id"], r["frame_idx"], r["instance_id"])
            assert s["orig_mask"].dtype == torch.bool
            np.testing.assert_array_equal(s["orig_mask"].numpy(), expected)
            seen.add((r["video_id"], r["frame_idx"]))
    missed = set(quirks["missed_videos"])
    assert {k for k in special if k[0] not in missed} <= seen  # every fault was exercised


def test_read_a2d_masks_equals_each_mask_read_alone(root: Path) -> None:
    # Every frame of the generated release, including its single-instance (2-D reMask) frames.
    paths = sorted((root / H5_DIR).glob("*/*.h5"))
    single = 0
    for path in paths:
        masks = a2d_module.read_a2d_masks(path)  # (N, h, w)
        with h5py.File(path, "r") as f:
            single += f["reMask"].ndim == 2
        assert masks.dtype == bool and masks.ndim == 3
        for k, mask in enumerate(masks):
            assert np.array_equal(mask, a2d_module.read_a2d_mask(path, k))
    assert single > 0 and len(paths) > single


def test_sample_contract(root: Path) -> None:
    ds = dataset(root, "train", word_vectors=root / "word2vec.bin", max_words=12)
    assert ds.word_stats.sentences > 0 and ds.word_stats.oov == 0
    s = ds[3]
    r = ds.records[3]
    h, w = s["orig_size"]
    assert s["frames"].shape == (3, 4, 32, 32) and s["frames"].dtype == torch.float32
    assert float(s["frames"].min()) >= -1.0 and float(s["frames"].max()) <= 1.0
    assert s["mask"].shape == (32, 32) and set(s["mask"].unique().tolist()) <= {0.0, 1.0}
    assert s["orig_mask"].shape == (h, w) == (64, r["width"])
    assert s["words"].shape == (12, 300) and s["word_mask"].dtype == torch.bool
    assert s["words"][s["word_mask"]].abs().sum(1).gt(0).all()
    assert not s["words"][~s["word_mask"]].any()
    assert (s["query"], s["video_id"], s["frame_idx"], s["instance_id"]) == (
        r["query"], r["video_id"], r["frame_idx"], r["instance_id"])  # fmt: skip
    # The annotated frame sits at T // 2; the mask went through the same resize policy.
    centre = read_window(root / "Release/clips320H" / f"{r['video_id']}.mp4", [r["frame_idx"] - 1])
    expected = frames_to_tensor(resize_frames(centre, 32, "cover"))[:, 0]
    torch.testing.assert_close(s["frames"][:, 2], expected)
    assert torch.equal(s["mask"], resize_mask(s["orig_mask"], 32, "cover"))
    assert s["resize"].orig_size == (h, w) and s["resize"].size == 32


def test_samples_carry_the_targets_actor_action_class(root: Path, manifest: dict) -> None:
    # The generator writes each actor's code into `id`; the duplicate-instance and extra-mask
    # frames have more masks than actors, so the code must follow the target's own mask.
    for split in ("train", "test"):
        ds = dataset(root, split)
        videos = manifest["videos"]
        expected = [videos[r["video_id"]]["actors"][r["instance_id"]]["code"] for r in ds.records]
        assert [r["action"] for r in ds.records] == expected
        assert len(set(expected)) > 1
        assert [ds[i]["action"] for i in (0, len(ds) - 1)] == [expected[0], expected[-1]]
        assert ds.sample_without_frames(1)["action"] == expected[1]  # the feature cache's path
    batch = collate_samples([ds[0], ds[1]])
    assert batch["action"].dtype == torch.int64 and batch["action"].tolist() == expected[:2]


def test_a_frame_without_usable_action_ids_gives_minus_one(copy: Path) -> None:
    ds = dataset(copy, "train", index_cache=False)
    vid, n = ds.records[0]["video_id"], len(ds)
    first, second = sorted((copy / H5_DIR / vid).glob("*.h5"))[:2]
    with h5py.File(first, "a") as f:
        del f["id"]
    with h5py.File(second, "a") as f:
        codes = f["id"][()]
        del f["id"]
        f["id"] = codes[:, :-1] if codes.shape[1] > 1 else np.full_like(codes, 2.5)
    ds = dataset(copy, "train", index_cache=False)
    frames = {(vid, int(p.stem)) for p in (first, second)}
    actions = {(r["video_id"], r["frame_idx"]): r["action"] for r in ds.records}
    assert {k: v for k, v in actions.items() if k in frames} == dict.fromkeys(frames, -1)
    assert all(v >= 0 for k, v in actions.items() if k not in frames)
    assert ds.faults["no_action_id"] == 2
    assert len(ds) == n  # the samples themselves are kept
    kept = [r for r in ds.records if (r["video_id"], r["frame_idx"]) in frames]
    assert kept and ds[ds.records.index(kept[0])]["action"] == -1


def test_sample_ids_are_stable_and_unique(root: Path) -> None:
    a, b = dataset(root, "train"), dataset(root, "train", index_cache=False)
    ids = [a[i]["sample_id"] for i in range(len(a))]
    assert ids == [b[i]["sample_id"] for i in range(len(b))]
    assert len(set(ids)) == len(ids) and all(0 <= i < 2**63 for i in ids)
    r = a.records[0]
    assert ids[0] == make_sample_id("a2d", r["video_id"], r["frame_idx"], r["instance_id"],
                                    r["query"])  # fmt: skip
    # sha1-based, never hash(): the same in every process and run.
    assert make_sample_id("a2d", "vid", 25, 1, "a dog") == 0x184B1D3F3BBC84


def test_window_longer_than_the_video_repeats_edge_frames(root: Path) -> None:
    ds = dataset(root, "train", num_frames=80)  # every toy video has 20 to 30 frames
    s = ds[0]
    r = ds.records[0]
    assert s["frames"].shape[1] == 80
    first_real = 40 - (r["frame_idx"] - 1)  # window index of video frame 0
    for k in range(first_real):
        assert torch.equal(s["frames"][:, k], s["frames"][:, first_real])
    assert torch.equal(s["frames"][:, -1], s["frames"][:, -2])


def test_index_is_cached_and_rebuilt_when_files_change(
    copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    before = sorted(p for p in copy.rglob("*"))
    first = dataset(copy, index_cache=cache)
    assert sorted(p for p in copy.rglob("*")) == before  # nothing written into the root
    assert len(list(cache.glob("a2d_train_*.json"))) == 1

    def no_build(self: object) -> list:
        raise AssertionError("index rebuilt although the dataset did not change")

    monkeypatch.setattr(a2d_module._IndexBuilder, "build", no_build)
    assert dataset(copy, index_cache=cache).records == first.records
    h5 = next((copy / H5_DIR).rglob("*.h5"))
    os.utime(h5, ns=(h5.stat().st_atime_ns, h5.stat().st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="rebuilt"):
        dataset(copy, index_cache=cache)


def test_default_cache_dir_comes_from_the_environment(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACGA_CACHE_DIR", str(tmp_path / "env_cache"))
    A2DSentences(root, "test", **KW)
    assert len(list((tmp_path / "env_cache").glob("a2d_test_*.json"))) == 1


def first_train_video(copy: Path, manifest: dict) -> tuple[str, int]:
    ds = dataset(copy, "train", index_cache=False)
    vid = ds.records[0]["video_id"]
    return vid, sum(r["video_id"] == vid for r in ds.records)


def test_corrupt_video_is_skipped_or_raised(copy: Path, manifest: dict) -> None:
    vid, n = first_train_video(copy, manifest)
    path = copy / "Release/clips320H" / f"{vid}.mp4"
    path.write_bytes(path.read_bytes()[:500])
    ds = dataset(copy, "train")
    assert ds.skipped["corrupt_video"] == n and all(r["video_id"] != vid for r in ds.records)
    assert len(ds) == manifest["num_samples"]["train"] - n
    with pytest.raises(A2DSampleError, match=f"{vid}.mp4"):
        dataset(copy, "train", strict=True)  # also from the cached index
    with pytest.raises(A2DSampleError, match=f"{vid}.mp4"):
        dataset(copy, "train", strict=True, index_cache=False)


def test_missing_h5_is_skipped_or_raised(copy: Path, manifest: dict) -> None:
    vid, n = first_train_video(copy, manifest)
    frames = sorted((copy / H5_DIR / vid).glob("*.h5"))
    frames[0].unlink()  # one annotated frame lost: counted against videoset.csv
    ds = dataset(copy, "train", index_cache=False)
    assert ds.skipped["missing_h5"] == 1
    with pytest.raises(A2DSampleError, match=f"missing_h5.*{vid}"):
        dataset(copy, "train", strict=True, index_cache=False)
    shutil.rmtree(copy / H5_DIR / vid)  # all of them: the video's queries have no frames
    ds = dataset(copy, "train", index_cache=False)
    assert all(r["video_id"] != vid for r in ds.records)
    assert ds.skipped["missing_h5"] == len(manifest["videos"][vid]["actors"])


def test_mask_size_mismatch_and_bad_h5(root: Path, copy: Path, manifest: dict) -> None:
    vid, _ = first_train_video(copy, manifest)
    first, second = sorted((copy / H5_DIR / vid).glob("*.h5"))[:2]
    with h5py.File(first, "a") as f:
        masks = f["reMask"][()]
        del f["reMask"]
        f["reMask"] = np.pad(masks, [(0, 0)] * (masks.ndim - 1) + [(0, 3)])  # 3 rows taller
    second.write_bytes(b"not an h5 file")
    ds = dataset(copy, "train", index_cache=False)
    assert ds.skipped["mask_size_mismatch"] >= 1 and ds.skipped["bad_h5"] == 1
    with pytest.raises(A2DSampleError, match=f"bad_h5.*{second.name}"):
        dataset(copy, "train", strict=True, index_cache=False)
    shutil.copy(root / second.relative_to(copy), second)
    with pytest.raises(A2DSampleError, match=f"mask_size_mismatch.*{first.name}"):
        dataset(copy, "train", strict=True, index_cache=False)


def test_letterbox_and_flip_augmentation(root: Path) -> None:
    flip = ClipAugment(p_flip=1.0, p_affine=0.0, p_color=0.0)
    ds = dataset(root, "train", resize="letterbox", transform=flip)
    plain = dataset(root, "train", resize="letterbox")
    for i in range(len(ds)):
        s, p = ds[i], plain[i]
        assert torch.equal(s["orig_mask"], p["orig_mask"].flip(-1))
        assert s["query"] == swap_left_right(p["query"])
        assert torch.equal(s["frames"], p["frames"].flip(-1)) or s["orig_size"][1] % 2
    restored = restore_mask(p["mask"].bool(), p["orig_size"], "letterbox")
    assert (restored != p["orig_mask"]).float().mean() < 0.05
    assert any("left" in r["query"] or "right" in r["query"] for r in ds.records)


def test_dataloader_with_workers(root: Path) -> None:
    ds = dataset(root, "test", word_vectors=root / "word2vec.bin")
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate_samples)
    batch = next(iter(loader))
    assert batch["frames"].shape == (3, 3, 4, 32, 32) and batch["words"].shape == (3, 20, 300)
    assert len(batch["orig_mask"]) == 3 and batch["sample_id"].dtype == torch.int64


def test_bad_arguments(root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        A2DSentences(root, "val")
    with pytest.raises(ValueError, match="resize"):
        A2DSentences(root, resize="stretch")
    with pytest.raises(ValueError, match="root"):
        A2DSentences(tmp_path)


def test_uint8_frames_are_the_float_frames_before_normalisation(root: Path) -> None:
    floats = dataset(root, "train")
    pixels = dataset(root, "train", frames_dtype="uint8")
    for i in (0, len(floats) - 1):
        a, b = floats[i], pixels[i]
        assert b["frames"].dtype == torch.uint8 and b["frames"].shape == a["frames"].shape
        assert torch.equal(normalise_frames(b["frames"]), a["frames"])
        assert torch.equal(a["mask"], b["mask"]) and a["sample_id"] == b["sample_id"]
    with pytest.raises(ValueError, match="frames_dtype"):
        dataset(root, "train", frames_dtype="float16")


def test_the_queries_of_a_frame_share_one_decode(root: Path, monkeypatch) -> None:
    calls = []

    def counting(path, indices):
        calls.append((path, tuple(indices)))
        return read_window(path, indices)

    monkeypatch.setattr(a2d_module, "read_window", counting)
    ds = dataset(root, "train", word_vectors=root / "word2vec.bin")
    samples = [ds[i] for i in range(len(ds))]  # in index order, as evaluation reads
    windows = {ds.window_key(i) for i in range(len(ds))}
    assert len(calls) == len(windows) < len(ds)  # each frame decoded once, not once per query
    for i in (0, len(ds) // 2, len(ds) - 1):  # the same samples as a reader that shares nothing
        alone = dataset(root, "train", word_vectors=root / "word2vec.bin")[i]
        for key in ("frames", "mask", "orig_mask", "words"):
            assert torch.equal(samples[i][key], alone[key])
    assert not ds._last_window[1].flags.writeable  # shared, so no sample may write into it
    for transform in (ClipAugment(seed=0), ClipAugment(p_flip=0.0, p_affine=0.0, p_color=0.0)):
        augmenting = dataset(root, "train", transform=transform)  # must not write into it
        for i in range(len(augmenting)):
            assert augmenting[i]["frames"].shape == (3, 4, 32, 32)
