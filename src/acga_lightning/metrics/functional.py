"""Referring-segmentation figures as plain functions: per-sample areas, IoU, P@K, mAP.

Conventions, shared by both protocols unless stated:

- A sample is one frame: one predicted mask, one target mask (boolean, same size) and a score.
- ``IoU = |P and G| / |P or G|``; the IoU of an empty prediction against an empty target is 1
  (nothing to find, nothing found).
- ``overall_iou`` = sum of intersections / sum of unions over all samples (1 when every union is
  empty); ``mean_iou`` = mean of the per-sample IoU.
- ``acga`` protocol (ACGA, Gavrilyuk et al., CMPC-V, LBDT): P@K counts ``IoU >= K``; "mAP 0.5:0.95"
  is the mean of P@K over K = 0.50, 0.55, ..., 0.95, written as exact decimals (an IoU of exactly
  11/20 passes K = 0.55).
- ``acga_release`` protocol (the official ACGA code's ``report_result``): as ``acga``, with the
  per-sample IoU computed as ``(I + 1e-6) / (U + 1e-6)`` (it differs from ``I / U`` by less than
  1e-11 and never across a threshold, but it is what that code computes).
- ``mttr`` protocol (MTTR, ReferFormer): P@K counts ``IoU > K``; "mAP" is COCO AP@0.5:0.95 as
  pycocotools computes it (see :func:`coco_mask_ap` for how samples become a COCO data set).

Result keys (:data:`METRIC_LABELS`) are valid metric names for every Lightning logger (MLflow
allows letters, digits, ``_ - . /`` and spaces): ``precision_50`` ... ``precision_90`` for P@0.5 ...
P@0.9, ``map`` for the protocol's mAP@0.5:0.95, ``overall_iou``, ``mean_iou`` and ``num_samples``;
for referring video object segmentation ``j``, ``f``, ``jf`` (J&F), ``num_expressions`` and
``num_frames`` (:mod:`acga_lightning.metrics.video`). Printed tables show the paper's label
beside each key.

Areas are exact integer counts; figures are float64, so a threshold comparison is decided by the
integer pixel counts and never by float32 rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "ACGA_MAP_THRESHOLDS",
    "METRIC_LABELS",
    "RENAMED_METRICS",
    "COCO_IOU_THRESHOLDS",
    "COCO_RECALL_THRESHOLDS",
    "PROTOCOLS",
    "REPORTED_THRESHOLDS",
    "MaskAreas",
    "acga_map",
    "coco_mask_ap",
    "deduplicate",
    "iou",
    "mask_areas",
    "mean_iou",
    "overall_iou",
    "precision_at",
    "precision_key",
    "referring_segmentation_metrics",
    "renamed_metric",
]

PROTOCOLS = ("acga", "acga_release", "mttr")
RELEASE_SMOOTH = 1e-6  # report_result's epsilon in (I + eps) / (U + eps)
REPORTED_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
ACGA_MAP_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def precision_key(threshold: float) -> str:
    """The result key of P@``threshold``: ``precision_50`` for 0.5."""
    return f"precision_{round(threshold * 100)}"


METRIC_LABELS = {
    **{precision_key(k): f"P@{k}" for k in REPORTED_THRESHOLDS},
    "map": "mAP@0.5:0.95",
    "overall_iou": "overall IoU",
    "mean_iou": "mean IoU",
    "num_samples": "samples",
    "j": "J",
    "f": "F",
    "jf": "J&F",
    "num_expressions": "expressions",
    "num_frames": "frames",
}
"""Each result key with the label the papers print."""

# Keys logged before the names became valid for every logger, with their new names.
RENAMED_METRICS = {
    **{f"P@{k}": precision_key(k) for k in REPORTED_THRESHOLDS},
    "mAP@0.5:0.95": "map",
}


def renamed_metric(name: str) -> str | None:
    """The current name of a metric logged under an old one (``val/P@0.5`` -> ``val/precision_50``),
    or None when ``name`` holds no old key."""
    stage, sep, key = name.rpartition("/")
    if key in RENAMED_METRICS:
        return f"{stage}{sep}{RENAMED_METRICS[key]}"
    return None


# The very arrays pycocotools builds (Params.setDetParams). They are not exact decimals: the
# "0.9" IoU threshold is 0.8999999999999999 with numpy 2.x; reusing the arrays keeps us bit-equal.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
COCO_RECALL_THRESHOLDS = np.linspace(
    0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True
)

# An int64 word holds 8 byte lanes. Summing at most 127 words of 0/1 bytes keeps every lane below
# 128: no carry between lanes and no signed overflow, so the 8 lanes of a chunk's sum add up to the
# number of ones in the chunk. Counting this way reads 8 pixels per element instead of 1.
_LANE_WORDS = 127
_CHUNK_BYTES = 8 * _LANE_WORDS
# Masks are counted in groups of about this many pixels: the working buffer stays in cache on CPU.
_GROUP_PIXELS = 1 << 22
_PADDING: dict[tuple[int, torch.device], Tensor] = {}
_WORKSPACES: dict[torch.device, Tensor] = {}
_CPU_BUFFER = np.empty(0, dtype=bool)  # see _cpu_areas
_MASKS_HELP = "a (B, H, W) tensor or a list of (H, W) tensors"


class MaskAreas(NamedTuple):
    """Per-sample pixel counts, int64 tensors of shape (N,)."""

    intersection: Tensor
    union: Tensor
    target_area: Tensor


def _as_mask_list(masks: Tensor | Sequence[Tensor], name: str) -> list[Tensor]:
    if isinstance(masks, Tensor):
        if masks.ndim != 3:
            raise ValueError(f"{name} must be {_MASKS_HELP}, got shape {tuple(masks.shape)}")
        return list(masks.unbind(0))
    if not isinstance(masks, Sequence):
        raise ValueError(f"{name} must be {_MASKS_HELP}, got {type(masks).__name__}")
    return list(masks)


def _check_pairs(preds: list[Tensor], targets: list[Tensor]) -> None:
    if len(preds) != len(targets):
        raise ValueError(f"preds has {len(preds)} masks but targets has {len(targets)}")
    for i, (p, t) in enumerate(zip(preds, targets, strict=True)):
        for name, m in (("preds", p), ("targets", t)):
            if not isinstance(m, Tensor) or m.dtype != torch.bool or m.ndim != 2:
                what = (
                    f"{m.dtype} tensor of shape {tuple(m.shape)}"
                    if isinstance(m, Tensor)
                    else type(m).__name__
                )
                raise ValueError(f"{name}[{i}] must be a boolean (H, W) tensor, got {what}")
        if p.shape != t.shape:
            raise ValueError(
                f"preds[{i}] has shape {tuple(p.shape)} but targets[{i}] has {tuple(t.shape)}"
            )
        if p.device != t.device or p.device != preds[0].device:
            raise ValueError(
                f"preds[{i}] is on {p.device} and targets[{i}] on {t.device}; use one device"
            )


def _padding(size: int, device: torch.device) -> Tensor:
    """A cached all-False bool tensor of ``size`` (< one chunk) on ``device``."""
    key = (size, device)
    if key not in _PADDING:
        _PADDING[key] = torch.zeros(size, dtype=torch.bool, device=device)
    return _PADDING[key]


def _workspace(size: int, device: torch.device) -> Tensor:
    """A bool buffer of at least ``size`` bytes, reused across calls.

    Fresh multi-megabyte buffers cost a page fault per 4 KiB on CPU (more than the counting
    itself); a caller takes the buffer out of the cache and puts it back when done, so two threads
    never share one.
    """
    cached = _WORKSPACES.pop(device, None)
    if cached is None or cached.numel() < size:
        cached = torch.empty(size, dtype=torch.bool, device=device)
    return cached


def _group_areas(preds: list[Tensor], targets: list[Tensor]) -> Tensor:
    """(3, n) counts [pred area, target area, intersection] of masks laid out in one buffer."""
    n, device = len(preds), preds[0].device
    chunks = [-(-p.numel() // _CHUNK_BYTES) for p in preds]
    total = sum(chunks) * _CHUNK_BYTES
    pieces = []
    for masks in (preds, targets):
        for m, c in zip(masks, chunks, strict=True):
            pieces.append(m.reshape(-1))
            if c * _CHUNK_BYTES > m.numel():
                pieces.append(_padding(c * _CHUNK_BYTES - m.numel(), device))
    workspace = _workspace(3 * total, device)
    buffer = workspace[: 3 * total]  # [preds | targets | preds and targets], chunk-aligned
    torch.cat(pieces, out=buffer[: 2 * total])
    words = buffer.view(torch.uint8).view(torch.int64)  # (3 * total / 8,)
    third = words.numel() // 3
    torch.bitwise_and(words[:third], words[third : 2 * third], out=words[2 * third :])
    lanes = words.view(-1, _LANE_WORDS).sum(1)  # (3 * chunks,) 8 byte lanes each
    _WORKSPACES[device] = workspace
    per_chunk = lanes.view(torch.uint8).view(-1, 8).sum(1)  # (3 * chunks,) ones per chunk
    if all(c == chunks[0] for c in chunks):
        return per_chunk.view(3 * n, chunks[0]).sum(1).view(3, n)
    cumulative = torch.cat([per_chunk.new_zeros(1), per_chunk.cumsum(0)])  # (3 * chunks + 1,)
    ends = torch.tensor(list(accumulate(chunks * 3, initial=0)), device=device)  # (3n + 1,)
    return torch.diff(cumulative[ends]).view(3, n)


def _cpu_areas(preds: list[Tensor], targets: list[Tensor]) -> Tensor:
    """(3, n) counts [pred area, target area, intersection] of CPU masks, one sample at a time.

    On a CPU, NumPy's ``count_nonzero`` (a vectorised byte count) over zero-copy views of the
    masks beats laying them out in one buffer: each mask comes from memory once (the second read
    hits the cache) and nothing is written but the intersection, into a reused buffer.
    """
    global _CPU_BUFFER
    counts = np.empty((3, len(preds)), dtype=np.int64)
    largest = max(p.numel() for p in preds)
    if _CPU_BUFFER.size < largest:
        _CPU_BUFFER = np.empty(largest, dtype=bool)
    buffer, _CPU_BUFFER = _CPU_BUFFER, np.empty(0, dtype=bool)  # taken: no two threads share it
    count = np.count_nonzero
    for i, (p, t) in enumerate(zip(preds, targets, strict=True)):
        a, b = p.numpy(), t.numpy()  # (H, W) views; bool tensors never require grad
        counts[0, i] = count(a)
        counts[1, i] = count(b)
        counts[2, i] = count(np.logical_and(a, b, out=buffer[: a.size].reshape(a.shape)))
    _CPU_BUFFER = buffer
    return torch.from_numpy(counts)


def mask_areas(preds: Tensor | Sequence[Tensor], targets: Tensor | Sequence[Tensor]) -> MaskAreas:
    """Per-sample intersection, union and target area of boolean masks, counted on their device.

    ``preds`` and ``targets`` are each a (B, H, W) boolean tensor or a list of (H_i, W_i) boolean
    tensors (frames may differ in size); pair i must have one shape. The counts are exact. On a
    GPU they are vectorised over the batch: masks are laid out in one buffer and summed 8 pixels
    per int64 word; on a CPU NumPy counts each mask in place (:func:`_cpu_areas`).
    """
    pred_area, target_area, intersection = _stacked_areas(preds, targets)
    return MaskAreas(intersection, pred_area + target_area - intersection, target_area)


def _stacked_areas(preds: Tensor | Sequence[Tensor], targets: Tensor | Sequence[Tensor]) -> Tensor:
    """(3, N) int64 [pred area, target area, intersection], validating the inputs."""
    pred_list = _as_mask_list(preds, "preds")
    target_list = _as_mask_list(targets, "targets")
    _check_pairs(pred_list, target_list)
    if not pred_list:
        return torch.zeros(3, 0, dtype=torch.int64)
    if pred_list[0].device.type == "cpu":
        return _cpu_areas(pred_list, target_list)
    groups, start, pixels = [], 0, 0
    for i, p in enumerate(pred_list):
        pixels += p.numel()
        if pixels >= _GROUP_PIXELS or i == len(pred_list) - 1:
            groups.append(_group_areas(pred_list[start : i + 1], target_list[start : i + 1]))
            start, pixels = i + 1, 0
    return torch.cat(groups, dim=1) if len(groups) > 1 else groups[0]


def iou(intersection: Tensor, union: Tensor) -> Tensor:
    """Per-sample IoU (float64) from pixel counts; 1 where the union is empty (empty vs empty)."""
    intersection, union = intersection.double(), union.double()
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))


def precision_at(ious: Tensor, thresholds: Sequence[float], *, strict: bool = False) -> Tensor:
    """Share of samples whose IoU passes each threshold: ``IoU >= K``, or ``IoU > K`` if ``strict``.

    Returns a float64 tensor (len(thresholds),); NaN when there are no samples.
    """
    k = torch.tensor(list(thresholds), dtype=torch.float64, device=ious.device)  # (K,)
    ious = ious.double()[None, :]  # (1, N)
    passed = ious > k[:, None] if strict else ious >= k[:, None]  # (K, N)
    return (
        passed.sum(1).double() / ious.shape[1] if ious.shape[1] else torch.full_like(k, torch.nan)
    )


def acga_map(ious: Tensor) -> Tensor:
    """ACGA's "mAP 0.5:0.95": the mean of P@K (``IoU >= K``) over K = 0.50, 0.55, ..., 0.95."""
    return precision_at(ious, ACGA_MAP_THRESHOLDS).mean()


