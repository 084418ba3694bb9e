"""ACGA's preprocessed h5 release: lazy per-process handles, one row per read, the contract."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from acga_lightning.data.collate import collate_samples
from acga_lightning.data.datasets.acga_h5 import ACGAPreprocessed
from acga_lightning.data.io.resize import restore_mask
from acga_lightning.data.synthetic.acga_h5 import DEFAULT_SIZES, write_acga_release

C = 8  # the real release has 528 Mixed_4e channels; the reader does not care, tests stay tiny
SIZES = DEFAULT_SIZES


def write_release(root: Path, singleton: bool, text_by_split: bool) -> dict[str, dict]:
    """Write the release's five files for both splits; return what was written."""
    return write_acga_release(
        root, SIZES, channels=C, singleton=singleton, text_by_split=text_by_split
    )


@pytest.fixture(scope="module", params=[True, False], ids=["singleton_axis", "plain"])
def release(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    root = tmp_path_factory.mktemp("acga")
    return root, write_release(root, singleton=request.param, text_by_split=True)


@pytest.mark.parametrize("split", ["train", "test"])
def test_items_follow_the_contract(release: tuple, split: str) -> None:
    root, written = release
    ds = ACGAPreprocessed(root, split)
    assert len(ds) == len(SIZES[split])
    for i in range(len(ds)):
        s = ds[i]
        assert "frames" not in s
        assert s["features"].shape == (C, 4, 32, 32) and s["features"].dtype == torch.float16
        np.testing.assert_array_equal(
            s["features"].numpy(), written[split]["features"][i].reshape(C, 4, 32, 32)
        )
        np.testing.assert_array_equal(s["words"].numpy(), written[split]["words"][i])
        assert s["word_mask"].tolist() == [True] * (3 + i) + [False] * (17 - i)
        np.testing.assert_array_equal(s["mask"].numpy(), written[split]["large"][i])
        assert s["mask"].dtype == torch.float32
        assert s["orig_size"] == SIZES[split][i]
        assert s["orig_mask"].dtype == torch.bool and s["orig_mask"].shape == SIZES[split][i]
        expected = restore_mask(torch.from_numpy(written[split]["large"][i] > 0), s["orig_size"])
        assert torch.equal(s["orig_mask"], expected)
        assert s["video_id"] == f"vid{i}_{split}" and s["frame_idx"] == -1


def test_orig_mask_is_the_512_mask_mapped_back(release: tuple) -> None:
    root, _ = release
    s = ACGAPreprocessed(root, "train")[1]  # 320 x 570: cover crops 125 columns on each side
    # Stored rows 120:300 of 512 -> original rows 75:187.5; columns 50:400 of the crop.
    rows = np.nonzero(s["orig_mask"].numpy().any(1))[0]
    cols = np.nonzero(s["orig_mask"].numpy().any(0))[0]
    assert abs(rows[0] - 75) <= 1 and abs(rows[-1] + 1 - 187.5) <= 1
    assert abs(cols[0] - (125 + 50 / 1.6)) <= 1 and abs(cols[-1] + 1 - (125 + 400 / 1.6)) <= 1


def test_handles_open_lazily_per_process(release: tuple) -> None:
    root, _ = release
    ds = ACGAPreprocessed(root, "test")
    assert ds._files is None  # nothing held open after construction
    ds[0]
    assert ds._files is not None
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._files is None and torch.equal(clone[1]["mask"], ds[1]["mask"])
    ds._pid = -1  # as if this process were a forked worker: the handles are reopened
    ds[0]
    assert ds._pid > 0
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_samples)
    batches = list(loader)
    assert batches[0]["features"].shape == (2, C, 4, 32, 32)
    assert sum(len(b["orig_mask"]) for b in batches) == 2
    ds.close()


def test_reads_one_row_not_the_whole_dataset(
    release: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = release
    ds = ACGAPreprocessed(root, "train")
    keys = []
    original = h5py.Dataset.__getitem__

    def spy(self: h5py.Dataset, key: object) -> np.ndarray:
        keys.append(key)
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    ds[2]
    assert keys and all(k == 2 for k in keys)


def test_text_file_without_split_keys(tmp_path: Path) -> None:
    written = write_release(tmp_path, singleton=False, text_by_split=False)
    s = ACGAPreprocessed(tmp_path, "test")[0]
    np.testing.assert_array_equal(s["words"].numpy(), written["test"]["words"][0])


def test_csv_header_and_count_mismatch(tmp_path: Path) -> None:
    write_release(tmp_path, singleton=False, text_by_split=True)
    text = (tmp_path / "test.txt").read_text()
    (tmp_path / "test.txt").write_text("video,height,width,frame\n" + text)
    assert len(ACGAPreprocessed(tmp_path, "test")) == 2
    (tmp_path / "test.txt").write_text(text + "vid9,10,10,1\n")
    with pytest.raises(ValueError, match="sample counts differ"):
        ACGAPreprocessed(tmp_path, "test")
    (tmp_path / "test.txt").write_text(text + "vid9,ten,10,1\n")
    with pytest.raises(ValueError, match="test.txt:3"):
        ACGAPreprocessed(tmp_path, "test")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        ACGAPreprocessed(tmp_path, "val")
    with pytest.raises(ValueError, match="video_rgb_iccv.h5 not found"):
        ACGAPreprocessed(tmp_path, "test")
