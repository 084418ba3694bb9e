"""Reader for the official ACGA preprocessed release (cached I3D features, words, masks).

Files under ``root``:

- ``video_rgb_iccv.h5``: keys ``train``/``test``, Mixed_4e features ``(N, 528, 4, 32, 32)``, or
  ``(N, 1, 528, 4, 32, 32)`` (the singleton axis is dropped);
- ``txt.h5``: word vectors ``(N, 20, 300)``, zero rows for padding; under a ``train``/``test`` key
  when the file has one, else its only dataset;
- ``mask.h5``: ``train|test / large|medium|small``; the ``large`` (512 x 512) mask is the target;
- ``train.txt`` / ``test.txt``: CSV, one row per sample; columns 1:3 are the original H, W.
  Column 0 is kept as ``video_id``; the release holds no other provenance, so ``query`` is
  ``""`` and ``frame_idx``/``instance_id`` are -1.

``orig_mask`` is the large mask mapped back to the original size with
:func:`~acga_lightning.data.io.resize.restore_mask` (the release holds no original annotation).
``ACGASegmenter(evaluation="official_release")`` scores as the official code instead, from the
512 ``mask`` (:mod:`acga_lightning.metrics.official`). The h5 files are opened lazily in each
process (after a DataLoader fork the handles are reopened) and only one row is read per sample.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from acga_lightning.data.contract import Sample
from acga_lightning.data.io.resize import POLICIES, compute_geometry, restore_mask
from acga_lightning.data.sample import make_sample_id

FEATURES = "video_rgb_iccv.h5"
TEXT = "txt.h5"
MASKS = "mask.h5"


def _text_dataset(f: h5py.File, split: str, path: Path) -> h5py.Dataset:
    if split in f:
        return f[split]
    datasets = [k for k in f if isinstance(f[k], h5py.Dataset)]
    if len(datasets) != 1:
        raise ValueError(f"{path}: no {split!r} key and not exactly one dataset ({list(f)})")
    return f[datasets[0]]


def _read_sizes(path: Path) -> tuple[list[str], list[tuple[int, int]]]:
    """``video_id`` (column 0) and original ``(H, W)`` (columns 1:3) of each CSV row."""
    ids, sizes = [], []
    with open(path, newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            try:
                h, w = int(float(row[1])), int(float(row[2]))
            except (IndexError, ValueError) as err:
                if line == 1:  # a header row
                    continue
                raise ValueError(f"{path}:{line}: columns 1:3 must be H, W, got {row}") from err
            ids.append(row[0].strip())
            sizes.append((h, w))
    return ids, sizes


class ACGAPreprocessed(Dataset):
    """Samples of the ACGA release: ``features`` instead of ``frames``, plus the contract's rest.

    Args:
        root: folder with ``video_rgb_iccv.h5``, ``txt.h5``, ``mask.h5`` and ``<split>.txt``.
        split: ``"train"`` or ``"test"``.
        resize: the policy used to map the 512 mask back to the original size (``"cover"``,
            the official code's, or ``"letterbox"``).
    """

    def __init__(self, root: str | Path, split: str = "test", resize: str = "cover") -> None:
        self.root = Path(root)
        if split not in ("train", "test"):
            raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
        if resize not in POLICIES:
            raise ValueError(f"resize: expected one of {POLICIES}, got {resize!r}")
        self.split, self.resize = split, resize
        for name in (FEATURES, TEXT, MASKS, f"{split}.txt"):
            if not (self.root / name).is_file():
                raise ValueError(f"root: {self.root / name} not found")
        self.video_ids, self.orig_sizes = _read_sizes(self.root / f"{split}.txt")
        self._files: dict[str, Any] | None = None
        self._pid: int | None = None
        lengths = {name: len(d) for name, d in self._datasets().items()}
        lengths[f"{split}.txt"] = len(self.orig_sizes)
        if len(set(lengths.values())) != 1:
            raise ValueError(f"{self.root}: {split} sample counts differ between files: {lengths}")
        self.mask_size = self._datasets()["mask"].shape[-1]
        self.close()  # reopened lazily in whichever process reads samples

    def _datasets(self) -> dict[str, h5py.Dataset]:
        if self._files is None or self._pid != os.getpid():
            files = {k: h5py.File(self.root / n, "r") for k, n in
                     (("features", FEATURES), ("text", TEXT), ("mask", MASKS))}  # fmt: skip
            self._files = {
                "features": files["features"][self.split],
                "text": _text_dataset(files["text"], self.split, self.root / TEXT),
                "mask": files["mask"][self.split]["large"],
                "_handles": files,
            }
            self._pid = os.getpid()
        return {k: v for k, v in self._files.items() if k != "_handles"}

    def close(self) -> None:
        """Close the h5 handles of this process (they reopen on the next read)."""
        if self._files is not None and self._pid == os.getpid():
            for f in self._files["_handles"].values():
                f.close()
        self._files, self._pid = None, None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_files": None, "_pid": None}

    def __len__(self) -> int:
        return len(self.orig_sizes)

    def __getitem__(self, index: int) -> Sample:
        d = self._datasets()
        features = d["features"][index]  # (528, 4, 32, 32) or (1, 528, 4, 32, 32)
        if features.ndim == 5 and features.shape[0] == 1:
            features = features[0]
        words = np.asarray(d["text"][index], np.float32)  # (N_T, 300)
        stored = np.asarray(d["mask"][index]).squeeze()  # (512, 512)
        target = stored > 0.5 if stored.dtype.kind == "f" else stored != 0
        mask = torch.from_numpy(target.astype(np.float32))  # (S, S)
        orig_size = self.orig_sizes[index]
        return {
            "features": torch.from_numpy(np.ascontiguousarray(features)),
            "words": torch.from_numpy(words),
            "word_mask": torch.from_numpy(np.any(words != 0, axis=-1)),  # (N_T,)
            "mask": mask,
            "orig_mask": restore_mask(mask.bool(), orig_size, self.resize),  # (h, w)
            "orig_size": orig_size,
            "resize": compute_geometry(orig_size, mask.shape[-1], self.resize),
            "query": "",
            "video_id": self.video_ids[index],
            "frame_idx": -1,
            "instance_id": -1,
            "sample_id": make_sample_id("acga", self.split, index, self.video_ids[index]),
        }
