"""Generated data in the layout of the official ACGA preprocessed release (for tests and demos).

:func:`write_acga_release` writes the five files :class:`~acga_lightning.data.datasets.acga_h5.
ACGAPreprocessed` reads (``video_rgb_iccv.h5``, ``txt.h5``, ``mask.h5``, ``train.txt``,
``test.txt``), with random features and word vectors and a rectangle mask per sample, seeded.
Sizes are parameters: the release's are 528 channels, 4 x 32 x 32 features and 512 masks; tests
use a smaller grid and mask so that a model runs on them in a moment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

DEFAULT_SIZES: dict[str, list[tuple[int, int]]] = {
    "train": [(320, 428), (320, 570), (240, 320)],
    "test": [(320, 480), (64, 64)],
}


def write_acga_release(
    root: str | Path,
    sizes: Mapping[str, Sequence[tuple[int, int]]] | None = None,
    channels: int = 528,
    frames: int = 4,
    grid: int = 32,
    mask_size: int = 512,
    singleton: bool = False,
    text_by_split: bool = True,
    seed: int = 0,
) -> dict[str, dict[str, np.ndarray]]:
    """Write a release for each split in ``sizes`` (original (H, W) per sample); return the arrays.

    Sample ``i`` has ``3 + i`` words (at most 20) and a rectangle of 1s in its ``mask_size``
    mask (uint8). ``singleton`` adds the axis some release files have after N;
    ``text_by_split=False`` writes ``txt.h5`` with a single ``txt`` dataset (test split only).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    sizes = DEFAULT_SIZES if sizes is None else sizes
    if mask_size % 16:
        raise ValueError(f"mask_size: expected a multiple of 16, got {mask_size}")
    rng = np.random.default_rng(seed)
    written: dict[str, dict[str, np.ndarray]] = {}
    with (
        h5py.File(root / "video_rgb_iccv.h5", "w") as fv,
        h5py.File(root / "txt.h5", "w") as ft,
        h5py.File(root / "mask.h5", "w") as fm,
    ):
        for split, split_sizes in sizes.items():
            n = len(split_sizes)
            shape = (n, channels, frames, grid, grid)
            feats = rng.standard_normal(shape).astype(np.float16)
            feats = feats[:, None] if singleton else feats
            words = np.zeros((n, 20, 300), np.float32)
            large = np.zeros((n, mask_size, mask_size), np.uint8)
            s = mask_size / 512
            for i in range(n):
                count = min(3 + i, 20)
                words[i, :count] = rng.standard_normal((count, 300))
                top = int((100 + 20 * (i % 8)) * s)
                large[i, top : int(300 * s), int(50 * s) : int(400 * s)] = 1
            fv[split] = feats
            if text_by_split:
                ft[split] = words
            elif split == "test":
                ft["txt"] = words
            for name, size in (("large", mask_size), ("medium", mask_size // 4),
                               ("small", mask_size // 16)):  # fmt: skip
                step = mask_size // size
                fm[f"{split}/{name}"] = large[:, ::step, ::step]
            written[split] = {"features": feats, "words": words, "large": large}
            rows = [f"vid{i}_{split},{h},{w},{i + 1}" for i, (h, w) in enumerate(split_sizes)]
            (root / f"{split}.txt").write_text("\n".join(rows) + "\n")
    return written
