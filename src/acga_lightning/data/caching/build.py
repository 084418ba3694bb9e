"""Building the feature cache (:mod:`.features`) and reading datasets through it.

:func:`build_frozen_encoder` builds the encoder of ``cache.encoder``; :func:`cache_for` derives the
fingerprint and entry shape from it; :func:`build_entries` computes the missing or invalid entries
(batched, no grad, on CUDA when available, optional bf16 autocast) with a progress bar;
:class:`CachedFeatureDataset` wraps a reader so that its samples carry ``features`` read from the
cache instead of decoded ``frames``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from acga_lightning.data.caching.features import (
    CACHE_FORMAT_VERSION,
    VIEW_AUGMENT,
    CacheSettings,
    FeatureCache,
    augment_view,
    entry_key,
    view_is_flipped,
)
from acga_lightning.data.io.resize import normalise_frames
from acga_lightning.data.io.words import encode_query
from acga_lightning.data.transforms import swap_left_right

log = logging.getLogger(__name__)


def build_frozen_encoder(settings: CacheSettings, num_frames: int, frame_size: int) -> nn.Module:
    """The frozen encoder of ``settings.encoder``, in eval mode with gradients off."""
    from acga_lightning.registry import VIDEO_ENCODERS

    encoder = VIDEO_ENCODERS.build(settings.encoder, num_frames=num_frames, frame_size=frame_size)
    encoder.eval().requires_grad_(False)
    if settings.mode == "mixed_4e" and not hasattr(encoder, "extract_frozen"):
        raise ValueError(
            f"cache.encoder: mode 'mixed_4e' needs an encoder with extract_frozen (i3d), got "
            f"{settings.encoder['name']!r}; use mode 'final' for other encoders"
        )
    return encoder


def _encoder_signature(encoder: nn.Module, mode: str) -> dict[str, Any]:
    from acga_lightning.models.video_encoders import state_sha256

    if mode == "mixed_4e":
        signature = dict(encoder.cache_signature())
        signature.pop("weights", None)  # the path; the file's sha256 stays
        return signature
    # "final": every parameter of the encoder shapes the output.
    return {
        "class": type(encoder).__name__,
        "registry_name": getattr(encoder, "registry_name", None),
        "state_sha256": state_sha256(encoder),
        "out_channels": int(encoder.out_channels),
    }


def entry_shape_of(encoder: nn.Module, mode: str, frame_size: int) -> tuple[int, ...]:
    """``(528, T', G, G)`` for mixed_4e, ``(C_v, G, G)`` for final."""
    if mode == "mixed_4e":
        return tuple(int(s) for s in encoder.cache_signature()["feature_shape"])
    g = frame_size // int(encoder.stride)
    return (int(encoder.out_channels), g, g)


def cache_for(
    settings: CacheSettings,
    encoder: nn.Module,
    *,
    dataset: str,
    num_frames: int,
    frame_size: int,
    resize_policy: str,
    frame_stride: int = 1,
) -> FeatureCache:
    """The :class:`FeatureCache` for these settings (its fingerprint names every input)."""
    fingerprint = {
        "cache_format_version": CACHE_FORMAT_VERSION,
        "mode": settings.mode,
        "dataset": dataset,
        "encoder": _encoder_signature(encoder, settings.mode),
        "num_frames": num_frames,
        "frame_size": frame_size,
        "resize_policy": resize_policy,
        "dtype": settings.dtype,
        "compute_dtype": "bfloat16" if settings.bf16 else "float32",
        "view_augment": VIEW_AUGMENT,
    }
    if frame_stride != 1:  # consecutive clips keep the fingerprint (and the caches) they had
        fingerprint["frame_stride"] = frame_stride
    shape = entry_shape_of(encoder, settings.mode, frame_size)
    return FeatureCache(settings.dir, fingerprint, shape, settings.dtype)


@dataclass(frozen=True)
class CacheJob:
    """One entry to compute: read sample ``index`` of ``dataset`` and store view ``view``."""

    key: str
    dataset: Dataset
    index: int
    view: int


def cache_jobs(
    dataset: Any, views: Sequence[int], indices: Sequence[int] | None = None
) -> list[CacheJob]:
    """One job per distinct (video, annotated frame) of ``dataset`` (a reader with ``records``)
    and per view, over ``indices`` (default all); every query on that frame shares the entry."""
    jobs, seen = [], set()
    for index in range(len(dataset.records)) if indices is None else indices:
        r = dataset.records[index]
        for view in views:
            key = entry_key(r["video_id"], r["frame_idx"], view)
            if key not in seen:
                seen.add(key)
                jobs.append(CacheJob(key, dataset, index, view))
    return jobs


class _Clips(Dataset):
    """The clips of a list of jobs (decoded by the reader, then augmented for views > 0)."""

    def __init__(self, jobs: Sequence[CacheJob]) -> None:
        self.jobs = list(jobs)

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor]:
        job = self.jobs[i]
        frames = job.dataset[job.index]["frames"]  # (3, T, S, S), uint8 or float in [-1, 1]
        if frames.dtype == torch.uint8:  # one place: views and the encoder work in [-1, 1]
            frames = normalise_frames(frames)
        return i, augment_view(frames, job.key, job.view)


