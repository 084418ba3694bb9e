"""Referring-segmentation metrics: a torchmetrics ``Metric`` over a functional core.

``ReferringSegmentationMetrics(protocol="acga" | "mttr")`` accumulates P@K, mAP, overall and mean
IoU over an epoch, exactly across DDP processes; :mod:`acga_lightning.metrics.functional` holds the
figures as plain functions. ``ReferringVideoMetrics`` gives the video benchmarks' J, F and J&F
(DAVIS-2017 definitions, :mod:`acga_lightning.metrics.davis`), exactly across DDP too.
"""

from acga_lightning.metrics import davis, functional
from acga_lightning.metrics.referring import ReferringSegmentationMetrics
from acga_lightning.metrics.video import ReferringVideoMetrics

__all__ = ["ReferringSegmentationMetrics", "ReferringVideoMetrics", "davis", "functional"]
