"""Region similarity J and boundary accuracy F, as the DAVIS-2017 toolkit defines them.

Ref-YouTube-VOS and Ref-DAVIS17 results are reported as J, F and their mean J&F:

- ``J`` is the IoU of the predicted and true masks, 1 when both are empty.
- ``F`` is the F-measure of boundary pixels. A mask's boundary is every foreground pixel that
  differs from its right, lower or lower-right neighbour (the toolkit's ``seg2bmap``, with the
  last row and column compared only along the edge). A predicted boundary pixel is correct when a
  true boundary pixel lies within ``ceil(0.008 x image diagonal)`` pixels (a disk), and likewise
  for recall. ``F = 2PR / (P + R)``; 1 when both boundaries are empty, 0 when only one is.
- Void pixels (label 255 in DAVIS annotations), where given, are removed from both masks first.

Per expression the figures are averaged over its frames, then over expressions
(:class:`~acga_lightning.metrics.video.ReferringVideoMetrics` keeps the per-frame values).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F_nn
from torch import Tensor

BOUNDARY_THRESHOLD = 0.008


def _check_pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(
            f"pred and target must be (H, W) masks of one size, got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    return pred.bool(), target.bool()


def _drop_void(pred: Tensor, target: Tensor, void: Tensor | None) -> tuple[Tensor, Tensor]:
    if void is None:
        return pred, target
    if void.shape != pred.shape:
        raise ValueError(f"void must be {tuple(pred.shape)}, got {tuple(void.shape)}")
    keep = ~void.bool()
    return pred & keep, target & keep


def region_similarity(pred: Tensor, target: Tensor, void: Tensor | None = None) -> float:
    """J: the IoU of two boolean (H, W) masks, 1 when both are empty."""
    pred, target = _drop_void(*_check_pair(pred, target), void)
    union = int((pred | target).sum())
    if union == 0:
        return 1.0
    return int((pred & target).sum()) / union


def boundary_map(mask: Tensor) -> Tensor:
    """The boundary pixels of a boolean (H, W) mask, as the DAVIS toolkit's ``seg2bmap``."""
    mask = mask.bool()
    east = torch.zeros_like(mask)
    south = torch.zeros_like(mask)
    south_east = torch.zeros_like(mask)
    east[:, :-1] = mask[:, 1:]
    south[:-1, :] = mask[1:, :]
    south_east[:-1, :-1] = mask[1:, 1:]
    boundary = (mask ^ east) | (mask ^ south) | (mask ^ south_east)
    boundary[-1, :] = mask[-1, :] ^ east[-1, :]
    boundary[:, -1] = mask[:, -1] ^ south[:, -1]
    boundary[-1, -1] = False
    return boundary


def disk(radius: int, device: torch.device | None = None) -> Tensor:
    """A (2r+1, 2r+1) boolean disk: the points with x^2 + y^2 <= r^2."""
    steps = torch.arange(-radius, radius + 1, device=device)
    return steps[:, None] ** 2 + steps[None, :] ** 2 <= radius**2


def dilate(mask: Tensor, radius: int) -> Tensor:
    """Binary dilation of a boolean (H, W) mask by a disk of ``radius`` (outside pixels: off)."""
    if radius <= 0:
        return mask.bool()
    kernel = disk(radius, mask.device).float()[None, None]  # (1, 1, 2r+1, 2r+1)
    grown = F_nn.conv2d(mask.float()[None, None], kernel, padding=radius)  # (1, 1, H, W)
    return grown[0, 0] > 0.5


def boundary_tolerance(height: int, width: int, threshold: float = BOUNDARY_THRESHOLD) -> int:
    """The match distance in pixels: ``ceil(threshold x diagonal)`` (or ``threshold`` if >= 1)."""
    if threshold >= 1:
        return int(threshold)
    return math.ceil(threshold * math.hypot(height, width))


def boundary_f_measure(
    pred: Tensor,
    target: Tensor,
    void: Tensor | None = None,
    threshold: float = BOUNDARY_THRESHOLD,
) -> float:
    """F: the boundary F-measure of two boolean (H, W) masks (DAVIS-2017 definition)."""
    pred, target = _drop_void(*_check_pair(pred, target), void)
    radius = boundary_tolerance(*pred.shape, threshold=threshold)
    pred_boundary = boundary_map(pred)
    target_boundary = boundary_map(target)
    n_pred = int(pred_boundary.sum())
    n_target = int(target_boundary.sum())
    if n_pred == 0 and n_target == 0:
        return 1.0
    if n_pred == 0 or n_target == 0:
        return 0.0
    precision = int((pred_boundary & dilate(target_boundary, radius)).sum()) / n_pred
    recall = int((target_boundary & dilate(pred_boundary, radius)).sum()) / n_target
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)
