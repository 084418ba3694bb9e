"""Datasets, readers and generated data.

Readers return samples of the contract documented in :mod:`acga_lightning.data.sample`;
:func:`collate_samples` batches them. ``A2DSentences`` and ``JHMDBSentences`` read the released
on-disk formats; ``ACGAPreprocessed`` reads the official ACGA h5 features.
"""

from acga_lightning.data.a2d import A2DSentences, read_a2d_mask, read_a2d_masks
from acga_lightning.data.acga_h5 import ACGAPreprocessed
from acga_lightning.data.collate import collate_samples
from acga_lightning.data.datamodule import ReferringVideoDataModule, build_cache
from acga_lightning.data.jhmdb import JHMDBSentences
from acga_lightning.data.resize import (
    ResizeGeometry,
    compute_geometry,
    resize_frames,
    resize_mask,
    restore_mask,
)
from acga_lightning.data.sample import build_sample, frames_to_tensor, make_sample_id
from acga_lightning.data.samplers import UnpaddedDistributedSampler
from acga_lightning.data.toy import write_a2d, write_jhmdb
from acga_lightning.data.transforms import ClipAugment, swap_left_right
from acga_lightning.data.video import VideoReadError, clip_indices, probe_video, read_window
from acga_lightning.data.words import WordStats, encode_query, load_word_vectors, tokenize

__all__ = [
    "A2DSentences",
    "ACGAPreprocessed",
    "ClipAugment",
    "JHMDBSentences",
    "ReferringVideoDataModule",
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
]