def overall_iou(intersection: Tensor, union: Tensor) -> Tensor:
    """Sum of intersections over sum of unions (1 if every union is empty; NaN with no samples)."""
    if intersection.numel() == 0:
        return torch.tensor(torch.nan, dtype=torch.float64)
    return iou(intersection.sum(), union.sum())


def mean_iou(ious: Tensor) -> Tensor:
    """Mean of the per-sample IoU (NaN with no samples)."""
    return ious.double().mean()


def coco_mask_ap(
    ious: Tensor, scores: Tensor, has_target: Tensor, empty_target_is_gt: bool = True
) -> float:
    """COCO AP@[0.5:0.95] of one scored prediction per sample, equal to pycocotools' ``stats[0]``.

    The samples are read as the COCO data set MTTR builds, class-agnostic (``useCats=0``): sample i
    (in the given order) is image i; its prediction is one segm detection with ``scores[i]``; its
    target is one GT annotation (``iscrowd=0``). With one GT and one detection per image,
    pycocotools' matching reduces to: the detection is a true positive at threshold t iff the
    image's target is not empty (``has_target[i]``) and ``IoU >= t`` (its rule ``if iou < t:
    continue``, with t from the same ``np.linspace(0.5, 0.95, 10)``; an IoU exactly at t
    matches). Ranking is pycocotools' stable sort by descending score, so ties keep the given
    (image) order.

    Empty target: MTTR's ground truth (``create_gt_in_coco_format.py``) holds an annotation for
    every instance listed in the frame, even when its mask is empty (area 0). pycocotools' IoU
    against an empty mask is 0, so that annotation is never matched: it is a miss, and the
    image's detection a false positive (``empty_target_is_gt=True``, the default). With
    ``empty_target_is_gt=False`` such an image has no GT annotation: its detection is still a
    false positive but it adds nothing to the recall denominator. ``ious`` of such samples are
    not used.

    Returns NaN when there is no GT annotation (pycocotools reports -1 there).
    """
    iou_np = ious.detach().double().cpu().numpy()
    score_np = scores.detach().double().cpu().numpy()
    has_target_np = has_target.detach().cpu().numpy().astype(bool)
    num_gt = len(has_target_np) if empty_target_is_gt else int(np.count_nonzero(has_target_np))
    if num_gt == 0:
        return float("nan")
    order = np.argsort(-score_np, kind="mergesort")
    thresholds = np.minimum(COCO_IOU_THRESHOLDS, 1 - 1e-10)[:, None]  # (T, 1)
    matched = has_target_np[order][None, :] & (iou_np[order][None, :] >= thresholds)  # (T, N)
    tp = np.cumsum(matched, axis=1).astype(float)
    fp = np.cumsum(~matched, axis=1).astype(float)
    recall = tp / num_gt
    precision = tp / (fp + tp + np.spacing(1))
    precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # monotone envelope
    interpolated = np.zeros((len(COCO_IOU_THRESHOLDS), len(COCO_RECALL_THRESHOLDS)))  # (T, R)
    for t in range(len(COCO_IOU_THRESHOLDS)):
        idx = np.searchsorted(recall[t], COCO_RECALL_THRESHOLDS, side="left")
        valid = idx < recall.shape[1]
        interpolated[t, valid] = precision[t, idx[valid]]
    return float(np.mean(interpolated[interpolated > -1]))


