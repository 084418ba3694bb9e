"""The sample contract: what every dataset reader returns and what a batch holds.

Every reader in :mod:`acga_lightning.data.datasets` returns one :class:`Sample` per (clip,
query); :func:`~acga_lightning.data.collate.collate_samples` turns a list of them into a
:class:`Batch` (tensors stacked along a leading ``B`` axis, the rest kept as lists). The model
(:class:`~acga_lightning.ACGASegmenter`), the caches and the metrics rely on nothing else.

Shapes: ``T`` frames per clip, ``S`` the square input size, ``N`` the padded sentence length
(``max_words``), ``(h, w)`` the annotated frame's original size, ``C, T', G`` the channels,
time steps and grid of cached encoder features.

The clip of annotated frame ``f`` (1-based) is frames ``f-1-T//2 ... f-1+(T+1)//2-1`` (0-based)
clamped to the video's ends (:func:`~acga_lightning.data.io.video.clip_indices`); the annotated
frame sits at index ``T // 2`` and is the only one supervised.
"""

from __future__ import annotations

from typing import Any, TypedDict

import numpy as np
import torch

from acga_lightning.data.io.resize import ResizeGeometry


class Sample(TypedDict, total=False):
    """One (clip, query) sample. Keys marked *optional* may be absent; every other key is present.

    Attributes:
        frames: ``(3, T, S, S)``: float32 in [-1, 1], or the resized uint8 pixels with
            ``frames_dtype="uint8"`` (the datamodules' default; the model normalises them with
            :func:`~acga_lightning.data.io.resize.normalise_frames` on its device). Absent when
            ``features`` is given.
        features: *optional* float16/32 ``(C, T', G, G)``, the cached encoder output of the
            clip (:mod:`acga_lightning.data.caching.features`), instead of ``frames``.
        words: float32 ``(N, 300)`` word vectors, zero rows for padding.
        word_mask: bool ``(N,)``, True for real words.
        mask: float32 ``(S, S)`` in {0, 1}: the target at the model's resolution. Absent where a
            split has no public masks (Ref-YouTube-VOS ``valid``).
        orig_mask: bool ``(h, w)``: the target at the frame's original size, used for scoring.
            Absent with ``mask``.
        orig_size: ``(h, w)``.
        resize: the :class:`~acga_lightning.data.io.resize.ResizeGeometry` mapping ``S x S``
            back to ``(h, w)``.
        query: the sentence, normalised (lower case, single spaces).
        video_id: the video's name.
        frame_idx: the annotated frame: 1-based index (A2D, J-HMDB) or the number in the
            frame's file name (Ref-YouTube-VOS, Ref-DAVIS17).
        instance_id: the actor / object the query names.
        sample_id: int, stable across runs, processes and ranks (the metrics dedupe by it).
        action: *optional* (A2D) the target's actor-action class, the annotation file's ``id``
            (``actor * 10 + action``: 11 adult-climbing ... 79 dog-none), -1 where the file
            has none; what :class:`~acga_lightning.ACGASegmenter`'s ``action_loss_weight``
            trains on.
        expression_id: *optional* (Ref-VOS) stable int naming the (video, expression) whose
            frames J&F averages together.
        exp_id: *optional* (Ref-VOS) the expression's id in ``meta_expressions.json``.
        frame_name: *optional* (Ref-VOS) the frame's file stem, as a submission names it.
        void: *optional* (Ref-DAVIS17) bool ``(h, w)``, pixels every metric ignores.
    """

    frames: torch.Tensor
    features: torch.Tensor
    words: torch.Tensor
    word_mask: torch.Tensor
    mask: torch.Tensor
    orig_mask: np.ndarray
    orig_size: tuple[int, int]
    resize: ResizeGeometry
    query: str
    video_id: str
    frame_idx: int
    instance_id: int
    sample_id: int
    action: int
    expression_id: int
    exp_id: str
    frame_name: str
    void: np.ndarray


class Batch(TypedDict, total=False):
    """A collated list of :class:`Sample` (``B`` of them), as the model's steps receive it.

    ``frames (B, 3, T, S, S)`` or ``features (B, C, T', G, G)``, ``words (B, N, 300)``,
    ``word_mask (B, N)`` and ``mask (B, S, S)`` are stacked; ``sample_id``, ``frame_idx``,
    ``instance_id``, ``action`` and ``expression_id`` are int64 ``(B,)``; everything else
    (``orig_mask``, ``orig_size``, ``resize`` as plain dicts, ``query``, ``video_id``, ...) is
    a list of ``B``.
    """

    frames: torch.Tensor
    features: torch.Tensor
    words: torch.Tensor
    word_mask: torch.Tensor
    mask: torch.Tensor
    orig_mask: list[np.ndarray]
    orig_size: list[tuple[int, int]]
    resize: list[dict[str, Any]]
    query: list[str]
    video_id: list[str]
    frame_idx: torch.Tensor
    instance_id: torch.Tensor
    sample_id: torch.Tensor
    action: torch.Tensor
    expression_id: torch.Tensor
    exp_id: list[str]
    frame_name: list[str]
    void: list[np.ndarray]
