"""MemoryCachedDataset and window_groups: a shuffled first epoch decodes each frame once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import Subset

from acga_lightning.data.caching.memory import MemoryCachedDataset, window_groups
from acga_lightning.data.datasets import a2d as a2d_module
from acga_lightning.data.datasets.a2d import A2DSentences
from acga_lightning.data.io.video import read_window

KW = {"num_frames": 4, "frame_size": 32, "index_cache": False}


@pytest.fixture(scope="module")
def root(toy_a2d) -> Path:
    return toy_a2d(num_videos=6, seed=4, height=48, num_frames=(12, 16), quirks=False)


def test_window_groups_look_through_subsets(root: Path) -> None:
    reader = A2DSentences(root, "train", **KW)
    inner = Subset(reader, list(range(len(reader)))[::-1])  # reversed
    outer = Subset(inner, list(range(1, len(inner))))  # and the last reader index dropped
    groups = window_groups(outer)
    assert sorted(i for g in groups for i in g) == list(range(len(outer)))
    to_reader = [inner.indices[i] for i in outer.indices]
    for group in groups:
        assert len({reader.window_key(to_reader[i]) for i in group}) == 1
    keys = [reader.window_key(to_reader[g[0]]) for g in groups]
    assert len(keys) == len(set(keys))  # one group per window
    assert window_groups(Subset(list(range(5)), [0, 1])) is None  # no reader with window keys


def test_shuffled_first_epoch_decodes_each_window_once(root: Path, monkeypatch) -> None:
    calls = []

    def counting(path, indices):
        calls.append(path)
        return read_window(path, indices)

    monkeypatch.setattr(a2d_module, "read_window", counting)
    reader = A2DSentences(root, "train", **KW)
    windows = len({reader.window_key(i) for i in range(len(reader))})
    assert windows < len(reader)  # several queries per frame, or the test proves nothing
    order = torch.randperm(len(reader), generator=torch.Generator().manual_seed(0)).tolist()

    ungrouped = MemoryCachedDataset(reader)
    plain = [ungrouped[i] for i in order]
    assert len(calls) > windows  # shuffled, a reader's last window rarely matches
    calls.clear()
    reader = A2DSentences(root, "train", **KW)  # a fresh one: no last window
    grouped = MemoryCachedDataset(reader, window_groups(reader))
    samples = [grouped[i] for i in order]
    assert len(calls) == windows
    for a, b in zip(samples, plain, strict=True):
        assert a["sample_id"] == b["sample_id"] and torch.equal(a["frames"], b["frames"])
        assert torch.equal(a["mask"], b["mask"])
    calls.clear()
    assert [grouped[i]["sample_id"] for i in order] == [s["sample_id"] for s in samples]
    assert calls == []  # later epochs read nothing
