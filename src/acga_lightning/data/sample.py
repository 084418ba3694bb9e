"""Helpers every dataset reader shares to build samples (:mod:`acga_lightning.data.contract`).

Query normalisation, stable sample ids, frame normalisation, the transform protocol and skip
counting. The contract itself (keys, shapes, dtypes) is :mod:`acga_lightning.data.contract`.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from typing import Any, Protocol

import numpy as np
import torch
from gensim.models import KeyedVectors

from acga_lightning.data.io.resize import (
    FRAME_DTYPES,
    compute_geometry,
    frames_to_model_input,
    normalise_frames,
    resize_mask,
)
from acga_lightning.data.io.words import encode_query

log = logging.getLogger(__name__)


def normalise_query(query: str) -> str:
    """The query as every reader uses it: lower-case, single spaces, no leading/trailing space."""
    return " ".join(query.lower().split())


def make_sample_id(*parts: object) -> int:
    """A sample id stable across runs and processes (sha1 of the parts; never ``hash()``).

    The id is the first 53 bits of ``sha1("/".join(parts))``: a non-negative int64 that is also
    exact in float64 (the metrics keep ids in a float64 state for one all-gather under DDP).
    """
    key = "/".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha1(key).digest()[:8], "big") >> 11


def frames_to_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Turn uint8 frames ``(T, H, W, 3)`` into the model's float32 ``(3, T, H, W)`` in [-1, 1]."""
    x = torch.as_tensor(frames)
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"frames: expected uint8 (T, H, W, 3), got {x.dtype} {tuple(x.shape)}")
    return normalise_frames(x.permute(3, 0, 1, 2))  # (3, T, H, W)


def check_frames_dtype(frames_dtype: str) -> str:
    """``frames_dtype`` if it is one the readers can produce, else a ValueError naming it."""
    if frames_dtype not in FRAME_DTYPES:
        raise ValueError(f"frames_dtype: expected one of {FRAME_DTYPES}, got {frames_dtype!r}")
    return frames_dtype


class ClipTransform(Protocol):
    """A training augmentation: ``(frames (T, H, W, 3), mask (H, W), query) -> same``."""

    def __call__(
        self, frames: np.ndarray, mask: np.ndarray, query: str
    ) -> tuple[np.ndarray, np.ndarray, str]: ...


def build_sample(
    frames: np.ndarray,
    orig_mask: np.ndarray,
    query: str,
    *,
    video_id: str,
    frame_idx: int,
    instance_id: int,
    sample_id: int,
    frame_size: int,
    resize: str = "cover",
    transform: ClipTransform | None = None,
    word_vectors: KeyedVectors | None = None,
    max_words: int = 20,
    frames_dtype: str = "float32",
    action: int | None = None,
) -> dict[str, Any]:
    """Assemble one sample of the contract from a decoded window and its original-size mask.

    ``frames``: uint8 ``(T, h, w, 3)``; ``orig_mask``: bool ``(h, w)``. ``transform`` (training
    augmentation) runs at the original size, so ``orig_mask`` is the augmented target at the
    original size (equal to the stored mask when there is no transform). ``words``/``word_mask``
    are only present when ``word_vectors`` is given. ``frames_dtype``: ``"float32"`` gives the
    contract's ``frames`` in [-1, 1]; ``"uint8"`` keeps the resized pixels (0-255), which
    :class:`~acga_lightning.ACGASegmenter` normalises on its device (the fast data path).
    ``action``: the target's actor-action class where the dataset has one (A2D), else None
    (the key is left out).
    """
    check_frames_dtype(frames_dtype)
    if transform is not None:
        frames, orig_mask, query = transform(frames, orig_mask, query)
    h, w = orig_mask.shape
    sample: dict[str, Any] = {
        "frames": frames_to_model_input(frames, frame_size, resize, frames_dtype),  # (3,T,S,S)
        "mask": resize_mask(orig_mask, frame_size, resize),  # (S, S)
        "orig_mask": torch.from_numpy(np.ascontiguousarray(orig_mask, dtype=bool)),  # (h, w)
        "orig_size": (int(h), int(w)),
        "resize": compute_geometry((h, w), frame_size, resize),
    }
    if word_vectors is not None:
        words, word_mask, _ = encode_query(query, word_vectors, max_words)
        sample["words"] = torch.from_numpy(words)  # (N_T, 300)
        sample["word_mask"] = torch.from_numpy(word_mask)  # (N_T,)
    sample.update(
        query=query,
        video_id=video_id,
        frame_idx=int(frame_idx),
        instance_id=int(instance_id),
        sample_id=int(sample_id),
    )
    if action is not None:
        sample["action"] = int(action)
    return sample


class SkipCounter:
    """Counts samples left out (or quirks worked around) by reason, and logs each reason once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.counts: Counter[str] = Counter()
        self.first_details: dict[str, str] = {}

    def add(self, reason: str, detail: str, n: int = 1) -> None:
        """Count ``n`` occurrences of ``reason``; ``detail`` (a file, an id) goes to the log."""
        if reason not in self.counts:
            self.first_details[reason] = detail
            log.warning("%s: %s (first case: %s)", self.name, reason, detail)
        else:
            log.debug("%s: %s: %s", self.name, reason, detail)
        self.counts[reason] += n

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))
