"""The space-to-depth stem equals the strided 7x7x7 convolution."""

import pytest
import torch
import torch.nn.functional as F

from acga_lightning.models.fast_stem import strided_conv3d_via_space_to_depth


@pytest.mark.parametrize("size", [(21, 21, 21), (13, 22, 17), (7, 8, 9)])
def test_space_to_depth_conv_equals_strided_conv(size):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    weight = torch.randn(5, 3, 7, 7, 7, dtype=torch.float64)
    direct = F.conv3d(x, weight, stride=2)
    fast = strided_conv3d_via_space_to_depth(x, weight)
    assert fast.shape == direct.shape
    torch.testing.assert_close(fast, direct, rtol=1e-12, atol=1e-10)
