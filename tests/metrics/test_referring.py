"""Tests for ReferringSegmentationMetrics: updates, dedup, errors, and a 2-process gloo run."""

from __future__ import annotations

import math
import os
import socket
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from acga_lightning.metrics import ReferringSegmentationMetrics, functional
from tests.metrics.reference import pycocotools_ap, reference_figures
from tests.metrics.test_functional import random_masks

KEYS = {
    *(f"precision_{k}" for k in (50, 60, 70, 80, 90)),
    "map",
    "overall_iou",
    "mean_iou",
}


def dataset(seed: int = 0, n: int = 23) -> tuple[list, list, list]:
    preds, targets, scores = random_masks(seed, n)
    return [torch.from_numpy(p) for p in preds], [torch.from_numpy(t) for t in targets], scores


def as_floats(result: dict) -> dict[str, float]:
    return {k: float(v) for k, v in result.items()}


def test_exports() -> None:
    assert functional.mask_areas is not None
    assert ReferringSegmentationMetrics.higher_is_better is True
    assert ReferringSegmentationMetrics.full_state_update is False


@pytest.mark.parametrize("protocol", ["acga", "mttr"])
def test_batched_updates_match_references(protocol: str) -> None:
    preds, targets, scores = dataset()
    metric = ReferringSegmentationMetrics(protocol=protocol)
    for start in range(0, len(preds), 4):
        metric.update(
            preds[start : start + 4], targets[start : start + 4], scores[start : start + 4]
        )
    result = metric.compute()
    assert set(result) == KEYS | {"num_samples"}
    assert all(v.ndim == 0 and v.is_floating_point() for v in result.values())
    np_preds, np_targets = [p.numpy() for p in preds], [t.numpy() for t in targets]
    ref = reference_figures(np_preds, np_targets, protocol)
    if protocol == "mttr":
        # MTTR: every listed instance is a GT annotation, an empty mask too
        ref["map"] = pycocotools_ap(np_preds, np_targets, scores, True)
    for key, value in ref.items():
        assert float(result[key]) == pytest.approx(value, abs=1e-12), key


def test_batch_tensor_and_list_give_one_result() -> None:
    g = torch.Generator().manual_seed(3)
    preds, targets = (
        torch.rand(6, 11, 17, generator=g) < 0.5,
        torch.rand(6, 11, 17, generator=g) < 0.4,
    )
    a, b = ReferringSegmentationMetrics("mttr"), ReferringSegmentationMetrics("mttr")
    a.update(preds, targets)
    b.update(list(preds), list(targets), scores=torch.ones(6), sample_ids=None)
    assert as_floats(a.compute()) == as_floats(b.compute())


def test_repeated_sample_ids_count_once_and_rank_ties_by_id() -> None:
    preds, targets, scores = dataset(1, 12)
    ids = list(range(100, 112))
    once = ReferringSegmentationMetrics("mttr")
    once.update(preds, targets, scores, ids)
    twice = ReferringSegmentationMetrics("mttr")
    order = [5, 3, 11, 0, 1, 2, 4, 6, 7, 8, 9, 10, 3, 5]  # shuffled, two repeats
    twice.update(
        [preds[i] for i in order],
        [targets[i] for i in order],
        [scores[i] for i in order],
        [ids[i] for i in order],
    )
    assert as_floats(twice.compute()) == as_floats(once.compute())
    assert float(twice.compute()["num_samples"]) == 12


def test_reused_sample_id_for_different_targets_is_an_error() -> None:
    preds, targets, _ = dataset(2, 4)
    metric = ReferringSegmentationMetrics()
    metric.update(preds, targets, sample_ids=[0, 1, 2, 0])
    with pytest.raises(ValueError, match="sample_id 0"):
        metric.compute()


