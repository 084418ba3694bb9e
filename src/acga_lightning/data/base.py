"""ReferringDataModule: what every dataset's LightningDataModule shares.

A dataset is three modules: a reader in :mod:`acga_lightning.data.datasets`, a small subclass of
:class:`ReferringDataModule` in :mod:`acga_lightning.data.datamodules` and a generator in
:mod:`acga_lightning.data.synthetic`. The subclass names its format (the key of ``acga toy-data
--format`` and ``acga check-data --format``), which parts of the dataset serve which stage, how to
build its reader and how to write generated data; everything else is here, once:

- **Splits.** ``train`` reads :attr:`~ReferringDataModule.train_part` (None: evaluation only);
  ``val`` and ``test`` read :attr:`~ReferringDataModule.eval_part`; ``predict`` reads
  :attr:`~ReferringDataModule.predict_part`. ``val_fraction > 0`` holds a share of the training
  videos out for validation instead (by video, deterministic for a given ``seed``, see
  :func:`split_videos`), and a dataset whose evaluation part has no public masks
  (:attr:`~ReferringDataModule.test_on_held_out`) tests on that held-out part too.
- **Generated data.** With ``toy`` settings, a ``root`` without the dataset gets generated data
  in the real layout (written to a temporary sibling and renamed into place, so an interrupted
  run never leaves a half-written dataset; a non-empty ``root`` without the dataset is refused,
  never overwritten), and ``word_vectors`` defaults to the generated ``<root>/word2vec.bin``.
- **Feature cache** (``cache``, see :mod:`acga_lightning.data.caching.features` for the format
  and the augmentation trade-off): with ``mode: mixed_4e`` or ``final`` samples carry
  ``features`` instead of ``frames`` and the model must use
  :attr:`~ReferringDataModule.feature_spec` as its ``video_encoder``. ``prepare_data`` (local rank 0
  only) builds what is missing;
  ``setup`` (every rank) only checks that the cache is complete, so ranks never write the same
  entry. For a cluster whose nodes share one filesystem set the Trainer's
  ``prepare_data_per_node=False``.
- **Memory cache** (``memory_cache``): every training and validation sample kept after its
  first read (:class:`~acga_lightning.data.caching.memory.MemoryCachedDataset`).
- **Loaders.** Training order is a function of (seed, epoch) alone and resumes mid-epoch
  (:class:`~acga_lightning.data.samplers.ResumableDataLoader`); under DDP, val / test / predict
  loaders get an :class:`~acga_lightning.data.samplers.UnpaddedDistributedSampler` (Lightning
  keeps it, since it is a ``DistributedSampler``), so each sample is scored by exactly one rank;
  the metrics also dedupe by ``sample_id``.

Samples are :class:`~acga_lightning.data.contract.Sample` dicts, batches
:class:`~acga_lightning.data.contract.Batch`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from acga_lightning.data.caching.build import (
    BuildReport,
    CachedFeatureDataset,
    build_entries,
    build_frozen_encoder,
    cache_for,
    cache_jobs,
    missing_entries,
)
from acga_lightning.data.caching.features import CacheSettings, FeatureCache
from acga_lightning.data.caching.memory import MemoryCachedDataset, window_groups
from acga_lightning.data.collate import collate_samples
from acga_lightning.data.sample import check_frames_dtype
from acga_lightning.data.samplers import ResumableDataLoader, UnpaddedDistributedSampler
from acga_lightning.data.transforms import AugmentSettings

log = logging.getLogger(__name__)

STAGES = ("train", "val", "test", "predict")

#: Every concrete datamodule by its format name (filled as the classes are defined; importing
#: :mod:`acga_lightning.data.datamodules` defines the built-in ones).
DATAMODULES: dict[str, type[ReferringDataModule]] = {}


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


def as_settings(cls: type, value: Any, name: str) -> Any:
    """``value`` as a ``cls`` dataclass: given as one, or as a mapping of its fields (unknown
    keys rejected, naming the known ones), or None."""
    if value is None or isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise TypeError(f"{name}: expected {cls.__name__} or a mapping, got {value!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"{name}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    return cls(**value)


class ReferringDataModule(pl.LightningDataModule):
    """The shared base of the datamodules (see the module docstring); not used directly.

    Args:
        root: the dataset's root folder (with ``toy``: where the data is generated).
        word_vectors: a word2vec file; None means ``<root>/word2vec.bin`` with ``toy``, and is
            an error otherwise.
        batch_size, num_workers: of every loader.
        num_frames, frame_size: clip length ``T`` and square input size ``S``.
        max_words: padded sentence length ``N``.
        augment: random flip / affine / colour jitter on training clips.
        augment_options: the jitter's settings
            (:class:`~acga_lightning.data.transforms.AugmentSettings`).
        resize_policy: ``cover`` (official) or ``letterbox``.
        frames_dtype: ``uint8`` (default): clips travel from the workers to the model as
            pixels 0-255, a quarter of the bytes to pin and copy, and the model normalises them
            to [-1, 1] on its device; ``float32``: normalised in the workers.
        val_fraction: share of training videos held out for validation; 0 validates on
            :attr:`eval_part`.
        cache: the feature cache (:class:`~acga_lightning.data.caching.features.CacheSettings`).
        toy: settings of the generator that writes data into ``root`` when it is absent (the
            subclass's :attr:`synthetic` dataclass); None: ``root`` must hold the dataset.
        strict: readers raise on bad samples instead of skipping and counting them.
        pin_memory: None means True when CUDA is available.
        persistent_workers: keep loader workers between epochs (only with num_workers > 0).
        memory_cache: keep each training and validation sample in memory after it is first
            decoded: every epoch after the first reads no video, and the first decodes each
            annotated frame once for all its queries. For small data (the demo keeps 15,000
            samples of 4 x 64 x 64 and peaks at 3 GB resident); it cannot be combined with
            ``augment`` and makes the loader workers persistent. With ``num_workers: 0`` the
            cache is in the training process and no sample is passed between processes.
        seed: for the validation carve-out and the training shuffle.
        frame_stride: each clip is every ``frame_stride``-th frame around the annotated one
            (1, the default: ``num_frames`` consecutive frames). A stride lets a few frames see
            more of a motion; the model records it (``ACGASegmenter(frame_stride=...)``,
            linked by ``acga fit``) so that ``acga segment`` reads the same clips.
    """

    #: The format's name: ``acga toy-data/check-data --format`` and the registry key.
    format: ClassVar[str] = ""
    #: The dataset's name as papers write it.
    title: ClassVar[str] = ""
    #: The part training reads; None: the dataset is evaluation only.
    train_part: ClassVar[str | None] = "train"
    #: The part validation (without ``val_fraction``) and testing read.
    eval_part: ClassVar[str] = "test"
    #: The part ``predict`` reads (None: :attr:`eval_part`).
    predict_part: ClassVar[str | None] = None
    #: Test on the held-out training videos (for a dataset whose evaluation part has no masks).
    test_on_held_out: ClassVar[bool] = False
    #: The generator's settings dataclass (the type of ``toy``); None: no generator.
    synthetic: ClassVar[type | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass may set its class attributes as class keywords:
        ``class A2DDataModule(ReferringDataModule, format="a2d", title=..., synthetic=...)``."""
        for key in ("format", "title", "train_part", "eval_part", "predict_part",
                    "test_on_held_out", "synthetic"):  # fmt: skip
            if key in kwargs:
                setattr(cls, key, kwargs.pop(key))
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("format")
        if name:
            other = DATAMODULES.get(name)
            if other is not None and other.__qualname__ != cls.__qualname__:
                raise ValueError(f"format {name!r}: defined by {other} and {cls}")
            DATAMODULES[name] = cls

    def __init__(
        self,
        root: str,
        word_vectors: str | None = None,
        batch_size: int = 4,
        num_workers: int = 0,
        num_frames: int = 16,
        frame_size: int = 512,
        max_words: int = 20,
        augment: bool = False,
        augment_options: AugmentSettings | None = None,
        resize_policy: Literal["cover", "letterbox"] = "cover",
        frames_dtype: Literal["uint8", "float32"] = "uint8",
        val_fraction: float = 0.0,
        cache: CacheSettings | None = None,
        toy: Any = None,
        strict: bool = False,
        pin_memory: bool | None = None,
        persistent_workers: bool = False,
        memory_cache: bool = False,
        seed: int = 0,
        frame_stride: int = 1,
    ) -> None:
        super().__init__()
        if not type(self).format:
            raise TypeError(f"{type(self).__name__}: a datamodule subclass must set `format`")
        if batch_size < 1 or num_workers < 0:
            raise ValueError(
                f"batch_size >= 1 and num_workers >= 0, got {batch_size}, {num_workers}"
            )
        if frame_stride < 1:
            raise ValueError(f"frame_stride: expected >= 1, got {frame_stride}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction: expected a share in [0, 1), got {val_fraction}")
        if val_fraction > 0 and self.train_part is None:
            raise ValueError(f"val_fraction: {self.format} has no training part to hold out from")
        if self.test_on_held_out and val_fraction <= 0:
            raise ValueError(
                f"val_fraction: {self.format} tests on held-out training videos (its "
                f"{self.eval_part!r} part has no public masks); give a share > 0"
            )
        if resize_policy not in ("cover", "letterbox"):
            raise ValueError(f"resize_policy: expected cover or letterbox, got {resize_policy!r}")
        check_frames_dtype(frames_dtype)
        if memory_cache and augment:
            raise ValueError(
                "memory_cache: cached samples would repeat one augmentation forever; "
                "turn augment off or memory_cache off"
            )
        if toy is not None and self.synthetic is None:
            raise ValueError(f"toy: {self.format} has no generator")
        self.cache_settings = CacheSettings.from_dict(cache)
        self.augment_settings = as_settings(AugmentSettings, augment_options, "augment_options")
        self.toy_settings = (
            None if self.synthetic is None else as_settings(self.synthetic, toy, "toy")
        )
        self.save_hyperparameters()
        for key in ("cache", "augment_options", "toy"):  # plain dicts in checkpoints and logs
            value = self.hparams.get(key)
            if dataclasses.is_dataclass(value):
                self.hparams[key] = dataclasses.asdict(value)
                self._hparams_initial[key] = dataclasses.asdict(value)
        self.root = Path(root)
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

    # ----------------------------------------------------------------- what a subclass gives
    def make_reader(self, part: str, transform: Any = None) -> Dataset:
        """The reader of ``part`` with this datamodule's settings (``transform``: augmentation)."""
        raise NotImplementedError

    @classmethod
    def data_present(cls, root: Path) -> bool:
        """Whether ``root`` holds the dataset (generated data is written only when it does not)."""
        raise NotImplementedError

    @classmethod
    def write_synthetic(cls, root: Path, settings: Any, progress: bool = False) -> Path:
        """Write generated data of ``settings`` (a :attr:`synthetic`) into ``root``."""
        raise NotImplementedError(f"{cls.format} has no generator")

    @classmethod
    def check(cls, root: Path, report: Any, progress: bool = True) -> None:
        """Add what is wrong with the dataset at ``root`` to ``report`` (``acga check-data``)."""
        raise NotImplementedError(f"{cls.format} has no checker")

    def reader_settings(self) -> dict[str, Any]:
        """The settings every frame reader takes from the datamodule
        (:class:`~acga_lightning.data.datasets.base.ClipReader`'s arguments)."""
        hp = self.hparams
        return {
            "num_frames": hp.num_frames, "frame_size": hp.frame_size,
            "word_vectors": self.word_vectors(), "max_words": hp.max_words,
            "resize": hp.resize_policy, "strict": hp.strict, "frames_dtype": hp.frames_dtype,
            "frame_stride": hp.frame_stride,
        }  # fmt: skip

    def sample_videos(self, reader: Any) -> list[str]:
        """Each sample's video, for the held-out carve-out (readers keep ``records``)."""
        return [r["video_id"] for r in reader.records]

    # ------------------------------------------------------------------------------ spec
    @property
    def feature_spec(self) -> dict[str, Any] | None:
        """The ``video_encoder`` spec the model must use with these samples (None: any frames
        encoder, e.g. ``i3d``)."""
        from acga_lightning.registry import VIDEO_ENCODERS

        mode = self.cache_settings.mode
        if mode == "mixed_4e":
            weights = self.cache_settings.encoder.get("weights")
            return {"name": "precomputed", "endpoint": "mixed_4e", "weights": weights}
        if mode == "final":
            channels = VIDEO_ENCODERS.get(self.cache_settings.encoder["name"]).out_channels
            return {"name": "precomputed", "endpoint": "final", "in_channels": int(channels)}
        return None

    @property
    def cache_identity(self) -> str:
        """The dataset's name in the feature cache's fingerprint."""
        return self.format if self.toy_settings is None else f"{self.format}_synthetic"

    # ---------------------------------------------------------------------------- prepare
    def prepare_data(self) -> None:
        """One process per node: generate data if asked and absent, build missing cache entries."""
        self.generate_toy_data()
        if self.cache_settings.enabled:
            build_cache(self)

    def generate_toy_data(self) -> None:
        """With ``toy`` settings, write generated data into ``root`` unless it is there.

        Written to a temporary sibling folder and renamed into place, so an interrupted run
        never leaves a half-written dataset that looks complete; a non-empty ``root`` without
        the dataset is refused, never overwritten. ``prepare_data`` calls it.
        """
        if self.toy_settings is None or self.data_present(self.root):
            return
        if self.root.exists() and any(self.root.iterdir()):
            raise ValueError(
                f"root: {self.root} exists but holds no {self.title or self.format} data; "
                "not overwriting it"
            )
        tmp = self.root.with_name(f".{self.root.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        log.info("generating %s data in %s with %s", self.format, self.root, self.toy_settings)
        try:
            self.write_synthetic(tmp, self.toy_settings, progress=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # a full disk leaves no half-written copy
            raise
        if self.root.exists():
            self.root.rmdir()
        os.replace(tmp, self.root)  # atomic: a half-written dataset is never seen as complete

    # ------------------------------------------------------------------------------ setup
    def setup(self, stage: str | None = None) -> None:
        """Build the readers every rank needs for ``stage`` (fit / validate / test / predict)."""
        if self.toy_settings is not None and not self.data_present(self.root):
            if dist.is_available() and dist.is_initialized():
                raise RuntimeError(f"{self.root}: generated data missing; prepare_data did not run")
            self.generate_toy_data()
        wanted = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": ("predict",),
            None: STAGES,
        }[stage]
        if self.train_part is None:
            wanted = tuple(s for s in wanted if s != "train")
        built = []
        for split in wanted:
            if split not in self.datasets:
                self.datasets[split] = self._dataset(split)
                built.append(split)
        for split in built:
            self._check_not_empty(split)
            log.info(
                "%s %s: %d samples; skipped %s; words %s", self.format, split,
                len(self.datasets[split]), self.skipped.get(split, {}),
                self.word_stats.get(split, "n/a"),
            )  # fmt: skip

    def _check_not_empty(self, split: str) -> None:
        """An empty split is an error saying why, not a run that trains or scores nothing."""
        if len(self.datasets[split]) > 0:
            return
        from acga_lightning.errors import DataError

        fraction = self.hparams.val_fraction
        skipped = {k: v for k, v in self.skipped.get(split, {}).items() if v}
        reason = f"every sample was skipped ({skipped})" if skipped else "the data lists none"
        if self._held_out(split) or (fraction > 0 and split == "train"):
            other = self.datasets.get("val" if split == "train" else "train")
            if split == "train" and other is not None and len(other) > 0:
                reason = (
                    f"data.val_fraction {fraction} holds out every training video for "
                    "validation; lower it"
                )
            elif split != "train":
                reason = (
                    f"data.val_fraction {fraction} holds out no video of a training "
                    f"split with no samples ({reason})"
                )
        raise DataError(f"{self.format} {split} split of {self.root} is empty: {reason}")

    def _held_out(self, split: str) -> bool:
        """Whether ``split`` reads the held-out training videos."""
        if self.hparams.val_fraction <= 0:
            return False
        return split == "val" or (split == "test" and self.test_on_held_out)

    def part_of(self, split: str) -> str:
        """The part of the dataset ``split`` (train / val / test / predict) reads."""
        if split == "train" or self._held_out(split):
            if self.train_part is None:
                raise ValueError(f"{self.format} is evaluation only: it has no training split")
            return self.train_part
        if split == "predict":
            return self.predict_part or self.eval_part
        return self.eval_part

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
                from acga_lightning.data.caching.features import CacheIncompleteError

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
        hp = self.hparams
        part = self.part_of(split)
        transform = None
        if split == "train" and hp.augment and not self.cache_settings.enabled and not for_cache:
            transform = (self.augment_settings or AugmentSettings()).build()
        reader = self.make_reader(part, transform)
        indices = None
        if hp.val_fraction > 0 and split in ("train", "val", "test") and part == self.train_part:
            videos = self.sample_videos(reader)
            held_out = split_videos(videos, hp.val_fraction, hp.seed)
            keep = held_out.__contains__ if split != "train" else (lambda v: v not in held_out)
            indices = [i for i, v in enumerate(videos) if keep(v)]
        return reader, indices, (self._train_views() if split == "train" else (0,))

    def _train_views(self) -> tuple[int, ...]:
        k = self.cache_settings.augmented_views
        return tuple(range(1, k + 1)) if self.hparams.augment and k > 0 else (0,)

    def word_vectors(self) -> Any:
        """The word vectors, loaded once and shared by every reader."""
        if self._word_vectors is None:
            from acga_lightning.data.io.words import load_word_vectors

            path = self.hparams.word_vectors
            if path is None:
                if self.toy_settings is None:
                    raise ValueError(f"word_vectors: a word2vec file is required for {self.format}")
                path = self.root / "word2vec.bin"
            self._word_vectors = load_word_vectors(path)
        return self._word_vectors

    def feature_cache(self) -> FeatureCache:
        """The :class:`FeatureCache` of these settings (builds the frozen encoder once)."""
        if self._cache is None:
            hp = self.hparams
            encoder = build_frozen_encoder(self.cache_settings, hp.num_frames, hp.frame_size)
            self._cache = cache_for(
                self.cache_settings, encoder, dataset=self.cache_identity,
                num_frames=hp.num_frames, frame_size=hp.frame_size,
                resize_policy=hp.resize_policy, frame_stride=hp.frame_stride,
            )  # fmt: skip
            self._encoder = encoder
        return self._cache

    def cache_splits(self) -> tuple[str, ...]:
        """The splits whose clips the feature cache holds: every one this dataset serves
        (entries are shared where two read the same clips, as A2D's test and predict do)."""
        return STAGES if self.train_part is not None else STAGES[1:]

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
        if self.train_part is None:
            raise ValueError(f"{self.format} is evaluation only: it has no training split")
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")


def build_cache(
    datamodule: ReferringDataModule,
    splits: tuple[str, ...] | None = None,
    *,
    progress: bool = True,
    on_entry: Any = None,
) -> BuildReport:
    """Compute the missing or invalid cache entries of every split ``datamodule`` serves.

    ``splits`` default: :meth:`ReferringDataModule.cache_splits`. Returns the combined
    :class:`~acga_lightning.data.caching.build.BuildReport`. Used by ``prepare_data`` and
    ``acga cache-features``.
    """
    dm, settings = datamodule, datamodule.cache_settings
    if not settings.enabled:
        raise ValueError("cache.mode is 'none': there is nothing to build")
    cache = dm.feature_cache()
    jobs, seen = [], set()
    for split in splits or dm.cache_splits():
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