def deduplicate(sample_ids: Tensor, *columns: Tensor) -> tuple[Tensor, ...]:
    """Keep one record per sample id, ordered by ascending id; returns ``(ids, *columns)``.

    Where an id repeats (DistributedSampler pads shards with repeated samples), the record kept is
    the first in lexicographic order of ``(id, *columns)``, so the choice does not depend on which
    process saw which copy.
    """
    keys = [c.detach().double().cpu().numpy() for c in reversed(columns)]
    ids = sample_ids.detach().cpu().numpy()
    order = np.lexsort([*keys, ids])
    sorted_ids = ids[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sorted_ids[1:] != sorted_ids[:-1]
    keep = torch.as_tensor(order[first], device=sample_ids.device)
    return (sample_ids[keep], *(c[keep] for c in columns))


def referring_segmentation_metrics(
    intersection: Tensor,
    union: Tensor,
    target_area: Tensor,
    scores: Tensor | None = None,
    protocol: str = "acga",
) -> dict[str, float]:
    """All figures of one protocol from per-sample counts (and scores, for ``mttr`` mAP).

    Keys: ``precision_50`` ... ``precision_90`` (P@0.5 ... P@0.9), ``map`` (mAP@0.5:0.95),
    ``overall_iou``, ``mean_iou`` (fractions in [0, 1], NaN without samples) and
    ``num_samples``. Sample order matters only for ``mttr`` mAP with tied scores (see
    :func:`coco_mask_ap`). ``scores=None`` gives every sample a score of 1.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if protocol == "acga_release":
        ious = (intersection.double() + RELEASE_SMOOTH) / (union.double() + RELEASE_SMOOTH)
    else:
        ious = iou(intersection, union)
    strict = protocol == "mttr"
    result = {
        precision_key(k): float(v)
        for k, v in zip(
            REPORTED_THRESHOLDS, precision_at(ious, REPORTED_THRESHOLDS, strict=strict), strict=True
        )
    }
    if protocol in ("acga", "acga_release"):
        result["map"] = float(acga_map(ious))
    else:
        scores = torch.ones_like(ious) if scores is None else scores
        result["map"] = coco_mask_ap(ious, scores, target_area > 0)
    result["overall_iou"] = float(overall_iou(intersection, union))
    result["mean_iou"] = float(mean_iou(ious))
    result["num_samples"] = float(ious.numel())
    return result