def test_mixing_updates_with_and_without_ids_is_an_error() -> None:
    preds, targets, _ = dataset(3, 4)
    metric = ReferringSegmentationMetrics()
    metric.update(preds[:2], targets[:2], sample_ids=[0, 1])
    metric.update(preds[2:], targets[2:])
    with pytest.raises(ValueError, match="always or never"):
        metric.compute()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scores": [1.0]}, "scores has 1 values for 2 masks"),
        ({"scores": [1.0, math.nan]}, "finite"),
        ({"sample_ids": [0, -3]}, r"sample_ids must be integers in \[0"),
        ({"sample_ids": torch.tensor([0.0, 1.5])}, "sample_ids must be integers"),
        ({"sample_ids": ["a", "b"]}, "sample_ids must hold numbers"),
    ],
)
def test_update_rejects_bad_scores_and_ids(kwargs: dict, match: str) -> None:
    preds, targets, _ = dataset(4, 2)
    with pytest.raises(ValueError, match=match):
        ReferringSegmentationMetrics().update(preds, targets, **kwargs)


def test_unknown_protocol() -> None:
    with pytest.raises(ValueError, match="protocol must be one of"):
        ReferringSegmentationMetrics(protocol="coco")


def test_reset_and_empty_compute() -> None:
    preds, targets, _ = dataset(5, 3)
    metric = ReferringSegmentationMetrics()
    metric.update(preds, targets, sample_ids=[0, 1, 2])
    metric.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        result = metric.compute()
    assert float(result["num_samples"]) == 0 and math.isnan(float(result["mean_iou"]))
    metric.update(preds[:1], targets[:1])  # no ids now: fine after a reset
    assert float(metric.compute()["num_samples"]) == 1


# ---- two gloo processes ---------------------------------------------------------------------

SHARDS = {  # uneven, with the padding repeats DistributedSampler adds (samples 0 and 8)
    0: [[0, 2, 4], [6, 8, 10, 12]],
    1: [[1, 3, 5, 7], [9, 11, 0, 8]],
}
NUM_UNIQUE = 13


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_shard(metric: ReferringSegmentationMetrics, rank: int, with_ids: bool) -> dict:
    preds, targets, scores = dataset(7, NUM_UNIQUE)
    for batch in SHARDS[rank]:
        ids = batch if with_ids else None
        metric.update(
            [preds[i] for i in batch], [targets[i] for i in batch], [scores[i] for i in batch], ids
        )
    return as_floats(metric.compute())


def _ddp_worker(rank: int, port: int, out_dir: str, leftovers: dict) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=60))
    results = {}
    for name, metric in leftovers.items():
        metric.reset()  # the ddp_spawn trap: a pickled metric arrives with the parent's states
        results[name] = _run_shard(metric, rank, with_ids=not name.endswith("no_ids"))
        results[name + "_again"] = as_floats(metric.compute())  # local states survive the sync
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def _single_process(protocol: str) -> dict:
    preds, targets, scores = dataset(7, NUM_UNIQUE)
    metric = ReferringSegmentationMetrics(protocol)
    metric.update(preds, targets, scores, list(range(NUM_UNIQUE)))
    return as_floats(metric.compute())


@pytest.mark.ddp
def test_two_gloo_processes_equal_one_process(tmp_path) -> None:
    leftovers = {}
    for name in ("acga", "mttr", "acga_no_ids"):
        metric = ReferringSegmentationMetrics(name.split("_")[0])
        preds, targets, _ = dataset(8, 5)
        metric.update(preds, targets, sample_ids=[0, 1, 2, 3, 4] if name != "acga_no_ids" else None)
        leftovers[name] = metric
    mp.spawn(_ddp_worker, args=(_free_port(), str(tmp_path), leftovers), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert ranks[0] == ranks[1]
    for protocol in ("acga", "mttr"):
        single = _single_process(protocol)
        assert ranks[0][protocol] == single, protocol
        assert ranks[0][protocol + "_again"] == single
        assert single["num_samples"] == NUM_UNIQUE
    # Without ids the repeats count twice: 15 records instead of 13.
    assert ranks[0]["acga_no_ids"]["num_samples"] == 15
