"""collate_samples: stacks what has one shape, keeps the rest as lists, ids as int64."""

from __future__ import annotations

import pytest
import torch

from acga_lightning.data.collate import collate_samples
from acga_lightning.data.io.resize import compute_geometry


def fake_sample(i: int, h: int, w: int) -> dict:
    return {
        "frames": torch.full((3, 4, 16, 16), float(i)),
        "words": torch.zeros(20, 300),
        "word_mask": torch.arange(20) < 3 + i,
        "mask": torch.zeros(16, 16),
        "orig_mask": torch.zeros(h, w, dtype=torch.bool),
        "orig_size": (h, w),
        "resize": compute_geometry((h, w), 16),
        "query": f"query {i}",
        "video_id": f"v{i}",
        "frame_idx": 10 + i,
        "instance_id": i,
        "sample_id": 2**62 + i,
    }


def test_collate_stacks_lists_and_ints() -> None:
    batch = collate_samples([fake_sample(0, 20, 30), fake_sample(1, 24, 32)])
    assert batch["frames"].shape == (2, 3, 4, 16, 16) and batch["frames"][1].eq(1).all()
    assert batch["words"].shape == (2, 20, 300) and batch["mask"].shape == (2, 16, 16)
    assert batch["word_mask"].dtype == torch.bool and batch["word_mask"].sum(1).tolist() == [3, 4]
    assert [m.shape for m in batch["orig_mask"]] == [(20, 30), (24, 32)]
    assert batch["orig_size"] == [(20, 30), (24, 32)]
    assert batch["query"] == ["query 0", "query 1"] and batch["video_id"] == ["v0", "v1"]
    for key in ("frame_idx", "instance_id", "sample_id"):
        assert batch[key].dtype == torch.int64
    assert batch["sample_id"].tolist() == [2**62, 2**62 + 1]
    assert tuple(batch["resize"][1]["orig_size"]) == (24, 32)


def test_collate_keeps_features_and_unknown_keys() -> None:
    samples = [fake_sample(i, 8, 8) for i in range(3)]
    for s in samples:
        s["features"] = torch.zeros(528, 4, 2, 2, dtype=torch.float16)
        s["extra"] = {"a": 1}
        del s["frames"]
    batch = collate_samples(samples)
    assert batch["features"].shape == (3, 528, 4, 2, 2) and batch["features"].dtype == torch.float16
    assert batch["extra"] == [{"a": 1}] * 3 and "frames" not in batch


def test_collate_rejects_empty_and_mixed_keys() -> None:
    with pytest.raises(ValueError, match="samples"):
        collate_samples([])
    a, b = fake_sample(0, 8, 8), fake_sample(1, 8, 8)
    del b["words"]
    with pytest.raises(ValueError, match=r"samples\[1\]"):
        collate_samples([a, b])
