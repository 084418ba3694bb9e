"""J and F frame by frame against an independent transcription of the DAVIS-2017 definitions.

The reference below is written from the toolkit's definitions with plain Python loops and
``scipy.ndimage`` (no code shared with ``acga_lightning.metrics.davis``): boundary pixels by the
right / lower / lower-right neighbour rule, matched within a disk of ``ceil(0.008 x diagonal)``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

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
