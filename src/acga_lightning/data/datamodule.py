"""ReferringVideoDataModule: A2D / J-HMDB Sentences, ACGA's preprocessed release or generated data.

Splits. ``a2d`` and ``toy`` (generated A2D-format data, written into ``root`` on first use by
:func:`~acga_lightning.data.toy.write_a2d`): train on the train split; validate on the test
split, as the paper does, unless ``val_fraction > 0`` carves a validation subset out of the
train split by video (deterministic for a given ``seed``); test and predict on the test split.
``jhmdb``: evaluation only (val, test and predict all read J-HMDB; asking for training raises).
``acga_h5``: the official release's cached Mixed_4e features (train / test).

Feature cache (``cache``, see :mod:`acga_lightning.data.cache` for the format and the
augmentation trade-off): with ``mode: mixed_4e`` or ``final`` samples carry ``features``
instead of ``frames``, and the model must use :attr:`ReferringVideoDataModule.feature_spec` as
its ``video_encoder``. ``prepare_data`` (local rank 0 only) builds what is missing; ``setup``
(every rank) only checks that the cache is complete, so ranks never write the same entry. For a
cluster whose nodes share one filesystem set the Trainer's ``prepare_data_per_node=False``.

Distributed evaluation: val / test / predict loaders get an :class:`UnpaddedDistributedSampler`
under DDP (Lightning keeps it, since it is a ``DistributedSampler``), so each sample is scored
by exactly one rank; the metrics also dedupe by ``sample_id``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from acga_lightning.data.cache import CacheSettings, FeatureCache
from acga_lightning.data.cache_build import (
    BuildReport,
    CachedFeatureDataset,
    build_entries,
    build_frozen_encoder,
    cache_for,
    cache_jobs,
    missing_entries,
)
from acga_lightning.data.collate import collate_samples
from acga_lightning.data.memory_cache import MemoryCachedDataset, window_groups
from acga_lightning.data.sample import check_frames_dtype
from acga_lightning.data.samplers import ResumableDataLoader, UnpaddedDistributedSampler

log = logging.getLogger(__name__)

DatasetName = Literal["a2d", "jhmdb", "acga_h5", "toy"]
STAGES = ("train", "val", "test", "predict")


def reseed_augmentation(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: give each worker's ``ClipAugment`` its own random stream.

    Workers are forked copies, so without this every worker would draw the same augmentations.
    ``torch.initial_seed()`` differs per worker and per epoch (and follows ``seed_everything``).
    """
    info = torch.utils.data.get_worker_info()
    data = info.dataset if info is not None else None
    while isinstance(data, Subset):
        data = data.dataset
    transform = getattr(data, "transform", None)
    if transform is None or not hasattr(transform, "rng"):
        return
    seed = torch.initial_seed() % 2**32
    transform.rng = np.random.default_rng(seed)
    if hasattr(transform, "pipeline") and hasattr(transform.pipeline, "set_random_seed"):
        transform.pipeline.set_random_seed(seed)


def split_videos(video_ids: list[str], fraction: float, seed: int) -> set[str]:
    """The videos held out for validation: the ``round(fraction * n)`` ones of lowest
    ``sha1(seed/video_id)`` (deterministic, independent of order, stable as videos are added)."""
    unique = sorted(set(video_ids))
    count = round(fraction * len(unique))
    if fraction > 0 and count == 0 and unique:
        count = 1
    ranked = sorted(unique, key=lambda v: hashlib.sha1(f"{seed}/{v}".encode()).hexdigest())
    return set(ranked[:count])