def _collate_clips(batch: list[tuple[int, torch.Tensor]]) -> tuple[list[int], torch.Tensor]:
    return [i for i, _ in batch], torch.stack([f for _, f in batch])  # (B, 3, T, S, S)


@dataclass
class BuildReport:
    """What :func:`build_entries` did: entries needed, already valid, rebuilt, computed now."""

    total: int = 0
    present: int = 0
    invalid: int = 0
    computed: int = 0

    def __str__(self) -> str:
        return (
            f"{self.total} entries: {self.present} present, {self.computed} computed "
            f"({self.invalid} of them replaced invalid entries)"
        )


def _extract(encoder: nn.Module, frames: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "mixed_4e":
        return encoder.extract_frozen(frames)  # (B, 528, T', G, G)
    return encoder(frames=frames)  # (B, C_v, G, G)


def build_entries(
    cache: FeatureCache,
    encoder: nn.Module,
    jobs: Sequence[CacheJob],
    *,
    mode: str,
    batch_size: int = 4,
    num_workers: int = 0,
    device: str | torch.device | None = None,
    bf16: bool = False,
    progress: bool = True,
    verify_values: bool = False,
    on_entry: Callable[[str], None] | None = None,
) -> BuildReport:
    """Compute and store every job whose entry is missing or invalid; skip the valid ones.

    ``on_entry(key)`` runs after each entry is stored (a hook for progress or for tests that
    interrupt a build). Returns a :class:`BuildReport`.
    """
    cache.prepare()
    report = BuildReport(total=len(jobs))
    todo = []
    for job in jobs:
        if cache.is_valid(job.key, verify_values=verify_values):
            report.present += 1
            continue
        if cache.path(job.key).exists():
            report.invalid += 1
            log.warning("feature cache entry %s is invalid; rebuilding it", cache.path(job.key))
            cache.remove(job.key)
        todo.append(job)
    if not todo:
        log.info("feature cache %s: %s", cache.root, report)
        return report
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    encoder = encoder.to(device).eval()
    loader = DataLoader(
        _Clips(todo),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_collate_clips,
        pin_memory=device.type == "cuda",
    )
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    )
    bar = tqdm(total=len(todo), desc="caching features", unit="clip", disable=not progress)
    try:
        for indices, frames in loader:
            with torch.no_grad(), autocast:
                features = _extract(encoder, frames.to(device, non_blocking=True), mode)
            features = features.float().cpu()
            for i, f in zip(indices, features, strict=True):
                cache.write(todo[i].key, f)
                report.computed += 1
                if on_entry is not None:
                    on_entry(todo[i].key)
            bar.update(len(indices))
    finally:
        bar.close()
    log.info("feature cache %s: %s", cache.root, report)
    return report


def missing_entries(cache: FeatureCache, jobs: Sequence[CacheJob]) -> list[str]:
    """Keys of the jobs whose entry file does not exist (a cheap check: no load)."""
    return [job.key for job in jobs if not cache.path(job.key).is_file()]


def sample_without_frames(dataset: Any, index: int) -> dict[str, Any]:
    """Sample ``index`` of a reader with everything but ``frames``.

    The A2D and J-HMDB readers assemble it themselves without decoding video
    (``sample_without_frames``); other readers are read whole and ``frames`` dropped.
    """
    if hasattr(dataset, "sample_without_frames"):
        return dataset.sample_without_frames(index)
    sample = dict(dataset[index])
    sample.pop("frames", None)
    return sample


class CachedFeatureDataset(Dataset):
    """A reader's samples with ``features`` from the cache in place of decoded ``frames``.

    ``views``: the cached views to draw from (``(0,)`` for evaluation, ``1..K`` for training with
    ``K`` augmented views: one is drawn at random on each read, with torch's RNG, which the
    DataLoader seeds per worker and per epoch). A flipped view flips ``mask`` and ``orig_mask``
    and swaps ``left``/``right`` in the query (words re-encoded).
    """

    def __init__(self, dataset: Any, cache: FeatureCache, views: Sequence[int] = (0,)) -> None:
        if not views:
            raise ValueError("views: expected at least one view")
        self.dataset, self.cache, self.views = dataset, cache, tuple(int(v) for v in views)
        self.records = dataset.records

    def __len__(self) -> int:
        return len(self.dataset)

    def jobs(self) -> list[CacheJob]:
        return cache_jobs(self.dataset, self.views)

    def __getitem__(self, index: int) -> dict[str, Any]:
        r = self.records[index]
        view = self.views[int(torch.randint(len(self.views), ())) if len(self.views) > 1 else 0]
        sample = sample_without_frames(self.dataset, index)
        features = self.cache.read(entry_key(r["video_id"], r["frame_idx"], view))
        sample["features"] = torch.from_numpy(features)  # (C, T', G, G) or (C, G, G)
        if view_is_flipped(view):
            sample["mask"] = sample["mask"].flip(-1)
            sample["orig_mask"] = sample["orig_mask"].flip(-1)
            query = swap_left_right(sample["query"])
            if query != sample["query"] and "words" in sample:
                words, word_mask, _ = encode_query(
                    query, self.dataset.word_vectors, self.dataset.max_words
                )
                sample["words"], sample["word_mask"] = (
                    torch.from_numpy(words), torch.from_numpy(word_mask))  # fmt: skip
            sample["query"] = query
        return sample
