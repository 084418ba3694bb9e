"""Datasets: readers of the released formats, their datamodules, generated data and caches.

- :mod:`.datasets`: one reader per format (A2D-Sentences, J-HMDB-Sentences, Ref-YouTube-VOS,
  Ref-DAVIS17, the official ACGA h5 release), each a ``Dataset`` of
  :class:`~acga_lightning.data.contract.Sample` (:mod:`.contract`), batched by
  :func:`collate_samples`.
- :mod:`.datamodules`: one small LightningDataModule per dataset on the shared
  :class:`~acga_lightning.data.base.ReferringDataModule` (:mod:`.base`).
- :mod:`.synthetic`: generated data in each real layout (tests, the demo, the notebooks).
- :mod:`.caching`: the I3D feature cache, the in-memory sample cache, the readers' index cache.
- :mod:`.io`: video and image reading, resizing, word vectors.
"""

from acga_lightning.data.base import DATAMODULES, ReferringDataModule, build_cache
from acga_lightning.data.collate import collate_samples
from acga_lightning.data.contract import Batch, Sample
from acga_lightning.data.datamodules import (
    A2DDataModule,
    ACGAReleaseDataModule,
    JHMDBDataModule,
    RefDAVIS17DataModule,
    RefYouTubeVOSDataModule,
)
from acga_lightning.data.datasets.a2d import A2DSentences, read_a2d_mask, read_a2d_masks
from acga_lightning.data.datasets.acga_h5 import ACGAPreprocessed
from acga_lightning.data.datasets.jhmdb import JHMDBSentences
from acga_lightning.data.datasets.ref_vos import ReferringVOS
from acga_lightning.data.io.resize import (
    ResizeGeometry,
    compute_geometry,
    resize_frames,
    resize_mask,
    restore_mask,
)
from acga_lightning.data.io.video import VideoReadError, clip_indices, probe_video, read_window
from acga_lightning.data.io.words import WordStats, encode_query, load_word_vectors, tokenize
from acga_lightning.data.sample import build_sample, frames_to_tensor, make_sample_id
from acga_lightning.data.samplers import UnpaddedDistributedSampler
from acga_lightning.data.synthetic import write_a2d, write_jhmdb, write_ref_vos
from acga_lightning.data.transforms import ClipAugment, swap_left_right

__all__ = [
    "A2DDataModule",
    "A2DSentences",
    "ACGAReleaseDataModule",
    "Batch",
    "DATAMODULES",
    "JHMDBDataModule",
    "ACGAPreprocessed",
    "ClipAugment",
    "JHMDBSentences",
    "ReferringDataModule",
    "ReferringVOS",
    "RefDAVIS17DataModule",
    "RefYouTubeVOSDataModule",
    "Sample",
    "ResizeGeometry",
    "UnpaddedDistributedSampler",
    "VideoReadError",
    "WordStats",
    "build_cache",
    "build_sample",
    "clip_indices",
    "collate_samples",
    "compute_geometry",
    "encode_query",
    "frames_to_tensor",
    "load_word_vectors",
    "make_sample_id",
    "probe_video",
    "read_a2d_mask",
    "read_a2d_masks",
    "read_window",
    "resize_frames",
    "resize_mask",
    "restore_mask",
    "swap_left_right",
    "tokenize",
    "write_a2d",
    "write_jhmdb",
    "write_ref_vos",
]
