"""Speed of ReferringSegmentationMetrics against a plain NumPy per-sample loop.

The baseline computes the figures as the official ACGA code does: per sample, NumPy
``logical_and`` / ``logical_or`` sums, the IoU, then a comparison with each threshold. Ours is
``update`` (in batches of B masks, as a validation loop calls it) plus ``compute``. Both run on the
same 1,000 random masks of 320 x (400..600) pixels in one process, and must agree.

    python benchmarks/metrics.py [--samples 1000] [--repeats 3] [--threads 1] [--device cuda]

``--device cuda`` keeps the masks on the GPU for ours (the baseline stays NumPy on the CPU).
On a busy machine pass ``--threads 1``: oversubscribed intra-op threads make torch's CPU
timings erratic.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

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


def numpy_loop(preds: list[np.ndarray], targets: list[np.ndarray]) -> dict[str, float]:
    """The official-code way: one sample at a time."""
    hits = np.zeros(len(THRESHOLDS))
    map_hits = np.zeros(len(MAP_THRESHOLDS))
    cum_i = cum_u = sum_iou = 0.0
    for p, t in zip(preds, targets, strict=True):
        inter = np.sum(np.logical_and(p, t))
        union = np.sum(np.logical_or(p, t))
        iou = inter / union if union > 0 else 1.0
        for k, thr in enumerate(THRESHOLDS):
            hits[k] += iou >= thr
        for k, thr in enumerate(MAP_THRESHOLDS):
            map_hits[k] += iou >= thr
        cum_i += inter
        cum_u += union
        sum_iou += iou
    n = len(preds)
    out = {f"P@{k}": h / n for k, h in zip(THRESHOLDS, hits, strict=True)}
    out["mAP@0.5:0.95"] = float(np.mean(map_hits / n))
    out["overall_iou"] = cum_i / cum_u
    out["mean_iou"] = sum_iou / n
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 16, 1000])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="where our metric runs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    preds, targets = make_masks(args.samples)
    np_preds, np_targets = [p.numpy() for p in preds], [t.numpy() for t in targets]
    preds = [p.to(args.device) for p in preds]
    targets = [t.to(args.device) for t in targets]
    n = args.samples
    base_s, base = best_time(lambda: numpy_loop(np_preds, np_targets), args.repeats)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(
        f"{n} masks of 320 x (400..600); ours on {where}, torch threads {torch.get_num_threads()}"
    )
    print(f"{'method':<34}{'us/sample':>10}{'speed-up':>10}")
    print(f"{'numpy per-sample loop (baseline)':<34}{base_s / n * 1e6:>10.1f}{1.0:>10.2f}")
    for batch in args.batches:
        ours_s, result = best_time(lambda b=batch: ours(preds, targets, b), args.repeats)
        for key, value in base.items():
            if abs(result[key] - value) > 1e-12:
                raise AssertionError(f"{key}: ours {result[key]} != baseline {value}")
        label = f"ReferringSegmentationMetrics B={batch}"
        print(f"{label:<34}{ours_s / n * 1e6:>10.1f}{base_s / ours_s:>10.2f}")


if __name__ == "__main__":
    main()
