"""The torchmetrics ``Metric`` that accumulates referring-segmentation figures over an epoch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from acga_lightning.metrics import functional as F

_MAX_EXACT_ID = 2**53  # ids are kept in float64 states (see __init__)


class ReferringSegmentationMetrics(Metric):
    """P@0.5..0.9, mAP@0.5:0.95, overall and mean IoU of referring segmentation, DDP-exact.

    ``protocol="acga"`` (ACGA paper, Gavrilyuk et al.): P@K counts ``IoU >= K`` and mAP is the mean
    of P@K over K = 0.50, 0.55, ..., 0.95. ``protocol="mttr"`` (MTTR, ReferFormer): P@K counts
    ``IoU > K`` and mAP is COCO AP@0.5:0.95, class-agnostic, ranked by score, equal to pycocotools
    on the same masks (:func:`~acga_lightning.metrics.functional.coco_mask_ap` says how each sample
    becomes a COCO image and how an empty target is encoded: no GT annotation, so the prediction
    counts as a false positive). In both, the IoU of an empty prediction against an empty target
    is 1 (it enters P@K, overall and mean IoU as a perfect sample).

    States are per-sample records (intersection, union, target area, score, sample id), gathered
    across processes by concatenation. When ``sample_ids`` are given, ``compute`` keeps one record
    per id after the gather, so samples that DistributedSampler repeats to even out the shards
    count once, and ranks ties in COCO AP by ascending id: the result then equals a single-process
    run over the same samples. Without ids every record counts and ties rank in update order
    (rank by rank under DDP). Mixing updates with and without ids is an error.

    ``compute`` returns 0-d float64 tensors (Lightning logs them): the figures as fractions in
    [0, 1] (NaN with no samples; ``mttr`` mAP is NaN when no sample has a non-empty target) and
    ``num_samples``, the number of distinct samples counted.

    Args:
        protocol: ``"acga"`` or ``"mttr"``.
        kwargs: passed to :class:`torchmetrics.Metric` (``compute_on_cpu``, ``process_group``, ...).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    intersection: list[Tensor]
    union: list[Tensor]
    target_area: list[Tensor]
    score: list[Tensor]
    sample_id: list[Tensor]

    def __init__(self, protocol: str = "acga", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if protocol not in F.PROTOCOLS:
            raise ValueError(f"protocol must be one of {F.PROTOCOLS}, got {protocol!r}")
        self.protocol = protocol
        # Every state is float64 (integers below 2**53 are exact): when a process has no samples,
        # torchmetrics gathers an empty tensor of the metric's dtype in place of its list, and the
        # all_gather needs one dtype on every process.
        for name in ("intersection", "union", "target_area", "score", "sample_id"):
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self.set_dtype(torch.float64)

    def update(
        self,
        preds: Tensor | Sequence[Tensor],
        targets: Tensor | Sequence[Tensor],
        scores: Tensor | Sequence[float] | None = None,
        sample_ids: Tensor | Sequence[int] | None = None,
    ) -> None:
        """Add a batch: boolean masks as (B, H, W) tensors or lists of (H_i, W_i) tensors.

        ``scores`` (B,) rank predictions for ``mttr`` mAP (default 1.0 each); ``sample_ids`` (B,)
        are non-negative ints, stable across processes, used to count each sample once.
        """
        areas = F.mask_areas(preds, targets)
        n = areas.intersection.numel()
        score = self._column(scores, n, "scores", torch.float64, default=1.0)
        if not torch.isfinite(score).all():
            raise ValueError(f"scores must be finite, got {score.tolist()}")
        sample_id = self._column(sample_ids, n, "sample_ids", torch.int64, default=-1)
        if sample_ids is not None and ((sample_id < 0) | (sample_id >= _MAX_EXACT_ID)).any():
            raise ValueError(f"sample_ids must be integers in [0, 2**53), got {sample_id.tolist()}")
        for name, value in (
            ("intersection", areas.intersection),
            ("union", areas.union),
            ("target_area", areas.target_area),
            ("score", score),
            ("sample_id", sample_id),
        ):
            getattr(self, name).append(value.to(device=self.device, dtype=torch.float64))

    @staticmethod
    def _column(values: Any, n: int, name: str, dtype: torch.dtype, default: float) -> Tensor:
        if values is None:
            return torch.full((n,), default, dtype=dtype)
        if dtype == torch.int64 and isinstance(values, Tensor) and values.is_floating_point():
            raise ValueError(f"{name} must be integers, got a {values.dtype} tensor")
        column = torch.as_tensor(values).detach().to(dtype=dtype).reshape(-1)
        if column.numel() != n:
            raise ValueError(f"{name} has {column.numel()} values for {n} masks")
        return column

    def compute(self) -> dict[str, Tensor]:
        """The figures over every (distinct) sample seen since the last reset, on all processes."""
        intersection, union, target_area, score, sample_id = (
            self._gathered(name)
            for name in ("intersection", "union", "target_area", "score", "sample_id")
        )
        has_id = sample_id >= 0
        if has_id.any() and not has_id.all():
            raise ValueError(
                "sample_ids were"
                " given for some updates and not for others: give them always or never"
            )
        if has_id.any():
            sample_id, intersection, union, target_area, score = F.deduplicate(
                sample_id, intersection, union, target_area, score
            )
            if sample_id.numel() < has_id.numel():
                self._check_targets_agree()
        result = F.referring_segmentation_metrics(
            intersection.long(), union.long(), target_area.long(), score, protocol=self.protocol
        )
        dtype = torch.float32 if self.device.type == "mps" else torch.float64
        return {k: torch.tensor(v, dtype=dtype, device=self.device) for k, v in result.items()}

    def _gathered(self, name: str) -> Tensor:
        """A state as one CPU tensor (a list before the DDP sync, a tensor after it)."""
        value = getattr(self, name)
        if isinstance(value, list) and not value:
            return torch.zeros(0, dtype=torch.float64)
        return dim_zero_cat(value).cpu()

    def _check_targets_agree(self) -> None:
        """Repeated ids must carry one target: otherwise ids were reused for different samples."""
        ids, areas = self._gathered("sample_id"), self._gathered("target_area")
        order = torch.argsort(ids, stable=True)
        ids, areas = ids[order], areas[order]
        same_id = ids[1:] == ids[:-1]
        clash = same_id & (areas[1:] != areas[:-1])
        if clash.any():
            bad = int(ids[1:][clash][0])
            raise ValueError(
                f"sample_id {bad} was given for masks with different targets;"
                " sample_ids must be unique per sample"
            )
