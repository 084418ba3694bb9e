"""ReferringVideoMetrics: J and F averaged per expression, then over expressions, DDP-exact.

The per-frame reference is in ``tests/metrics/test_davis.py``.
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

from acga_lightning.metrics import ReferringVideoMetrics
from tests.metrics.test_davis import blobs, ref_f, ref_j


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
