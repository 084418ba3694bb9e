"""Bad inputs not already covered next to their reader: each is a named error or a counted skip.

Covered elsewhere (not repeated here): corrupt mp4 (tests/data/test_a2d.py::
test_corrupt_video_is_skipped_or_raised), truncated mp4 (tests/data/test_video.py::
test_truncated_file_is_a_clear_error), video shorter than the window (test_video.py::
test_video_shorter_than_window_repeats_edge_frames), missing h5 (test_a2d.py::
test_missing_h5_is_skipped_or_raised), more masks than instances and duplicate instance ids
(test_a2d.py::test_quirks_are_handled_and_counted), mask size != video size (test_a2d.py::
test_mask_size_mismatch_and_bad_h5), grayscale / 4-channel frames (test_video.py::
test_gray_and_rgba_become_rgb), truncated word vectors (tests/data/test_words.py::
test_truncated_file_is_a_clear_error), I3D checkpoint with wrong shapes (tests/models/
test_i3d.py::test_wrong_shape_missing_and_unexpected_keys_are_named), unknown registry names
(tests/test_registry.py::test_unknown_name_lists_known_names), corrupt cache entries
(tests/data/test_cache.py::test_corrupt_entries_are_rebuilt).
"""

from __future__ import annotations

import csv
import errno
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from acga_lightning import ACGASegmenter
from acga_lightning.checkpointing import (
    AtomicCheckpointIO,
    AtomicCheckpoints,
    atomic_torch_save,
    install_atomic_checkpoint_io,
    load_checkpoint_file,
    remove_stale_temp_files,
)
from acga_lightning.data.caching.features import FeatureCache
from acga_lightning.data.caching.index import save_cached_index
from acga_lightning.data.datamodules import A2DDataModule
from acga_lightning.data.datasets.a2d import (
    ANNOTATION,
    MISSED,
    VIDEOSET,
    A2DSampleError,
    A2DSentences,
)
from acga_lightning.data.io.words import encode_query, load_word_vectors

KW = {"num_frames": 4, "frame_size": 32, "index_cache": False}
KW_DM = {"num_frames": 4, "frame_size": 32, "index_cache": False}
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0  # chmod does not stop root writing


@pytest.fixture(scope="module")
def root(toy_a2d) -> Path:
    return toy_a2d(num_videos=3, seed=2, height=64, num_frames=(12, 16))


@pytest.fixture
def copy(root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(root, tmp_path / "data"))


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp") or ".tmp-" in p.name]


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


# ------------------------------------------------------------------------------ dataset files
def test_missing_root_and_missing_videoset_name_the_file(root: Path, tmp_path: Path) -> None:
    words = str(root / "word2vec.bin")
    for missing in (tmp_path / "nowhere", tmp_path):  # no root; a root without videoset.csv
        dm = A2DDataModule(str(missing), word_vectors=words, **KW_DM)
        with pytest.raises(ValueError, match=r"videoset\.csv not found"):
            dm.setup("test")


def test_malformed_videoset_row_names_file_and_line(copy: Path) -> None:
    path = copy / VIDEOSET
    lines = path.read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0]  # 8 columns on line 2
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"videoset\.csv:2: expected 9 columns"):
        A2DSentences(copy, "train", strict=True, **KW)
    assert A2DSentences(copy, "train", **KW).skipped["bad_videoset_row"] == 1


