"""Independent NumPy references for the metric tests, written from the definitions.

Nothing here imports acga_lightning: a bug in the implementation cannot hide in shared code.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

THRESHOLDS = [0.5, 0.6, 0.7, 0.8, 0.9]
ACGA_MAP_THRESHOLDS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


def per_sample_counts(preds: list[np.ndarray], targets: list[np.ndarray]) -> list[tuple[int, int]]:
    """(intersection, union) per sample, one sample at a time."""
    out = []
    for p, t in zip(preds, targets, strict=True):
        out.append((int(np.logical_and(p, t).sum()), int(np.logical_or(p, t).sum())))
    return out


def reference_figures(preds: list[np.ndarray], targets: list[np.ndarray], protocol: str) -> dict:
    """Every figure but the mttr mAP, from the definitions (empty vs empty has IoU 1)."""
    counts = per_sample_counts(preds, targets)
    ious = [1.0 if u == 0 else i / u for i, u in counts]
    n = len(ious)
    if protocol == "acga":
        passes = lambda v, k: v >= k  # noqa: E731
    else:
        passes = lambda v, k: v > k  # noqa: E731
    out = {f"precision_{round(k * 100)}": sum(passes(v, k) for v in ious) / n for k in THRESHOLDS}
    if protocol == "acga":
        out["map"] = sum(sum(v >= k for v in ious) / n for k in ACGA_MAP_THRESHOLDS) / 10
    total_i = sum(i for i, _ in counts)
    total_u = sum(u for _, u in counts)
    out["overall_iou"] = 1.0 if total_u == 0 else total_i / total_u
    out["mean_iou"] = sum(ious) / n
    out["num_samples"] = float(n)
    return out


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def pycocotools_ap(
    preds: list[np.ndarray],
    targets: list[np.ndarray],
    scores: list[float],
    empty_target_as_annotation: bool = False,
) -> float:
    """pycocotools segm AP@[0.5:0.95] (stats[0]), class-agnostic; image i+1 is sample i.

    An empty target gets no GT annotation unless ``empty_target_as_annotation``, which adds a
    zero-area one instead.
    """
    images, annotations, detections = [], [], []
    for i, (p, t, s) in enumerate(zip(preds, targets, scores, strict=True)):
        h, w = t.shape
        images.append({"id": i + 1, "height": h, "width": w})
        if t.any() or empty_target_as_annotation:
            rle = _rle(t)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": 1,
                    "segmentation": rle,
                    "area": float(t.sum()),
                    "bbox": list(mask_utils.toBbox(rle)),
                    "iscrowd": 0,
                }
            )
        detections.append(
            {"image_id": i + 1, "category_id": 1, "segmentation": _rle(p), "score": s}
        )
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "actor"}],
    }
    gt.createIndex()
    evaluator = COCOeval(gt, gt.loadRes(detections), "segm")
    evaluator.params.useCats = 0
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return float(evaluator.stats[0])
