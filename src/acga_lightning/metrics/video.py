"""The torchmetrics ``Metric`` for referring video object segmentation: J, F and J&F."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from acga_lightning.metrics.davis import BOUNDARY_THRESHOLD, boundary_f_measure, region_similarity
from acga_lightning.metrics.referring import exact_ids

# One record per frame, flattened into the 1-D ``records`` state.
_FIELDS = ("expression_id", "frame_id", "j", "f")


class ReferringVideoMetrics(Metric):
    """Region similarity J, boundary F-measure F and J&F, DAVIS-2017 definitions, DDP-exact.

    Each update scores frames: a predicted and a true boolean mask, the expression the frame
    belongs to and the frame's id (both non-negative ints, stable across processes). ``compute``
    keeps one record per (expression, frame) after gathering, averages J and F over each
    expression's frames, then over expressions, so a frame that DistributedSampler repeats counts
    once and the result equals a one-process run. See :mod:`acga_lightning.metrics.davis` for J
    and F.

    ``compute`` returns 0-d float64 tensors: ``j``, ``f``, ``jf`` ((J + F) / 2), fractions in
    [0, 1] (NaN with no frames), and ``num_expressions``, ``num_frames``.

    Args:
        boundary_threshold: F's match distance as a fraction of the image diagonal (0.008).
        kwargs: passed to :class:`torchmetrics.Metric`.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    records: list[Tensor]

    def __init__(self, boundary_threshold: float = BOUNDARY_THRESHOLD, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not boundary_threshold > 0:
            raise ValueError(f"boundary_threshold must be positive, got {boundary_threshold}")
        self.boundary_threshold = boundary_threshold
        self.add_state("records", default=[], dist_reduce_fx="cat")
        self.set_dtype(torch.float64)

    def update(
        self,
        preds: Tensor | Sequence[Tensor],
        targets: Tensor | Sequence[Tensor],
        expression_ids: Tensor | Sequence[int],
        frame_ids: Tensor | Sequence[int],
        voids: Sequence[Tensor | None] | None = None,
    ) -> None:
        """Add frames: boolean (B, H, W) tensors or lists of (H_i, W_i) masks, with their ids.

        ``voids``: optional per-frame boolean masks of pixels to ignore (DAVIS label 255).
        """
        preds, targets = list(preds), list(targets)
        n = len(preds)
        if len(targets) != n:
            raise ValueError(f"{n} predictions for {len(targets)} targets")
        expressions = exact_ids(expression_ids, n, "expression_ids")
        frames = exact_ids(frame_ids, n, "frame_ids")
        voids = [None] * n if voids is None else list(voids)
        if len(voids) != n:
            raise ValueError(f"voids has {len(voids)} masks for {n} frames")
        rows = np.empty((n, len(_FIELDS)), dtype=np.float64)
        for i, (pred, target, void) in enumerate(zip(preds, targets, voids, strict=True)):
            pred, target = torch.as_tensor(pred).cpu(), torch.as_tensor(target).cpu()
            void = None if void is None else torch.as_tensor(void).cpu()
            rows[i] = (
                expressions[i],
                frames[i],
                region_similarity(pred, target, void),
                boundary_f_measure(pred, target, void, self.boundary_threshold),
            )
        self.records.append(torch.from_numpy(rows.reshape(-1)).to(self.device))

    def compute(self) -> dict[str, Tensor]:
        """J, F and J&F over every distinct (expression, frame) seen, on all processes."""
        records = self._records()  # (N, 4)
        if records.shape[0] == 0:
            nan = float("nan")
            result = {"j": nan, "f": nan, "jf": nan, "num_expressions": 0.0, "num_frames": 0.0}
        else:
            _check_repeats_agree(records)
            # One record per (expression, frame): the first of each, in a stable order.
            _, first = np.unique(records[:, :2].numpy(), axis=0, return_index=True)
            records = records[torch.as_tensor(np.sort(first))]
            ids, inverse = torch.unique(records[:, 0], return_inverse=True)
            sums = torch.zeros(len(ids), 2, dtype=torch.float64).index_add_(
                0, inverse, records[:, 2:]
            )
            # the mean over each expression's frames, then over expressions
            j, f = (sums / torch.bincount(inverse).double()[:, None]).mean(dim=0).tolist()
            result = {"j": j, "f": f, "jf": (j + f) / 2, "num_expressions": float(len(ids)),
                      "num_frames": float(records.shape[0])}  # fmt: skip
        return {
            k: torch.tensor(v, dtype=torch.float64, device=self.device) for k, v in result.items()
        }

    def _records(self) -> Tensor:
        value = self.records
        if isinstance(value, list) and not value:
            return torch.zeros(0, len(_FIELDS), dtype=torch.float64)
        return dim_zero_cat(value).cpu().view(-1, len(_FIELDS))


def _check_repeats_agree(records: Tensor) -> None:
    """A repeated (expression, frame) must carry the same scores, or its ids were reused."""
    keys = records[:, :2].numpy()
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    rows = records.numpy()[order]
    same = np.all(rows[1:, :2] == rows[:-1, :2], axis=1)
    clash = same & np.any(rows[1:, 2:] != rows[:-1, 2:], axis=1)
    if clash.any():
        expression, frame = rows[1:][clash][0, :2].astype(int)
        raise ValueError(
            f"expression {expression} frame {frame} was scored twice with different masks; "
            "(expression_id, frame_id) must be unique per frame"
        )
