"""Speed of ReferringSegmentationMetrics against plain NumPy per-sample loops.

Two baselines, both run on the same masks in the same process:

- ``official ACGA code`` (the baseline): the operations of the official evaluation
  (``util/tool.py``: ``calculate_IoU`` and ``report_result``), written afresh here. Masks arrive as
  uint8 0/1 arrays (its ``resize_and_crop`` output); per sample, intersection and union are
  ``(pred & (gt == 1)).astype(float).sum()`` and ``(pred | (gt == 1)).astype(float).sum()``, the IoU
  is ``(I + 1e-6) / (U + 1e-6)``; P@K and the mean over K = 0.50..0.95 are then counted by Python
  loops over the stored IoUs, one threshold at a time.
- ``lean NumPy loop`` (a stricter bar): boolean masks, ``np.logical_and`` / ``np.logical_or``
  counted with ``np.sum``, one pass over the IoUs per threshold.

Ours is ``update`` (in batches of B masks, as a validation loop calls it) plus ``compute``, on
boolean tensors. Everything runs on the same 1,000 random masks of 320 x (400..600) pixels and must
agree (the official epsilon moves IoUs by < 1e-6).

    python benchmarks/metrics.py [--samples 1000] [--repeats 3] [--threads 1] [--device cuda]
    python benchmarks/metrics.py --quick   # 40 masks, one pass: seconds

Every run checks that every row returns the official loop's figures (exit status 1 otherwise).

``--device cuda`` keeps the masks on the GPU for ours (the baselines stay NumPy on the CPU).
On a busy machine pass ``--threads 1``: oversubscribed intra-op threads make torch's CPU
timings erratic.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _checks import check_metrics, passed, require

from acga_lightning.metrics import ReferringSegmentationMetrics

THRESHOLDS = [0.5, 0.6, 0.7, 0.8, 0.9]
MAP_THRESHOLDS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


def make_masks(n: int, seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Blob-like target masks and predictions that overlap them, 320 x (400..600)."""
    g = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for _ in range(n):
        w = int(torch.randint(400, 601, (1,), generator=g))
        ys, xs = torch.arange(320)[:, None], torch.arange(w)[None, :]
        cy, cx, r = (torch.rand(3, generator=g) * torch.tensor([320, w, 150])).tolist()
        targets.append((ys - cy) ** 2 + (xs - cx) ** 2 < r**2)
        dy, dx = (torch.randn(2, generator=g) * 20).tolist()
        preds.append((ys - cy - dy) ** 2 + (xs - cx - dx) ** 2 < (r * 1.1) ** 2)
    return preds, targets


SMOOTH = 1e-6  # the official code's epsilon: the IoU of two empty masks is 1


def official_loop(preds: list[np.ndarray], targets: list[np.ndarray]) -> dict[str, float]:
    """The official ACGA evaluation's operations on uint8 0/1 masks, one sample at a time."""
    ious, inters, unions = [], [], []
    for p, t in zip(preds, targets, strict=True):
        inter = (p & (t == 1.0)).astype(float).sum()
        union = (p | (t == 1.0)).astype(float).sum()
        ious.append((inter + SMOOTH) / (union + SMOOTH))
        inters.append(inter)
        unions.append(union)
    n = len(ious)
    out = {}
    for thr in THRESHOLDS:
        hit = np.zeros((n, 1))
        for i in range(n):
            if ious[i] >= thr:
                hit[i] = 1
        out[f"precision_{round(thr * 100)}"] = hit.sum() / n
    per_threshold = []
    for thr in range(50, 96, 5):
        hit = np.zeros((n, 1))
        for i in range(n):
            if ious[i] >= thr / 100.0:
                hit[i] = 1
        per_threshold.append(hit.sum() / n)
    out["map"] = float(np.mean(np.array(per_threshold)))
    out["overall_iou"] = np.array(inters).sum() / np.array(unions).sum()
    out["mean_iou"] = float(np.mean(np.array(ious)))
    return out


