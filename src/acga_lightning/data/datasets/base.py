"""ClipReader: what the frame readers (A2D-Sentences, J-HMDB-Sentences, Ref-VOS) share.

A reader indexes its dataset once (one small record per sample, with at least ``video_id``,
``frame_idx`` and ``query``) and builds each :class:`~acga_lightning.data.contract.Sample` on
demand. The base checks the common settings, loads the word vectors, keeps the index with its
skip counts and word statistics, groups samples by the decoded window they share
(:meth:`ClipReader.window_key`, used by the memory cache) and builds samples with the reader's
settings (:meth:`ClipReader.build`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from gensim.models import KeyedVectors
from torch.utils.data import Dataset

from acga_lightning.data.contract import Sample
from acga_lightning.data.io.resize import POLICIES
from acga_lightning.data.io.words import WordStats, load_word_vectors, query_stats
from acga_lightning.data.sample import ClipTransform, build_sample, check_frames_dtype

log = logging.getLogger(__name__)


class ClipReader(Dataset):
    """The shared base of the frame readers.

    Args:
        root: the dataset's root folder.
        name: the reader's name in logs (``A2DSentences[train]``, say).
        num_frames: clip length ``T``; the annotated frame sits at index ``T // 2``.
        frame_size: the model's square input size ``S``.
        word_vectors: gensim ``KeyedVectors`` or a path for
            :func:`~acga_lightning.data.io.words.load_word_vectors`; None leaves ``words`` and
            ``word_mask`` out of the samples.
        max_words: ``N``, the padded sentence length.
        transform: training augmentation, e.g. :class:`~acga_lightning.data.ClipAugment`.
        resize: ``"cover"`` (official: scale to cover, centre-crop) or ``"letterbox"``.
        strict: raise on the first bad sample instead of skipping and counting it.
        frames_dtype: ``"float32"``: ``frames`` in [-1, 1]; ``"uint8"``: the resized pixels
            (0-255), 4x less to copy between processes and to the GPU, which
            :class:`~acga_lightning.ACGASegmenter` normalises on its device (what the
            datamodules ask for by default).
        frame_stride: the clip is every ``frame_stride``-th frame around the annotated one
            (1: consecutive frames), so ``T`` frames span ``(T - 1) * frame_stride + 1``.
    """

    def __init__(
        self,
        root: str | Path,
        name: str,
        num_frames: int = 16,
        frame_size: int = 512,
        word_vectors: KeyedVectors | str | Path | None = None,
        max_words: int = 20,
        transform: ClipTransform | None = None,
        resize: str = "cover",
        strict: bool = False,
        frames_dtype: str = "float32",
        frame_stride: int = 1,
    ) -> None:
        self.root, self.name = Path(root), name
        self.frames_dtype = check_frames_dtype(frames_dtype)
        if resize not in POLICIES:
            raise ValueError(f"resize: expected one of {POLICIES}, got {resize!r}")
        if num_frames < 1 or frame_size < 1 or max_words < 1:
            raise ValueError(
                f"num_frames, frame_size, max_words: expected >= 1, got "
                f"{num_frames}, {frame_size}, {max_words}"
            )
        if frame_stride < 1:
            raise ValueError(f"frame_stride: expected >= 1, got {frame_stride}")
        self.num_frames, self.frame_size, self.max_words = num_frames, frame_size, max_words
        self.frame_stride = frame_stride
        self.transform, self.resize, self.strict = transform, resize, strict
        if isinstance(word_vectors, str | Path):
            word_vectors = load_word_vectors(word_vectors)
        self.word_vectors = word_vectors
        self.word_stats = WordStats()
        self.records: list[dict[str, Any]] = []
        self.skipped: dict[str, int] = {}

    def keep_index(self, records: list[dict[str, Any]], skipped: dict[str, int]) -> None:
        """Keep the index and its skip counts; log them and the word statistics of its queries."""
        self.records, self.skipped = records, skipped
        log.info("%s: %d samples; skipped %s", self.name, len(records), skipped)
        if self.word_vectors is not None and records:
            queries = sorted({r["query"] for r in records})
            self.word_stats = query_stats(queries, self.word_vectors, self.max_words)
            log.info("%s words: %s", self.name, self.word_stats)

    def __len__(self) -> int:
        return len(self.records)

    def window_key(self, index: int) -> tuple[str, int]:
        """Samples with equal keys read the same decoded window (one annotated frame)."""
        r = self.records[index]
        return r["video_id"], r["frame_idx"]

    def build(
        self,
        frames: np.ndarray,
        orig_mask: np.ndarray,
        query: str,
        transform: ClipTransform | None,
        **ids: Any,
    ) -> Sample:
        """A sample of this reader's settings from a decoded window ``(T, h, w, 3)``, the
        frame's mask ``(h, w)`` and the provenance ``ids`` (see
        :func:`~acga_lightning.data.sample.build_sample`)."""
        return build_sample(
            frames, orig_mask, query, frame_size=self.frame_size, resize=self.resize,
            transform=transform, word_vectors=self.word_vectors, max_words=self.max_words,
            frames_dtype=self.frames_dtype, **ids,
        )  # fmt: skip
