"""Tests for acga_lightning.metrics.functional against NumPy references and pycocotools."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acga_lightning.metrics import functional as F
from tests.metrics.reference import (
    per_sample_counts,
    pycocotools_ap,
    reference_figures,
)


def random_masks(seed: int, n: int, *, empty_every: int = 4) -> tuple[list, list, list]:
    """Masks of mixed sizes (odd ones too), some empty, with blob-like overlap."""
    rng = np.random.default_rng(seed)
    preds, targets = [], []
    for i in range(n):
        h, w = int(rng.integers(3, 40)), int(rng.integers(3, 60))
        t = rng.random((h, w)) < rng.uniform(0.05, 0.6)
        p = np.where(rng.random((h, w)) < rng.uniform(0.0, 0.5), ~t, t)  # flip a share of pixels
        if i % empty_every == 1:
            t[:] = False
        if i % empty_every == 2:
            p[:] = False
        if i % (2 * empty_every) == 3:
            p[:] = t[:] = False
        preds.append(p)
        targets.append(t)
    scores = rng.choice([0.1, 0.5, 0.5, 0.9], size=n).tolist()  # many ties
    return preds, targets, scores


def ratio_masks(pairs: list[tuple[int, int]]) -> tuple[list, list]:
    """Masks whose IoU is exactly intersection/union, for each (intersection, union) pair."""
    preds, targets = [], []
    for inter, union in pairs:
        t = np.zeros((4, union + 3), dtype=bool)
        p = np.zeros_like(t)
        t[1, :union] = True  # target: union pixels; prediction: the first inter of them
        p[1, :inter] = True
        preds.append(p)
        targets.append(t)
    return preds, targets


def to_torch(masks: list) -> list[torch.Tensor]:
    return [torch.from_numpy(m) for m in masks]


def figures(preds, targets, scores=None, protocol="acga") -> dict:
    areas = F.mask_areas(to_torch(preds), to_torch(targets))
    s = None if scores is None else torch.tensor(scores, dtype=torch.float64)
    return F.referring_segmentation_metrics(*areas, scores=s, protocol=protocol)


def test_mask_areas_match_numpy_on_mixed_sizes() -> None:
    preds, targets, _ = random_masks(0, 50)
    areas = F.mask_areas(to_torch(preds), to_torch(targets))
    expected = per_sample_counts(preds, targets)
    assert areas.intersection.tolist() == [i for i, _ in expected]
    assert areas.union.tolist() == [u for _, u in expected]
    assert areas.target_area.tolist() == [int(t.sum()) for t in targets]


def test_mask_areas_full_masks_and_groups_past_the_buffer_budget() -> None:
    # All-ones masks fill every byte lane to its limit; 3 x 1.5M pixels spans several groups.
    h, w = 1201, 1251
    preds = [torch.ones(h, w, dtype=torch.bool), torch.zeros(h, w, dtype=torch.bool)]
    preds.append(torch.rand(h, w, generator=torch.Generator().manual_seed(0)) < 0.3)
    targets = [torch.ones(h, w, dtype=torch.bool)] * 3
    areas = F.mask_areas(preds, targets)
    assert areas.intersection.tolist() == [h * w, 0, int(preds[2].sum())]
    assert areas.union.tolist() == [h * w] * 3


def test_cpu_counter_equals_the_chunked_device_counter() -> None:
    # The chunked byte-lane counter (used on GPUs) also runs on CPU tensors: both must agree,
    # on mixed sizes, a non-contiguous view, all-ones masks and an empty one.
    preds, targets, _ = random_masks(3, 40)
    preds, targets = to_torch(preds), to_torch(targets)
    preds.append(torch.ones(37, 301, dtype=torch.bool))
    targets.append(torch.ones(301, 37, dtype=torch.bool).T)  # (37, 301), non-contiguous
    preds.append(torch.zeros(5, 7, dtype=torch.bool))
    targets.append(torch.zeros(5, 7, dtype=torch.bool))
    chunked = F._group_areas(preds, targets)  # (3, n) pred, target, intersection
    assert torch.equal(F._cpu_areas(preds, targets), chunked)
    assert chunked[:, -2].tolist() == [37 * 301] * 3


def test_mask_areas_batch_tensor_non_contiguous_equals_list() -> None:
    g = torch.Generator().manual_seed(1)
    preds = torch.rand(5, 13, 9, generator=g) < 0.5
    targets = torch.rand(5, 9, 13, generator=g).transpose(1, 2) < 0.5  # non-contiguous
    batch = F.mask_areas(preds, targets)
    listed = F.mask_areas(list(preds), [t.contiguous() for t in targets])
    for a, b in zip(batch, listed, strict=True):
        assert torch.equal(a, b)
    assert batch.intersection.tolist() == [
        int((p & t).sum()) for p, t in zip(preds, targets, strict=True)
    ]


@pytest.mark.parametrize(
    ("preds", "targets", "match"),
    [
        (
            torch.ones(2, 3, 3),
            torch.ones(2, 3, 3, dtype=torch.bool),
            r"preds\[0\] must be a boolean",
        ),
        ([torch.ones(3, 3, dtype=torch.bool)], [torch.ones(3, 4, dtype=torch.bool)], "shape"),
        ([torch.ones(3, 3, dtype=torch.bool)] * 2, [torch.ones(3, 3, dtype=torch.bool)], "2 masks"),
        (torch.ones(3, 3, dtype=torch.bool), torch.ones(3, 3, dtype=torch.bool), r"\(B, H, W\)"),
        (
            [torch.ones(1, 3, 3, dtype=torch.bool)],
            [torch.ones(1, 3, 3, dtype=torch.bool)],
            "boolean",
        ),
    ],
)
def test_mask_areas_rejects_bad_input(preds, targets, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        F.mask_areas(preds, targets)


@pytest.mark.parametrize("protocol", ["acga", "mttr"])
def test_figures_match_numpy_reference(protocol: str) -> None:
    preds, targets, scores = random_masks(2, 80)
    ours = figures(preds, targets, scores, protocol)
    ref = reference_figures(preds, targets, protocol)
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key
    assert set(ours) == {*ref, "map"}


def test_iou_exactly_at_thresholds_acga_counts_it_mttr_does_not() -> None:
    # IoU exactly 1/2, 11/20, 6/10, 7/10, 9/10 and an empty pair (IoU 1) from integer pixel counts.
    preds, targets = ratio_masks([(5, 10), (11, 20), (6, 10), (7, 10), (9, 10), (0, 0)])
    acga = figures(preds, targets, protocol="acga")
    mttr = figures(preds, targets, protocol="mttr")
    keys = [F.precision_key(k) for k in F.REPORTED_THRESHOLDS]
    assert [acga[k] for k in keys] == [6 / 6, 4 / 6, 3 / 6, 2 / 6, 2 / 6]
    assert [mttr[k] for k in keys] == [5 / 6, 3 / 6, 2 / 6, 2 / 6, 1 / 6]
    # mean over K = .50 .55 .60 .65 .70 .75 .80 .85 .90 .95 of the share with IoU >= K
    passing = [6, 5, 4, 3, 3, 2, 2, 2, 2, 1]
    assert acga["map"] == pytest.approx(sum(passing) / 60, abs=1e-15)
    assert acga["overall_iou"] == pytest.approx(38 / 60, abs=1e-15)
    assert acga["mean_iou"] == pytest.approx((0.5 + 0.55 + 0.6 + 0.7 + 0.9 + 1) / 6, abs=1e-15)


def test_empty_prediction_against_empty_target_is_a_perfect_sample() -> None:
    empty = np.zeros((5, 7), dtype=bool)
    for protocol in ("acga", "mttr"):
        out = figures([empty], [empty.copy()], protocol=protocol)
        assert out["precision_90"] == 1.0 and out["mean_iou"] == 1.0 and out["overall_iou"] == 1.0


def test_no_samples_gives_nan_and_zero_count() -> None:
    empty = torch.zeros(0, dtype=torch.int64)
    out = F.referring_segmentation_metrics(empty, empty, empty, protocol="mttr")
    assert out["num_samples"] == 0
    assert all(np.isnan(v) for k, v in out.items() if k != "num_samples")


def test_unknown_protocol_is_rejected() -> None:
    one = torch.ones(1, dtype=torch.int64)
    with pytest.raises(ValueError, match="protocol"):
        F.referring_segmentation_metrics(one, one, one, protocol="coco")


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_coco_ap_equals_pycocotools_on_rle_masks(seed: int) -> None:
    preds, targets, scores = random_masks(10 + seed, 40 + 7 * seed, empty_every=3 + seed)
    if seed == 3:
        scores = [1.0] * len(scores)  # the default: every score tied
    ours = figures(preds, targets, scores, protocol="mttr")["map"]
    assert ours == pycocotools_ap(preds, targets, scores, empty_target_as_annotation=True)


def test_coco_ap_counts_iou_exactly_at_each_threshold_as_a_match_like_pycocotools() -> None:
    preds, targets = ratio_masks([(k, 20) for k in range(10, 20)])  # IoU 0.50, 0.55, ..., 0.95
    scores = [0.1 * (k % 4) for k in range(10)]
    ours = figures(preds, targets, scores, protocol="mttr")["map"]
    assert ours == pycocotools_ap(preds, targets, scores)
    below = ratio_masks([(50 * k - 1, 1000) for k in range(10, 20)])  # each IoU just under
    assert figures(*below, scores, "mttr")["map"] < ours


def test_coco_ap_tie_order_follows_sample_order_like_pycocotools() -> None:
    preds, targets = ratio_masks([(0, 10), (10, 10)])  # a miss and a hit, same score
    first_miss = figures(preds, targets, [0.5, 0.5], "mttr")["map"]
    first_hit = figures(preds[::-1], targets[::-1], [0.5, 0.5], "mttr")["map"]
    assert first_miss == pycocotools_ap(preds, targets, [0.5, 0.5])
    assert first_hit == pycocotools_ap(preds[::-1], targets[::-1], [0.5, 0.5])
    assert first_hit > first_miss


def test_empty_target_is_a_missed_gt_in_coco_ap_as_in_mttr() -> None:
    # MTTR's ground truth lists every instance of the frame, empty masks too (area 0): a GT that
    # is never matched. Without that annotation the empty target's detection is only a false
    # positive and the AP is higher.
    preds, targets = ratio_masks([(10, 10), (0, 5)])
    targets[1][:] = False
    scores = [0.4, 0.9]
    ours = figures(preds, targets, scores, "mttr")["map"]
    assert ours == pycocotools_ap(preds, targets, scores, empty_target_as_annotation=True)
    ious, scores_t = torch.tensor([1.0, 1.0]), torch.tensor(scores)
    has_target = torch.tensor([True, False])
    no_annotation = F.coco_mask_ap(ious, scores_t, has_target, empty_target_is_gt=False)
    assert no_annotation == pycocotools_ap(preds, targets, scores)
    assert ours < no_annotation
    only_empty = figures(preds[1:], targets[1:], [0.9], "mttr")["map"]
    assert only_empty == 0.0
    assert pycocotools_ap(preds[1:], targets[1:], [0.9], empty_target_as_annotation=True) == 0.0
    assert np.isnan(F.coco_mask_ap(ious[1:], scores_t[1:], has_target[1:], False))


def test_deduplicate_keeps_one_record_per_id_independent_of_order() -> None:
    ids = torch.tensor([5.0, 2.0, 5.0, 7.0, 2.0])
    values = torch.tensor([1.0, 2.0, 0.5, 3.0, 2.0])
    kept_ids, kept = F.deduplicate(ids, values)
    assert kept_ids.tolist() == [2.0, 5.0, 7.0] and kept.tolist() == [2.0, 0.5, 3.0]
    perm = torch.tensor([4, 2, 0, 3, 1])
    again = F.deduplicate(ids[perm], values[perm])
    assert again[0].tolist() == kept_ids.tolist() and again[1].tolist() == kept.tolist()
