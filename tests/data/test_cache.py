"""Feature cache: cached == uncached outputs, resume, corrupt entries, changed settings."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from acga_lightning.data import A2DDataModule
from acga_lightning.data.base import build_cache
from acga_lightning.data.caching.features import (
    CacheMismatchError,
    CacheSettings,
    FeatureCache,
    augment_view,
    entry_key,
)
from acga_lightning.data.io.resize import normalise_frames
from acga_lightning.registry import VIDEO_ENCODERS

SIZE = dict(num_frames=8, frame_size=64)
# Bookkeeping tests do not look at the features: the smallest clip keeps I3D on CPU cheap.
SMALL = dict(num_frames=4, frame_size=32)


@pytest.fixture(scope="module")
def toy_root(small_a2d_root):
    return small_a2d_root  # 4 videos, 64 pixels high, seed 0 (conftest.SMALL_A2D)


def make_dm(root, cache_dir, size=SMALL, **cache):
    return A2DDataModule(
        str(root), toy={}, batch_size=4, **size, index_cache=False,
        cache={"mode": "mixed_4e", "dir": str(cache_dir), **cache},
    )  # fmt: skip


def test_settings_validate_names_the_key():
    with pytest.raises(ValueError, match="cache.mode"):
        CacheSettings.from_dict({"mode": "mixed_5c", "dir": "x"})
    with pytest.raises(ValueError, match="unknown key"):
        CacheSettings.from_dict({"mode": "none", "dri": "x"})
    with pytest.raises(ValueError, match="cache.dir"):
        CacheSettings.from_dict({"mode": "final"})


def test_cached_and_uncached_outputs_match(toy_root, tmp_path):
    torch.manual_seed(0)
    dm = make_dm(toy_root, tmp_path, size=SIZE)
    build_cache(dm, ("test",), progress=False)
    dm.setup("test")
    cached = dm.datasets["test"]
    plain = A2DDataModule(str(toy_root), toy={}, **SIZE, index_cache=False)
    plain.setup("test")
    uncached = plain.datasets["test"]
    i3d = dm._encoder  # the very encoder that filled the cache (random init, seed 0)
    precomputed = VIDEO_ENCODERS.build(dm.feature_spec)
    precomputed.i3d.Mixed_4f.load_state_dict(i3d.i3d.Mixed_4f.state_dict())
    precomputed.eval()
    i3d.eval()
    for i in (0, len(cached) - 1):
        a, b = cached[i], uncached[i]
        assert a["sample_id"] == b["sample_id"] and "frames" not in a
        assert torch.equal(a["mask"], b["mask"]) and torch.equal(a["words"], b["words"])
        assert a["features"].dtype == torch.float16
        with torch.no_grad():
            direct = i3d(frames=normalise_frames(b["frames"][None]))  # (1, 832, G, G)
            via_i3d = i3d(features=a["features"][None])
            via_precomputed = precomputed(features=a["features"][None])
        assert direct.shape == (1, 832, 4, 4)
        torch.testing.assert_close(via_i3d, direct, atol=2e-3, rtol=2e-2)
        torch.testing.assert_close(via_precomputed, direct, atol=2e-3, rtol=2e-2)


def test_interrupted_build_resumes(toy_root, tmp_path):
    dm = make_dm(toy_root, tmp_path)
    seen = []

    def interrupt(key):
        seen.append(key)
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_cache(dm, progress=False, on_entry=interrupt)
    cache = dm.feature_cache()
    assert not list(cache.root.rglob("*.tmp")), "temporary files left behind"
    report = build_cache(dm, progress=False)
    assert report.present == 5
    assert report.computed == report.total - 5 > 0
    assert build_cache(dm, progress=False).computed == 0


def test_corrupt_entries_are_rebuilt(toy_root, tmp_path):
    dm = make_dm(toy_root, tmp_path)
    build_cache(dm, progress=False)
    cache = dm.feature_cache()
    files = sorted(cache.root.rglob("*.npy"))
    good = np.load(files[0])
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])  # truncated
    np.save(files[1], np.zeros((3, 3), np.float16))  # wrong shape
    np.save(files[2], np.zeros(cache.entry_shape, np.float32))  # wrong dtype
    files[3].write_bytes(b"not a numpy file")
    report = build_cache(dm, progress=False)
    assert (report.invalid, report.computed) == (4, 4)
    np.testing.assert_array_equal(np.load(files[0]), good)
    for f in files[:4]:
        assert cache.is_valid(f.stem)


def test_missing_entry_read_is_a_clear_error(tmp_path):
    cache = FeatureCache(tmp_path, {"x": 1}, (2, 3), "float16")
    cache.prepare()
    with pytest.raises(RuntimeError, match="missing"):
        cache.read(entry_key("vid", 3))
    cache.write(entry_key("vid", 3), np.ones((2, 3)))
    assert cache.read(entry_key("vid", 3)).dtype == np.float16
    with pytest.raises(ValueError, match="not finite"):
        cache.write(entry_key("vid", 4), np.full((2, 3), 1e6))  # overflows float16


def test_changed_setting_gets_a_new_cache_and_is_reported(toy_root, tmp_path, caplog):
    first = make_dm(toy_root, tmp_path)
    build_cache(first, progress=False)
    changed = A2DDataModule(
        str(toy_root), toy={}, num_frames=8, frame_size=32, index_cache=False,
        cache={"mode": "mixed_4e", "dir": str(tmp_path)},
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        report = build_cache(changed, progress=False)
    assert changed.feature_cache().root != first.feature_cache().root
    assert report.present == 0 and report.computed == report.total
    assert any("num_frames: 4 -> 8" in r.getMessage() for r in caplog.records)


def test_the_fingerprint_names_the_datamodules_cache_identity(toy_root, tmp_path):
    generated = make_dm(toy_root, tmp_path)
    real = A2DDataModule(  # the same files, read as the real dataset
        str(toy_root), word_vectors=str(toy_root / "word2vec.bin"), batch_size=4, **SMALL,
        index_cache=False, cache={"mode": "mixed_4e", "dir": str(tmp_path)},
    )  # fmt: skip
    assert (generated.cache_identity, real.cache_identity) == ("a2d_synthetic", "a2d")
    caches = []
    for dm in (generated, real):
        torch.manual_seed(0)  # the same random-init frozen encoder for both
        caches.append(dm.feature_cache())
    a, b = (cache.fingerprint for cache in caches)
    assert (a["dataset"], b["dataset"]) == ("a2d_synthetic", "a2d")
    assert {key for key in a if a[key] != b[key]} == {"dataset"}
    assert caches[0].root != caches[1].root


def test_a_frame_stride_is_in_the_fingerprint_only_when_it_is_not_1(toy_root, tmp_path):
    kw = dict(word_vectors=str(toy_root / "word2vec.bin"), **SMALL, index_cache=False,
              cache={"mode": "mixed_4e", "dir": str(tmp_path)})  # fmt: skip
    prints = []
    for stride in (1, 2):
        torch.manual_seed(0)
        prints.append(A2DDataModule(str(toy_root), frame_stride=stride, **kw).feature_cache())
    a, b = (cache.fingerprint for cache in prints)
    assert "frame_stride" not in a and b["frame_stride"] == 2  # caches of stride 1 stay valid
    assert {key for key in b if a.get(key) != b[key]} == {"frame_stride"}
    assert prints[0].root != prints[1].root


def test_tampered_fingerprint_is_refused(toy_root, tmp_path):
    dm = make_dm(toy_root, tmp_path)
    build_cache(dm, progress=False)
    path = dm.feature_cache().root / "fingerprint.json"
    stored = json.loads(path.read_text())
    stored["fingerprint"]["frame_size"] = 128
    path.write_text(json.dumps(stored))
    with pytest.raises(CacheMismatchError, match="frame_size"):
        dm.setup("test")


def test_setup_refuses_an_incomplete_cache(toy_root, tmp_path):
    dm = make_dm(toy_root, tmp_path)
    dm.feature_cache().prepare()
    with pytest.raises(RuntimeError, match="lacks"):
        dm.setup("test")


def test_augmented_views_are_deterministic_and_flip_the_target(toy_root, tmp_path):
    frames = torch.rand(3, 2, 8, 8) * 2 - 1
    key = entry_key("v", 1)
    assert torch.equal(augment_view(frames, key, 0), frames)
    torch.testing.assert_close(augment_view(frames, key, 1), augment_view(frames, key, 1))
    assert not torch.allclose(augment_view(frames, key, 1), augment_view(frames, key, 3))
    dm = A2DDataModule(
        str(toy_root), toy={}, augment=True, **SMALL, index_cache=False,
        cache={"mode": "mixed_4e", "dir": str(tmp_path), "augmented_views": 2},
    )  # fmt: skip
    build_cache(dm, ("train",), progress=False)
    train = dm._dataset("train")
    assert train.views == (1, 2)
    plain = train.dataset[0]
    torch.manual_seed(0)
    flips = []
    for _ in range(16):
        sample = train[0]
        flipped = not torch.equal(sample["mask"], plain["mask"])
        if flipped:
            assert torch.equal(sample["mask"], plain["mask"].flip(-1))
            assert torch.equal(sample["orig_mask"], plain["orig_mask"].flip(-1))
        flips.append(flipped)
    assert any(flips) and not all(flips)


def test_uint8_and_float32_readers_fill_identical_caches(toy_root, tmp_path):
    # One batch mixes augmented views (normalised in the worker) with plain uint8 clips.
    caches = {}
    for dtype in ("uint8", "float32"):
        torch.manual_seed(0)  # the same random-init frozen encoder for both
        dm = A2DDataModule(
            str(toy_root), toy={}, augment=True, **SMALL, frames_dtype=dtype, index_cache=False,
            cache={"mode": "mixed_4e", "dir": str(tmp_path / dtype), "augmented_views": 1,
                   "batch_size": 64},
        )  # fmt: skip
        build_cache(dm, ("train", "test"), progress=False)
        caches[dtype] = dm.feature_cache()
    entries = sorted(p.name for p in caches["uint8"].root.glob("*/*.npy"))
    assert entries and entries == sorted(p.name for p in caches["float32"].root.glob("*/*.npy"))
    for name in entries:
        key = name.removesuffix(".npy")
        assert np.array_equal(caches["uint8"].read(key), caches["float32"].read(key)), key
