"""The weighted BCE summed over resolutions, against a hand computation."""

import math

import pytest
import torch

from acga_lightning.registry import LOSSES


def reference_wbce(logit: float, target: float, pos_weight: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(pos_weight * target * math.log(p) + (1 - target) * math.log(1 - p))


def test_wbce_matches_hand_computation_and_sums_levels():
    logits = [torch.full((1, 1, 2, 2), 0.3), torch.full((1, 1, 4, 4), -0.7)]
    target = torch.zeros(1, 4, 4)
    target[0, :2, :] = 1.0  # half the pixels; at 2x2 the bilinear resize keeps rows 0 / 1
    loss = LOSSES.build({"name": "wbce", "pos_weight": 1.5})(logits, target)
    level0 = (2 * reference_wbce(0.3, 1, 1.5) + 2 * reference_wbce(0.3, 0, 1.5)) / 4
    level1 = (8 * reference_wbce(-0.7, 1, 1.5) + 8 * reference_wbce(-0.7, 0, 1.5)) / 16
    assert loss.item() == pytest.approx(level0 + level1, rel=1e-6)


def test_bce_is_wbce_with_unit_weight():
    logits = [torch.randn(2, 1, 8, 8)]
    target = (torch.rand(2, 8, 8) > 0.5).float()
    bce = LOSSES.build("bce")(logits, target)
    wbce = LOSSES.build({"name": "wbce", "pos_weight": 1.0})(logits, target)
    torch.testing.assert_close(bce, wbce)
    assert LOSSES.build("wbce")(logits, target) > bce  # positives weigh more


def test_bad_pos_weight():
    with pytest.raises(ValueError, match="pos_weight"):
        LOSSES.build({"name": "wbce", "pos_weight": 0})
