"""The torchmetrics ``Metric`` that accumulates referring-segmentation figures over an epoch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from acga_lightning.metrics import functional as F

_MAX_EXACT_ID = 2**53  # ids are kept in float64 (see __init__)
# One record per sample, in this order, flattened into the 1-D ``records`` state.
_FIELDS = ("pred_area", "target_area", "intersection", "score", "sample_id")


class ReferringSegmentationMetrics(Metric):
    """P@0.5..0.9, mAP@0.5:0.95, overall and mean IoU of referring segmentation, DDP-exact.

    ``protocol="acga"`` (ACGA paper, Gavrilyuk et al.): P@K counts ``IoU >= K`` and mAP is the mean
    of P@K over K = 0.50, 0.55, ..., 0.95; ``"acga_release"`` is the official ACGA code's variant
    of it (IoU = (I + 1e-6) / (U + 1e-6)). ``protocol="mttr"`` (MTTR, ReferFormer): P@K counts
    ``IoU > K`` and mAP is COCO AP@0.5:0.95, class-agnostic, ranked by score, equal to pycocotools
    on the same masks (:func:`~acga_lightning.metrics.functional.coco_mask_ap` says how each sample
    becomes a COCO image and how an empty target is encoded: as MTTR's ground truth, a zero-area
    annotation that is never matched, so it counts as a miss and its prediction as a false
    positive). In all, the IoU of an empty prediction against an empty target
    is 1 (it enters P@K, overall and mean IoU as a perfect sample).

    State: one record per sample (pred area, target area, intersection, score, sample id), kept
    flat in one float64 cat-state and gathered across processes by concatenation. When
    ``sample_ids`` are given, ``compute`` keeps one record per id after the gather, so samples
    that DistributedSampler repeats to even out the shards count once, and ranks score ties in
    COCO AP by ascending id: the result equals a single-process run over the same samples. Without
    ids every record counts and ties rank in update order (rank by rank under DDP). Mixing updates
    with and without ids is an error. With ``ddp_spawn``, a metric pickled into the workers
    carries the parent's records: call ``reset()`` in ``setup`` (or use ``ddp``).

    ``compute`` returns 0-d float64 tensors (Lightning logs them): the figures as fractions in
    [0, 1] (NaN with no samples; ``mttr`` mAP is NaN with no samples) and
    ``num_samples``, the number of distinct samples counted.

    Args:
        protocol: ``"acga"``, ``"acga_release"`` or ``"mttr"``.
        kwargs: passed to :class:`torchmetrics.Metric` (``compute_on_cpu``, ``process_group``, ...).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    records: list[Tensor]

    def __init__(self, protocol: str = "acga", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if protocol not in F.PROTOCOLS:
            raise ValueError(f"protocol must be one of {F.PROTOCOLS}, got {protocol!r}")
        self.protocol = protocol
        # float64 holds every count and id below 2**53 exactly, and one flat state means one
        # all_gather. A process without samples sends an empty tensor of the metric's dtype in its
        # place, and the all_gather needs one dtype on every process: hence set_dtype.
        self.add_state("records", default=[], dist_reduce_fx="cat")
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
        areas = F._stacked_areas(preds, targets)  # (3, B) pred area, target area, intersection
        n = areas.shape[1]
        score = [1.0] * n if scores is None else _values(scores, n, "scores")
        if not all(math.isfinite(v) for v in score):
            raise ValueError(f"scores must be finite, got {score}")
        sample_id = [-1] * n if sample_ids is None else exact_ids(sample_ids, n, "sample_ids")
        if areas.device.type == "cpu" and self.device.type == "cpu":
            # The same record built in NumPy: a handful of torch ops would cost more than the
            # counting for a small batch.
            rows = np.empty((n, len(_FIELDS)), dtype=np.float64)
            rows[:, :3] = areas.numpy().T
            rows[:, 3] = score
            rows[:, 4] = sample_id
            self.records.append(torch.from_numpy(rows.reshape(-1)))  # (B * 5,)
            return
        extra = torch.tensor([score, sample_id], dtype=torch.float64, device=areas.device)
        record = torch.cat([areas.double(), extra]).T.reshape(-1)  # (B * 5,)
        self.records.append(record.to(self.device))

    def compute(self) -> dict[str, Tensor]:
        """The figures over every (distinct) sample seen since the last reset, on all processes."""
        records = self._records()  # (N, 5)
        pred_area, target_area, intersection, score, sample_id = records.T
        has_id = sample_id >= 0
        if has_id.any() and not has_id.all():
            raise ValueError(
                "sample_ids were given for some updates and not for others:"
                " give them always or never"
            )
        if has_id.any():
            sample_id, pred_area, target_area, intersection, score = F.deduplicate(
                sample_id, pred_area, target_area, intersection, score
            )
            if sample_id.numel() < records.shape[0]:
                _check_targets_agree(records)
        result = F.referring_segmentation_metrics(
            intersection.long(),
            (pred_area + target_area - intersection).long(),
            target_area.long(),
            score,
            protocol=self.protocol,
        )
        dtype = torch.float32 if self.device.type == "mps" else torch.float64
        return {k: torch.tensor(v, dtype=dtype, device=self.device) for k, v in result.items()}

    def _records(self) -> Tensor:
        """All records as one (N, 5) CPU tensor (a list before the DDP sync, a tensor after it)."""
        value = self.records
        if isinstance(value, list) and not value:
            return torch.zeros(0, len(_FIELDS), dtype=torch.float64)
        return dim_zero_cat(value).cpu().view(-1, len(_FIELDS))


def _values(values: Any, n: int, name: str) -> list:
    """``values`` (a tensor or a sequence of numbers) as a list of n Python numbers."""
    if isinstance(values, Tensor):
        values = values.detach().reshape(-1).tolist()
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} values for {n} masks")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must hold numbers, got {values}")
    return values


def exact_ids(values: Any, n: int, name: str) -> list[int]:
    """``values`` as n ints in [0, 2**53), exact in the metrics' float64 states."""
    ids = _values(values, n, name)
    if not all(float(i).is_integer() and 0 <= i < _MAX_EXACT_ID for i in ids):
        raise ValueError(f"{name} must be integers in [0, 2**53), got {ids}")
    return [int(i) for i in ids]


def _check_targets_agree(records: Tensor) -> None:
    """Repeated ids must carry one target: otherwise ids were reused for different samples."""
    ids, areas = records[:, 4], records[:, 1]
    order = torch.argsort(ids, stable=True)
    ids, areas = ids[order], areas[order]
    clash = (ids[1:] == ids[:-1]) & (areas[1:] != areas[:-1])
    if clash.any():
        bad = int(ids[1:][clash][0])
        raise ValueError(
            f"sample_id {bad} was given for masks with different targets;"
            " sample_ids must be unique per sample"
        )