def lean_loop(preds: list[np.ndarray], targets: list[np.ndarray]) -> dict[str, float]:
    """A leaner NumPy loop: boolean masks, logical_and / logical_or, vectorised thresholds."""
    inters = np.empty(len(preds))
    unions = np.empty(len(preds))
    for k, (p, t) in enumerate(zip(preds, targets, strict=True)):
        inters[k] = np.count_nonzero(np.logical_and(p, t))
        unions[k] = np.count_nonzero(np.logical_or(p, t))
    ious = np.where(unions > 0, inters / np.maximum(unions, 1), 1.0)
    out = {f"precision_{round(thr * 100)}": float(np.mean(ious >= thr)) for thr in THRESHOLDS}
    out["map"] = float(np.mean([np.mean(ious >= thr) for thr in MAP_THRESHOLDS]))
    out["overall_iou"] = float(inters.sum() / unions.sum())
    out["mean_iou"] = float(ious.mean())
    return out


def ours(preds: list[torch.Tensor], targets: list[torch.Tensor], batch: int) -> dict[str, float]:
    metric = ReferringSegmentationMetrics(protocol="acga").to(preds[0].device)
    for s in range(0, len(preds), batch):
        metric.update(
            preds[s : s + batch],
            targets[s : s + batch],
            sample_ids=range(s, min(s + batch, len(preds))),
        )
    return {k: float(v) for k, v in metric.compute().items()}


def best_time(fn, repeats: int) -> tuple[float, dict]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def check(name: str, result: dict[str, float], reference: dict[str, float], tol: float) -> None:
    for key, value in reference.items():
        require(abs(result[key] - value) <= tol, f"{key}: {name} gives {result[key]}, not {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 masks, one pass: CI's check")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 16, 1000])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="where our metric runs")
    args = parser.parse_args()
    began = time.perf_counter()
    if args.quick:
        args.samples, args.repeats, args.batches = 40, 1, [4, 40]
    if args.threads:
        torch.set_num_threads(args.threads)
    preds, targets = make_masks(args.samples)
    u8_preds = [p.numpy().astype(np.uint8) for p in preds]  # what the official code holds
    u8_targets = [t.numpy().astype(np.uint8) for t in targets]
    np_preds, np_targets = [p.numpy() for p in preds], [t.numpy() for t in targets]
    preds = [p.to(args.device) for p in preds]
    targets = [t.to(args.device) for t in targets]
    n = args.samples
    official_s, official = best_time(lambda: official_loop(u8_preds, u8_targets), args.repeats)
    lean_s, lean = best_time(lambda: lean_loop(np_preds, np_targets), args.repeats)
    check("the lean loop", lean, official, 1e-6)
    check_metrics("the official loop", official)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(
        f"{n} masks of 320 x (400..600); ours on {where}, torch threads {torch.get_num_threads()}"
    )
    header = f"{'method':<40}{'us/sample':>10}{'vs official':>12}{'vs lean':>9}"
    print(header)
    for label, seconds in (("official ACGA code's loop (baseline)", official_s),
                           ("lean NumPy loop", lean_s)):  # fmt: skip
        print(f"{label:<40}{seconds / n * 1e6:>10.1f}{official_s / seconds:>12.2f}"
              f"{lean_s / seconds:>9.2f}")  # fmt: skip
    for batch in args.batches:
        ours_s, result = best_time(lambda b=batch: ours(preds, targets, b), args.repeats)
        check("ours", result, lean, 1e-12)
        label = f"ReferringSegmentationMetrics B={batch}"
        print(f"{label:<40}{ours_s / n * 1e6:>10.1f}{official_s / ours_s:>12.2f}"
              f"{lean_s / ours_s:>9.2f}")  # fmt: skip
    print("\ntarget: ours >= 5x faster than the official code's loop")
    passed("metrics", time.perf_counter() - began)


if __name__ == "__main__":
    main()
