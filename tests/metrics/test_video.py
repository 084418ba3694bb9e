"""J, F and J&F against an independent transcription of the DAVIS-2017 definitions.

The reference below is written from the toolkit's definitions with plain Python loops and
``scipy.ndimage`` (no code shared with ``acga_lightning.metrics.davis``): boundary pixels by the
right / lower / lower-right neighbour rule, matched within a disk of ``ceil(0.008 x diagonal)``.
"""

from __future__ import annotations

import math
import os
import socket
from datetime import timedelta

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from scipy import ndimage

from acga_lightning.metrics import ReferringVideoMetrics
from acga_lightning.metrics.davis import boundary_f_measure, boundary_map, region_similarity


# ---- the independent reference ----------------------------------------------------------------
def ref_boundary(mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    out = np.zeros((h, w), dtype=bool)
    for y in range(h):
        for x in range(w):
            v = bool(mask[y, x])
            right = bool(mask[y, x + 1]) if x + 1 < w else False
            down = bool(mask[y + 1, x]) if y + 1 < h else False
            diag = bool(mask[y + 1, x + 1]) if (x + 1 < w and y + 1 < h) else False
            if y == h - 1 and x == w - 1:
                out[y, x] = False
            elif y == h - 1:
                out[y, x] = v != right
            elif x == w - 1:
                out[y, x] = v != down
            else:
                out[y, x] = v != right or v != down or v != diag
    return out


def ref_j(pred: np.ndarray, target: np.ndarray, void: np.ndarray | None = None) -> float:
    if void is not None:
        pred, target = pred & ~void, target & ~void
    union = np.logical_or(pred, target).sum()
    return 1.0 if union == 0 else np.logical_and(pred, target).sum() / union


def ref_f(pred: np.ndarray, target: np.ndarray, void: np.ndarray | None = None) -> float:
    if void is not None:
        pred, target = pred & ~void, target & ~void
    radius = math.ceil(0.008 * math.sqrt(pred.shape[0] ** 2 + pred.shape[1] ** 2))
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    structure = xx**2 + yy**2 <= radius**2
    pb, tb = ref_boundary(pred), ref_boundary(target)
    if pb.sum() == 0 and tb.sum() == 0:
        return 1.0
    if pb.sum() == 0 or tb.sum() == 0:
        return 0.0
    precision = (pb & ndimage.binary_dilation(tb, structure)).sum() / pb.sum()
    recall = (tb & ndimage.binary_dilation(pb, structure)).sum() / tb.sum()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def blobs(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), dtype=bool)
    for _ in range(rng.integers(0, 3)):
        y, x = rng.integers(0, h), rng.integers(0, w)
        r = rng.integers(1, max(2, min(h, w) // 3))
        yy, xx = np.mgrid[:h, :w]
        mask |= (yy - y) ** 2 + (xx - x) ** 2 <= r**2
    return mask


def hand_made() -> list[tuple[np.ndarray, np.ndarray]]:
    h, w = 24, 40
    empty = np.zeros((h, w), dtype=bool)
    one = empty.copy()
    one[5, 7] = True
    one_far = empty.copy()
    one_far[20, 35] = True
    thin = empty.copy()
    thin[:, 10] = True
    thin_shifted = empty.copy()
    thin_shifted[:, 11] = True
    border = empty.copy()
    border[0, :] = True
    border[:, -1] = True
    full = np.ones((h, w), dtype=bool)
    box = empty.copy()
    box[4:12, 6:20] = True
    return [
        (empty, empty), (empty, one), (one, empty), (one, one), (one, one_far),
        (thin, thin_shifted), (border, border), (border, box), (full, full), (full, box),
        (box, full), (box, empty),
    ]  # fmt: skip


def cases() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    random = [(blobs(rng, h, w), blobs(rng, h, w)) for h, w in [(30, 50)] * 8 + [(17, 9)] * 4]
    return hand_made() + random


# ---- J and F, frame by frame ------------------------------------------------------------------
@pytest.mark.parametrize("index", range(len(cases())))
def test_j_and_f_equal_the_reference(index: int) -> None:
    pred, target = cases()[index]
    p, t = torch.from_numpy(pred), torch.from_numpy(target)
    assert region_similarity(p, t) == pytest.approx(ref_j(pred, target), abs=1e-6)
    assert boundary_f_measure(p, t) == pytest.approx(ref_f(pred, target), abs=1e-6)
    assert torch.equal(boundary_map(p), torch.from_numpy(ref_boundary(pred)))


def test_conventions_for_empty_masks_and_void() -> None:
    empty = torch.zeros(10, 10, dtype=torch.bool)
    one = empty.clone()
    one[3, 3] = True
    assert region_similarity(empty, empty) == 1.0 and boundary_f_measure(empty, empty) == 1.0
    assert region_similarity(empty, one) == 0.0 and boundary_f_measure(one, empty) == 0.0
    void = one.clone()  # the only foreground is void: both masks are empty after it
    assert region_similarity(one, one.clone(), void) == 1.0
    rng = np.random.default_rng(3)
    pred, target, v = blobs(rng, 20, 30), blobs(rng, 20, 30), blobs(rng, 20, 30)
    got = boundary_f_measure(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(v))
    assert got == pytest.approx(ref_f(pred, target, v), abs=1e-6)
    with pytest.raises(ValueError, match="one size"):
        region_similarity(empty, torch.zeros(10, 11, dtype=torch.bool))


# ---- the Metric: per expression, then over expressions -----------------------------------------
def video_dataset(seed: int = 0) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """(expression, frame, pred, target): 4 expressions of 2 to 5 frames."""
    rng = np.random.default_rng(seed)
    rows = []
    for expression, frames in enumerate([2, 5, 3, 4]):
        for frame in range(frames):
            rows.append((expression, frame, blobs(rng, 20, 28), blobs(rng, 20, 28)))
    return rows


def reference_video(rows) -> dict[str, float]:
    per = {}
    for expression, _, pred, target in rows:
        per.setdefault(expression, []).append((ref_j(pred, target), ref_f(pred, target)))
    j = float(np.mean([np.mean([x[0] for x in v]) for v in per.values()]))
    f = float(np.mean([np.mean([x[1] for x in v]) for v in per.values()]))
    return {"j": j, "f": f, "jf": (j + f) / 2}


def update(metric: ReferringVideoMetrics, rows) -> None:
    metric.update(
        [torch.from_numpy(r[2]) for r in rows], [torch.from_numpy(r[3]) for r in rows],
        [r[0] for r in rows], [r[1] for r in rows],
    )  # fmt: skip


def test_metric_averages_frames_then_expressions_and_counts_repeats_once() -> None:
    rows = video_dataset()
    metric = ReferringVideoMetrics()
    update(metric, rows[:5])
    update(metric, rows[3:])  # rows 3 and 4 repeated, as a padding sampler would
    result = {k: float(v) for k, v in metric.compute().items()}
    for key, value in reference_video(rows).items():
        assert result[key] == pytest.approx(value, abs=1e-6), key
    assert result["num_frames"] == len(rows) and result["num_expressions"] == 4
    # The average is per expression first: not the plain mean over frames.
    frame_mean = np.mean([ref_j(r[2], r[3]) for r in rows])
    assert abs(result["j"] - frame_mean) > 1e-3


def test_metric_rejects_reused_ids_and_bad_input() -> None:
    rows = video_dataset()
    metric = ReferringVideoMetrics()
    update(metric, rows[:2])
    clash = [(rows[0][0], rows[0][1], rows[5][2], rows[5][3])]
    update(metric, clash)
    with pytest.raises(ValueError, match="scored twice with different masks"):
        metric.compute()
    with pytest.raises(ValueError, match="expression_ids"):
        metric.update([torch.zeros(2, 2)], [torch.zeros(2, 2)], [-1], [0])
    empty = ReferringVideoMetrics()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(float(empty.compute()["jf"]))


# ---- two gloo processes ------------------------------------------------------------------------
SHARDS = {0: [0, 2, 4, 6, 8, 10, 12], 1: [1, 3, 5, 7, 9, 11, 13, 0]}  # 0 repeated, uneven


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=60))
    rows = video_dataset(5)
    metric = ReferringVideoMetrics()
    update(metric, [rows[i] for i in SHARDS[rank][:3]])
    update(metric, [rows[i] for i in SHARDS[rank][3:]])
    result = {k: float(v) for k, v in metric.compute().items()}
    torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


@pytest.mark.ddp
def test_two_gloo_processes_equal_one_process(tmp_path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    single = ReferringVideoMetrics()
    update(single, video_dataset(5))
    expected = {k: float(v) for k, v in single.compute().items()}
    assert ranks[0] == ranks[1] == expected
