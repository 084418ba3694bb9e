"""Referring-segmentation metrics: a torchmetrics ``Metric`` over a functional core.

``ReferringSegmentationMetrics(protocol="acga" | "mttr")`` accumulates P@K, mAP, overall and mean
IoU over an epoch, exactly across DDP processes; :mod:`acga_lightning.metrics.functional` holds the
figures as plain functions.
"""

from acga_lightning.metrics import functional
from acga_lightning.metrics.referring import ReferringSegmentationMetrics

__all__ = ["ReferringSegmentationMetrics", "functional"]