class ReferringVideoDataModule(pl.LightningDataModule):
    """Loaders of referring video segmentation samples for ``acga fit/test``.

    Samples follow the contract of :mod:`acga_lightning.data.sample`.

    Args:
        dataset: ``a2d``, ``jhmdb``, ``acga_h5`` or ``toy`` (see the module docstring).
        root: the dataset's root folder (for ``toy``: where the data is generated).
        word_vectors: a word2vec file; None means ``<root>/word2vec.bin`` (written by ``toy``).
        batch_size, num_workers: of every loader.
        num_frames, frame_size: clip length ``T`` and square input size ``S``.
        max_words: padded sentence length.
        augment: random flip / affine / colour jitter (:class:`ClipAugment`) on training clips.
        augment_options: keyword arguments of :class:`ClipAugment`.
        resize_policy: ``cover`` (official) or ``letterbox``.
        frames_dtype: ``uint8`` (default): clips travel from the workers to the model as
            pixels 0-255, a quarter of the bytes to pin and copy, and the model normalises them
            to [-1, 1] on its device; ``float32``: normalised in the workers (the sample
            contract's float frames, for code that reads the datasets directly).
        val_fraction: share of training videos held out for validation (a2d/toy); 0 validates
            on the test split.
        cache: the feature cache, :class:`~acga_lightning.data.cache.CacheSettings` as a dict
            (``mode``, ``dir``, ``dtype``, ``augmented_views``, ``encoder``, ...).
        toy: options of :func:`~acga_lightning.data.toy.write_a2d` (num_videos, seed, height).
        dataset_options: extra reader arguments (J-HMDB: frames_per_video, sampling,
            metadata_path; A2D: index_cache).
        strict: readers raise on bad samples instead of skipping and counting them.
        pin_memory: None means True when CUDA is available.
        persistent_workers: keep loader workers between epochs (only with num_workers > 0).
        memory_cache: keep each training and validation sample in memory after it is first
            decoded (:class:`MemoryCachedDataset`): every epoch after the first reads no video,
            and the first decodes each annotated frame once for all its queries. For small
            data (the demo keeps 15,000 samples of 4 x 64 x 64 and peaks at 3 GB resident);
            it cannot be combined with ``augment`` and makes the loader workers persistent.
            With ``num_workers: 0`` the cache is in the training process and no sample is
            passed between processes (the demo's choice: faster steps on a 2-core CPU).
        seed: for the validation carve-out and the training shuffle.
    """

    def __init__(
        self,
        dataset: DatasetName = "toy",
        root: str = "data/toy",
        word_vectors: str | None = None,
        batch_size: int = 4,
        num_workers: int = 0,
        num_frames: int = 16,
        frame_size: int = 512,
        max_words: int = 20,
        augment: bool = False,
        augment_options: dict | None = None,
        resize_policy: Literal["cover", "letterbox"] = "cover",
        frames_dtype: Literal["uint8", "float32"] = "uint8",
        val_fraction: float = 0.0,
        cache: dict | None = None,
        toy: dict | None = None,
        dataset_options: dict | None = None,
        strict: bool = False,
        pin_memory: bool | None = None,
        persistent_workers: bool = False,
        memory_cache: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if dataset not in ("a2d", "jhmdb", "acga_h5", "toy"):
            raise ValueError(f"dataset: expected a2d, jhmdb, acga_h5 or toy, got {dataset!r}")
        if batch_size < 1 or num_workers < 0:
            raise ValueError(
                f"batch_size >= 1 and num_workers >= 0, got {batch_size}, {num_workers}"
            )
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction: expected a share in [0, 1), got {val_fraction}")
        if val_fraction > 0 and dataset not in ("a2d", "toy"):
            raise ValueError(f"val_fraction: only a2d/toy have a train split, not {dataset!r}")
        if resize_policy not in ("cover", "letterbox"):
            raise ValueError(f"resize_policy: expected cover or letterbox, got {resize_policy!r}")
        check_frames_dtype(frames_dtype)
        if memory_cache and augment:
            raise ValueError(
                "memory_cache: cached samples would repeat one augmentation forever; "
                "turn augment off or memory_cache off"
            )
        self.save_hyperparameters()
        self.cache_settings = CacheSettings.from_dict(cache)
        if dataset == "acga_h5" and self.cache_settings.enabled:
            raise ValueError("cache: acga_h5 already holds Mixed_4e features; use cache mode none")
        self.root = Path(root)
        self.toy_options = dict(toy or {})
        self.options = dict(dataset_options or {})
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.datasets: dict[str, Dataset] = {}
        self.word_stats: dict[str, Any] = {}
        self.skipped: dict[str, dict[str, int]] = {}
        self._word_vectors: Any = None
        self._cache: FeatureCache | None = None
        if augment and self.cache_settings.enabled and self.cache_settings.augmented_views == 0:
            log.warning(
                "augment is on but the feature cache holds un-augmented clips "
                "(cache.augmented_views: 0): training sees no visual augmentation at all"
            )

    # ------------------------------------------------------------------------------ spec
    @property
    def feature_spec(self) -> dict[str, Any] | None:
        """The ``video_encoder`` spec the model must use with these samples (None: any frames
        encoder, e.g. ``i3d``)."""
        from acga_lightning.registry import VIDEO_ENCODERS

        mode = "mixed_4e" if self.hparams.dataset == "acga_h5" else self.cache_settings.mode
        if mode == "mixed_4e":
            weights = (
                None
                if self.hparams.dataset == "acga_h5"
                else self.cache_settings.encoder.get("weights")
            )
            return {"name": "precomputed", "endpoint": "mixed_4e", "weights": weights}
        if mode == "final":
            channels = VIDEO_ENCODERS.get(self.cache_settings.encoder["name"]).out_channels
            return {"name": "precomputed", "endpoint": "final", "in_channels": int(channels)}
        return None

    # ---------------------------------------------------------------------------- prepare
    def prepare_data(self) -> None:
        """One process per node: generate toy data if absent, build missing cache entries."""
        if self.hparams.dataset == "toy":
            self.generate_toy_data()
        if self.cache_settings.enabled:
            build_cache(self)

    def generate_toy_data(self) -> None:
        """For ``dataset: toy``, write the generated data into ``root`` unless it is there.

        Written to a temporary sibling folder and renamed into place, so an interrupted run
        never leaves a half-written dataset that looks complete; a non-empty ``root`` without
        A2D data is refused, never overwritten. ``prepare_data`` calls it.
        """
        if (self.root / "Release" / "videoset.csv").is_file():
            return
        from acga_lightning.data.toy import write_a2d

        if self.root.exists() and any(self.root.iterdir()):
            raise ValueError(f"root: {self.root} exists but holds no A2D data; not overwriting it")
        tmp = self.root.with_name(f".{self.root.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        log.info("generating toy A2D data in %s with %s", self.root, self.toy_options)
        try:
            write_a2d(tmp, **{"progress": True, **self.toy_options})
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # a full disk leaves no half-written copy
            raise
        if self.root.exists():
            self.root.rmdir()
        os.replace(tmp, self.root)  # atomic: a half-written dataset is never seen as complete

    # ------------------------------------------------------------------------------ setup
    def setup(self, stage: str | None = None) -> None:
        """Build the readers every rank needs for ``stage`` (fit / validate / test / predict)."""
        if self.hparams.dataset == "toy" and not (self.root / "Release/videoset.csv").is_file():
            if dist.is_available() and dist.is_initialized():
                raise RuntimeError(f"{self.root}: toy data missing; prepare_data did not run")
            self.generate_toy_data()
        wanted = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": ("predict",),
            None: STAGES,
        }[stage]
        if self.hparams.dataset == "jhmdb":
            wanted = tuple(s for s in wanted if s != "train")
        built = []
        for split in wanted:
            if split not in self.datasets:
                self.datasets[split] = self._dataset(split)
                built.append(split)
        for split in built:
            self._check_not_empty(split)
            log.info(
                "%s %s: %d samples; skipped %s; words %s", self.hparams.dataset, split,
                len(self.datasets[split]), self.skipped.get(split, {}),
                self.word_stats.get(split, "n/a"),
            )  # fmt: skip

    def _check_not_empty(self, split: str) -> None:
        """An empty split is an error saying why, not a run that trains or scores nothing."""
        if len(self.datasets[split]) > 0:
            return
        from acga_lightning.errors import DataError

        hp = self.hparams
        skipped = {k: v for k, v in self.skipped.get(split, {}).items() if v}
        reason = f"every sample was skipped ({skipped})" if skipped else "the data lists none"
        if hp.val_fraction > 0 and split in ("train", "val") and hp.dataset in ("a2d", "toy"):
            other = self.datasets.get("val" if split == "train" else "train")
            if split == "train" and other is not None and len(other) > 0:
                reason = (
                    f"data.val_fraction {hp.val_fraction} holds out every training video for "
                    "validation; lower it"
                )
            elif split == "val":
                reason = (
                    f"data.val_fraction {hp.val_fraction} holds out no video of a training "
                    f"split with no samples ({reason})"
                )
        raise DataError(f"{hp.dataset} {split} split of {self.root} is empty: {reason}")

    def _dataset(self, split: str) -> Dataset:
        reader, indices, views = self._reader(split)
        self.skipped[split] = dict(getattr(reader, "skipped", {}))
        if getattr(reader, "word_stats", None) is not None:
            self.word_stats[split] = reader.word_stats
        data: Dataset = reader
        if self.cache_settings.enabled:
            cache = self.feature_cache()
            cache.check_fingerprint()
            missing = missing_entries(cache, cache_jobs(reader, views, indices))
            if missing:
                from acga_lightning.data.cache import CacheIncompleteError

                raise CacheIncompleteError(
                    f"feature cache {cache.root} lacks {len(missing)} entries of the {split} "
                    f"split (first: {missing[0]}); run prepare_data or acga cache-features"
                )
            data = CachedFeatureDataset(reader, cache, views)
        if indices is not None:
            data = Subset(data, indices)
        if self.hparams.memory_cache and split in ("train", "val"):
            data = MemoryCachedDataset(data, window_groups(data))
        return data

    def _reader(self, split: str, for_cache: bool = False) -> tuple[Any, list[int] | None, tuple]:
        """The reader behind ``split``, the indices it keeps (None: all) and its cache views."""
        name, hp = self.hparams.dataset, self.hparams
        if name == "jhmdb":
            if split == "train":
                raise ValueError("dataset jhmdb is evaluation only: it has no training split")
            return self._jhmdb(), None, (0,)
        if name == "acga_h5":
            from acga_lightning.data.acga_h5 import ACGAPreprocessed

            part = "train" if split == "train" else "test"
            return ACGAPreprocessed(self.root, part, resize=hp.resize_policy), None, (0,)
        carve = hp.val_fraction > 0 and split in ("train", "val")
        part = "train" if split == "train" or (split == "val" and carve) else "test"
        train_views = self._train_views()
        transform = None
        if split == "train" and hp.augment and not self.cache_settings.enabled and not for_cache:
            from acga_lightning.data.transforms import ClipAugment

            transform = ClipAugment(**(hp.augment_options or {}))
        reader = self._a2d(part, transform)
        indices = None
        if carve:
            held_out = split_videos(
                [r["video_id"] for r in reader.records], hp.val_fraction, hp.seed
            )
            keep = (lambda v: v in held_out) if split == "val" else (lambda v: v not in held_out)
            indices = [i for i, r in enumerate(reader.records) if keep(r["video_id"])]
        return reader, indices, (train_views if split == "train" else (0,))

    def _train_views(self) -> tuple[int, ...]:
        k = self.cache_settings.augmented_views
        return tuple(range(1, k + 1)) if self.hparams.augment and k > 0 else (0,)

    def _a2d(self, part: str, transform: Any) -> Any:
        from acga_lightning.data.a2d import A2DSentences

        hp = self.hparams
        return A2DSentences(
            self.root, part, num_frames=hp.num_frames, frame_size=hp.frame_size,
            word_vectors=self.word_vectors(), max_words=hp.max_words, transform=transform,
            resize=hp.resize_policy, strict=hp.strict, frames_dtype=hp.frames_dtype,
            **self.options,
        )  # fmt: skip

    def _jhmdb(self) -> Any:
        from acga_lightning.data.jhmdb import JHMDBSentences

        hp = self.hparams
        return JHMDBSentences(
            self.root, num_frames=hp.num_frames, frame_size=hp.frame_size,
            word_vectors=self.word_vectors(), max_words=hp.max_words,
            resize=hp.resize_policy, strict=hp.strict, frames_dtype=hp.frames_dtype,
            **self.options,
        )  # fmt: skip

    def word_vectors(self) -> Any:
        """The word vectors, loaded once and shared by every reader."""
        if self._word_vectors is None:
            from acga_lightning.data.words import load_word_vectors

            path = self.hparams.word_vectors
            if path is None:
                if self.hparams.dataset != "toy":
                    raise ValueError(
                        f"word_vectors: a word2vec file is required for {self.hparams.dataset}"
                    )
                path = self.root / "word2vec.bin"
            self._word_vectors = load_word_vectors(path)
        return self._word_vectors

    def feature_cache(self) -> FeatureCache:
        """The :class:`FeatureCache` of these settings (builds the frozen encoder once)."""
        if self._cache is None:
            hp = self.hparams
            encoder = build_frozen_encoder(self.cache_settings, hp.num_frames, hp.frame_size)
            self._cache = cache_for(
                self.cache_settings, encoder, dataset=hp.dataset, num_frames=hp.num_frames,
                frame_size=hp.frame_size, resize_policy=hp.resize_policy,
            )  # fmt: skip
            self._encoder = encoder
        return self._cache

    # ---------------------------------------------------------------------------- loaders
    def _loader(self, split: str, train: bool = False) -> DataLoader:
        if split not in self.datasets:
            self.setup({"train": "fit", "val": "validate"}.get(split, split))
        data = self.datasets[split]
        kwargs: dict[str, Any] = {}
        distributed = dist.is_available() and dist.is_initialized()
        loader_class = DataLoader
        if train:
            # The order is a function of (seed, epoch) alone, and the loader records how far it
            # got: a run resumed from a mid-epoch checkpoint sees exactly the remaining batches.
            kwargs["sampler"] = DistributedSampler(
                data, num_replicas=dist.get_world_size() if distributed else 1,
                rank=dist.get_rank() if distributed else 0, shuffle=True, seed=self.hparams.seed,
            )  # fmt: skip
            kwargs["generator"] = torch.Generator().manual_seed(self.hparams.seed)
            kwargs["worker_init_fn"] = reseed_augmentation
            loader_class = ResumableDataLoader
        elif distributed and dist.get_world_size() > 1:
            kwargs["sampler"] = UnpaddedDistributedSampler(data)
        workers = self.hparams.num_workers
        return loader_class(
            data, batch_size=self.hparams.batch_size, num_workers=workers,
            collate_fn=collate_samples, pin_memory=self.pin_memory,
            persistent_workers=(self.hparams.persistent_workers or self.hparams.memory_cache)
            and workers > 0, **kwargs,
        )  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        if self.hparams.dataset == "jhmdb":
            raise ValueError("dataset jhmdb is evaluation only: it has no training split")
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")


def build_cache(
    datamodule: ReferringVideoDataModule,
    splits: tuple[str, ...] | None = None,
    *,
    progress: bool = True,
    on_entry: Any = None,
) -> BuildReport:
    """Compute the missing or invalid cache entries of every split ``datamodule`` serves.

    ``splits`` default: train + val + test where the dataset has them (predict = test).
    Returns the combined :class:`BuildReport`. Used by ``prepare_data`` and ``acga cache-features``.
    """
    dm, settings = datamodule, datamodule.cache_settings
    if not settings.enabled:
        raise ValueError("cache.mode is 'none': there is nothing to build")
    if splits is None:
        splits = ("val", "test") if dm.hparams.dataset == "jhmdb" else ("train", "val", "test")
    cache = dm.feature_cache()
    jobs, seen = [], set()
    for split in splits:
        reader, indices, views = dm._reader(split, for_cache=True)
        for job in cache_jobs(reader, views, indices):
            if job.key not in seen:
                seen.add(job.key)
                jobs.append(job)
    return build_entries(
        cache, dm._encoder, jobs, mode=settings.mode, batch_size=settings.batch_size,
        num_workers=settings.num_workers, device=settings.device, bf16=settings.bf16,
        progress=progress, on_entry=on_entry,
    )  # fmt: skip
