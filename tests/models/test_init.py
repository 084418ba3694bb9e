"""init: the official initialisation touches Linear and BatchNorm only, as documented."""

from __future__ import annotations

import torch
from torch import nn

from acga_lightning.models.init import official_init


def test_official_init_draws_linear_and_batchnorm_and_leaves_convolutions() -> None:
    torch.manual_seed(0)
    head = nn.Sequential(nn.Linear(256, 512), nn.BatchNorm2d(4096), nn.Conv2d(3, 4, 3))
    conv_before = head[2].weight.detach().clone()
    with torch.no_grad():
        head.apply(official_init)
    head.requires_grad_(False)
    linear, norm = head[0], head[1]
    assert torch.equal(linear.bias, torch.zeros(512)) and torch.equal(norm.bias, torch.zeros(4096))
    assert abs(float(linear.weight.std()) - 0.02) < 0.001
    assert (
        abs(float(norm.weight.mean()) - 1.0) < 0.002
        and abs(float(norm.weight.std()) - 0.02) < 0.002
    )
    assert torch.equal(head[2].weight, conv_before)
    official_init(linear, std=0.5)
    assert abs(float(linear.weight.std()) - 0.5) < 0.02
