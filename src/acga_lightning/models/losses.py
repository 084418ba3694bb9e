"""Segmentation losses over the decoder's list of logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from acga_lightning.registry import LOSSES


def resize_target(target: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """The (B, S, S) target bilinearly resized to ``size``: (B, 1, h, w), soft values in [0, 1]."""
    target = target[:, None].float()
    if tuple(target.shape[-2:]) == tuple(size):
        return target
    return F.interpolate(target, size=tuple(size), mode="bilinear", align_corners=False)


@LOSSES.register("wbce")
class WeightedBCE(nn.Module):
    """ACGA's loss: for each resolution, the pixel mean of BCE-with-logits with positive weight
    ``pos_weight``, summed over resolutions with ``weights`` (default 1 each)."""

    def __init__(self, pos_weight: float = 1.5, weights: list[float] | None = None) -> None:
        super().__init__()
        if pos_weight <= 0:
            raise ValueError(f"pos_weight must be positive, got {pos_weight}")
        self.pos_weight = pos_weight
        self.weights = weights

    def forward(self, logits: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        weights = self.weights or [1.0] * len(logits)
        if len(weights) != len(logits):
            raise ValueError(f"{len(weights)} loss weights for {len(logits)} logit maps")
        total = logits[0].new_zeros((), dtype=torch.float32)
        pos_weight = torch.tensor(self.pos_weight, device=target.device)
        for weight, level in zip(weights, logits, strict=True):
            level_target = resize_target(target, level.shape[-2:])
            loss = F.binary_cross_entropy_with_logits(
                level.float(), level_target, pos_weight=pos_weight
            )
            total = total + weight * loss
        return total


@LOSSES.register("bce")
class BCE(WeightedBCE):
    """Plain BCE-with-logits summed over resolutions (the Baseline's loss)."""

    def __init__(self, weights: list[float] | None = None) -> None:
        super().__init__(pos_weight=1.0, weights=weights)
