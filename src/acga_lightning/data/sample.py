"""The sample contract: what every dataset reader returns, and the helpers they share.

Every reader (:class:`~acga_lightning.data.A2DSentences`,
:class:`~acga_lightning.data.JHMDBSentences`, :class:`~acga_lightning.data.ACGAPreprocessed`)
returns one dict per sample with these keys; :func:`~acga_lightning.data.collate_samples` stacks
the tensors into a batch (a leading ``B`` axis) and keeps the rest as lists:

- ``frames``: float32 ``(3, T, S, S)`` in [-1, 1], the annotated frame at index ``T // 2``; or,
  with ``frames_dtype="uint8"`` (the datamodule's default), the resized uint8 pixels, which the
  model normalises with :func:`~acga_lightning.data.resize.normalise_frames`. Absent when
  ``features`` is given.
- ``features``: float16/32 ``(C, T', G, G)``, cached encoder output for the clip, instead of
  ``frames``.
- ``words``: float32 ``(N, 300)`` word vectors, zero rows for padding; ``word_mask``: bool
  ``(N,)``, True for real words.
- ``mask``: float32 ``(S, S)`` in {0, 1}, the target at the model's resolution.
- ``orig_mask``: bool ``(h, w)``, the target at the frame's original size, used for scoring;
  ``orig_size``: ``(h, w)``; ``resize``: the
  :class:`~acga_lightning.data.resize.ResizeGeometry` that maps ``S x S`` back to ``(h, w)``
  (these three stay lists when batched).
- Provenance: ``query`` (str, normalised), ``video_id`` (str), ``frame_idx`` (int, 1-based: the
  annotated frame), ``instance_id`` (int: the actor the query names) and ``sample_id`` (int,
  stable across runs and processes).

The clip of annotated frame ``f`` (1-based) is frames ``f-1-T//2 ... f-1+(T+1)//2-1`` (0-based),
clamped to the video's ends (:func:`~acga_lightning.data.video.clip_indices`); only frame
``T // 2`` is supervised. This module holds the helpers the readers share: query normalisation,
stable sample ids, frame normalisation, skip counting and the JSON index cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from gensim.models import KeyedVectors

from acga_lightning.data.resize import (
    FRAME_DTYPES,
    compute_geometry,
    frames_to_model_input,
    normalise_frames,
    resize_mask,
)
from acga_lightning.data.words import encode_query

log = logging.getLogger(__name__)

# 2: the readers check every field (frame range, mask values, duplicates): older indexes may
# hold samples those checks reject.
INDEX_VERSION = 2


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
) -> dict[str, Any]:
    """Assemble one sample of the contract from a decoded window and its original-size mask.

    ``frames``: uint8 ``(T, h, w, 3)``; ``orig_mask``: bool ``(h, w)``. ``transform`` (training
    augmentation) runs at the original size, so ``orig_mask`` is the augmented target at the
    original size (equal to the stored mask when there is no transform). ``words``/``word_mask``
    are only present when ``word_vectors`` is given. ``frames_dtype``: ``"float32"`` gives the
    contract's ``frames`` in [-1, 1]; ``"uint8"`` keeps the resized pixels (0-255), which
    :class:`~acga_lightning.ACGASegmenter` normalises on its device (the fast data path).
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


def default_cache_dir() -> Path:
    """Where index caches go unless a dataset gets ``index_cache``.

    ``$ACGA_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/acga_lightning``, else
    ``~/.cache/acga_lightning``. Never inside the dataset root, which may be read-only.
    """
    if os.environ.get("ACGA_CACHE_DIR"):
        return Path(os.environ["ACGA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "acga_lightning"


def fingerprint_files(paths: Iterable[Path], root: Path) -> str:
    """A sha1 over the files' relative paths, sizes and mtimes: changes when the dataset changes."""
    h = hashlib.sha1(str(INDEX_VERSION).encode())
    for p in sorted(paths):
        try:
            st = p.stat()
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"{p.relative_to(root).as_posix()}={stamp}\n".encode())
    return h.hexdigest()


def resolve_index_cache(
    index_cache: str | Path | bool | None, root: Path, name: str
) -> Path | None:
    """The JSON file a dataset's index is cached in, or None when caching is off.

    ``index_cache``: None or True -> :func:`default_cache_dir`; False -> no cache; a path ending in
    ``.json`` -> that file; any other path -> a directory to put the file in. The file name
    includes a hash of the resolved root, so two datasets never share a cache file.
    """
    if index_cache is False:
        return None
    root_key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
    filename = f"{name}_{root_key}.json"
    if index_cache is None or index_cache is True:
        return default_cache_dir() / filename
    path = Path(index_cache)
    return path if path.suffix == ".json" else path / filename


def load_cached_index(path: Path | None, fingerprint: str) -> dict[str, Any] | None:
    """The cached index at ``path`` if it exists and was built from the same files, else None."""
    if path is None or not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as f:
            cached = json.load(f)
    except (OSError, ValueError) as err:
        log.warning("index cache %s is unreadable (%s); rebuilding", path, err)
        return None
    if cached.get("version") != INDEX_VERSION or cached.get("fingerprint") != fingerprint:
        log.info("index cache %s is stale; rebuilding", path)
        return None
    return cached


def save_cached_index(path: Path | None, fingerprint: str, payload: dict[str, Any]) -> None:
    """Write the index atomically; an unwritable cache directory is logged, not fatal."""
    if path is None:
        return
    data = {"version": INDEX_VERSION, "fingerprint": fingerprint, **payload}
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError as err:
        if tmp is not None:  # a full disk must not leave a partial temp file behind
            Path(tmp).unlink(missing_ok=True)
        log.warning(
            "could not write index cache %s (%s); the index is rebuilt next time", path, err
        )
