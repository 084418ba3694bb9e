"""Batching :class:`~acga_lightning.data.contract.Sample` dicts into a
:class:`~acga_lightning.data.contract.Batch`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

# Stacked into one tensor: same shape in every sample.
STACKED = ("frames", "features", "words", "word_mask", "mask")
# Integers that become int64 tensors.
INTEGERS = ("frame_idx", "instance_id", "sample_id", "expression_id", "action")
# Kept as Python lists: sizes differ between samples, or they are not tensors.
LISTED = ("orig_mask", "orig_size", "query", "video_id", "resize")


def collate_samples(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch a list of samples: stack tensors, int64 provenance ids, lists for the rest.

    ``frames (B, 3, T, S, S)``, ``words (B, N_T, 300)``, ``word_mask (B, N_T)``, ``mask (B, S, S)``
    are stacked; ``orig_mask`` (differently sized), ``orig_size``, ``query``, ``video_id`` and
    ``resize`` (as plain dicts) stay lists. Keys outside the contract are kept as lists. Every
    sample must have the same keys.
    """
    if len(samples) == 0:
        raise ValueError("samples: expected at least one sample")
    keys = list(samples[0])
    for i, s in enumerate(samples):
        if set(s) != set(keys):
            raise ValueError(
                f"samples[{i}]: keys {sorted(s)} differ from samples[0]: {sorted(keys)}"
            )
    batch: dict[str, Any] = {}
    for key in keys:
        values = [s[key] for s in samples]
        if key in STACKED:
            batch[key] = torch.stack(
                [torch.as_tensor(np.asarray(v) if _np(v) else v) for v in values]
            )
        elif key in INTEGERS:
            batch[key] = torch.tensor([int(v) for v in values], dtype=torch.int64)
        elif key == "orig_size":
            batch[key] = [tuple(int(x) for x in v) for v in values]
        elif key == "resize":
            # Plain dicts: Lightning's device transfer refuses frozen dataclasses.
            batch[key] = [
                dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in values
            ]
        else:
            batch[key] = values
    return batch


def _np(value: Any) -> bool:
    return isinstance(value, np.ndarray)