def set_queries(root: Path, queries: list[str]) -> list[dict]:
    """Replace the queries of the first usable rows (not excluded, not the copy row)."""
    path = root / ANNOTATION
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    missed = set((root / MISSED).read_text().split())
    usable = [r for r in rows if r["instance_id"].isdigit() and r["video_id"] not in missed]
    for row, q in zip(usable, queries, strict=False):
        row["query"] = q
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["video_id", "instance_id", "query"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def test_empty_and_symbol_only_queries_are_skipped_or_raised(copy: Path) -> None:
    before = len(A2DSentences(copy, "train", **KW)) + len(A2DSentences(copy, "test", **KW))
    set_queries(copy, ["   ", "!!! 🐶 ..."])
    data = [A2DSentences(copy, s, **KW) for s in ("train", "test")]
    assert sum(d.skipped.get("empty_query", 0) for d in data) == 2
    assert sum(len(d) for d in data) < before
    with pytest.raises(A2DSampleError, match=r"empty_query: .*a2d_annotation\.txt"):
        for split in ("train", "test"):
            A2DSentences(copy, split, strict=True, **KW)


def test_out_of_vocabulary_long_and_non_ascii_queries(root: Path) -> None:
    kv = load_word_vectors(root / "word2vec.bin")
    words, mask, stats = encode_query("zzqx blorp vlimf", kv)  # all out of vocabulary
    assert mask.sum() == 3 and not words.any() and stats.oov == 3  # kept, zero vectors, counted
    long = " ".join(["man"] * 50)
    words, mask, stats = encode_query(long, kv, max_words=20)
    assert mask.all() and stats.truncated == 1 and stats.words == 20
    words, mask, stats = encode_query("the café naïve dog’s man", kv)
    assert stats.oov_words.keys() >= {"café", "naïve"}  # whole words, not "caf" / "na"+"ve"
    assert mask.sum() == 6  # the café naïve dog 's man
    with pytest.raises(ValueError, match="query: no words"):
        encode_query("🐶 !!", kv)


# ------------------------------------------------------------------------- full / read-only disk
def test_full_disk_cache_write_raises_and_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    cache = FeatureCache(tmp_path, {"test": 1}, (2, 2, 2))
    cache.prepare()
    monkeypatch.setattr(np, "save", enospc)
    with pytest.raises(OSError, match="No space left"):
        cache.write("vid_00001_v0", np.ones((2, 2, 2), np.float32))
    assert not cache.path("vid_00001_v0").exists() and no_temp_files(tmp_path)


def test_full_disk_index_cache_is_logged_and_leaves_no_file(tmp_path: Path, monkeypatch, caplog):
    monkeypatch.setattr("json.dump", enospc)
    with caplog.at_level(logging.WARNING):
        save_cached_index(tmp_path / "index.json", "fp", {"records": []})
    assert "could not write index cache" in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_full_disk_checkpoint_keeps_the_previous_one(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1}, path)
    monkeypatch.setattr(torch, "save", enospc)
    with pytest.raises(OSError, match=r"could not write checkpoint .*last\.ckpt.*No space"):
        atomic_torch_save({"step": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint_file(path) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_full_disk_toy_generation_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    import acga_lightning.data.synthetic.a2d as toy

    def write_then_fail(root, *args, **kwargs):
        Path(root).mkdir(parents=True)
        (Path(root) / "Release").mkdir()
        enospc()

    monkeypatch.setattr(toy, "write_a2d", write_then_fail)
    dm = A2DDataModule(str(tmp_path / "toy"), toy={}, **KW_DM)
    with pytest.raises(OSError, match="No space left"):
        dm.prepare_data()
    assert list(tmp_path.iterdir()) == []


def test_read_only_cache_dir_is_a_named_error(tmp_path: Path, monkeypatch) -> None:
    cache = FeatureCache(tmp_path / "cache", {"test": 1}, (2, 2, 2))
    cache.prepare()
    if AS_ROOT:  # root ignores directory permissions: make the temp file creation fail instead

        def refuse(*args, dir=None, **kwargs):  # noqa: A002
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))

        monkeypatch.setattr("tempfile.mkstemp", refuse)
    else:
        cache.root.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match=str(cache.root)):
            cache.write("vid_00001_v0", np.ones((2, 2, 2), np.float32))
    finally:
        cache.root.chmod(0o755)
    assert no_temp_files(tmp_path)


# -------------------------------------------------------------------------------- checkpoints
def test_truncated_checkpoint_is_a_named_error(tmp_path: Path) -> None:
    path = atomic_torch_save({"w": torch.ones(1000)}, tmp_path / "last.ckpt")
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"last\.ckpt: truncated or corrupt"):
        load_checkpoint_file(path)
    with pytest.raises(ValueError, match="not found"):
        load_checkpoint_file(tmp_path / "none.ckpt")
    garbage = tmp_path / "notes.ckpt"  # not a checkpoint at all: torch.load fails unpickling
    garbage.write_text("hello, not a checkpoint")
    with pytest.raises(ValueError, match=r"notes\.ckpt: truncated or corrupt"):
        load_checkpoint_file(garbage)


def test_stale_temp_files_of_a_killed_write_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".last.ckpt.abc123.tmp").write_bytes(b"half")
    keep = tmp_path / "last.ckpt"
    keep.write_bytes(b"x")
    assert [p.name for p in remove_stale_temp_files(tmp_path)] == [".last.ckpt.abc123.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_atomic_checkpoint_io_is_the_segmenters_default() -> None:
    features = {"name": "precomputed", "endpoint": "final", "in_channels": 8}
    model = ACGASegmenter(video_encoder=features, num_frames=4, frame_size=32)
    assert any(isinstance(c, AtomicCheckpoints) for c in model.configure_callbacks())
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, accelerator="cpu")
    assert install_atomic_checkpoint_io(trainer)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)

    class Custom(AtomicCheckpointIO.__mro__[1]):  # a user's own TorchCheckpointIO subclass
        pass

    trainer = pl.Trainer(logger=False, enable_progress_bar=False, plugins=[Custom()])
    assert not install_atomic_checkpoint_io(trainer)
    assert type(trainer.strategy.checkpoint_io) is Custom


# ----------------------------------------------------------------------------------- configs
def test_unknown_plugin_name_lists_the_known_ones() -> None:
    with pytest.raises((KeyError, ValueError), match="acga"):  # the known names are listed
        ACGASegmenter(attention="acgaa", num_frames=4, frame_size=32)
    with pytest.raises((KeyError, ValueError), match="i3d"):
        cache = {"mode": "final", "dir": "x", "encoder": {"name": "i3dd"}}
        assert A2DDataModule("unused", toy={}, cache=cache).feature_spec
