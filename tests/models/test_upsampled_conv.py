"""The factorised conv3x3-of-upsampled-map equals the direct computation."""

import pytest
import torch
import torch.nn.functional as F

from acga_lightning.models.decoders import FCNHead
from acga_lightning.models.upsampled_conv import upsampled_conv3x3


@pytest.mark.parametrize(
    ("low", "big"), [((4, 4), (16, 16)), ((3, 5), (12, 20)), ((2, 2), (32, 32))]
)
def test_upsampled_conv_equals_conv_of_upsampled(low, big):
    torch.manual_seed(0)
    x = torch.randn(2, 5, *low, dtype=torch.float64)
    weight = torch.randn(3, 5, 3, 3, dtype=torch.float64)
    direct = F.conv2d(
        F.interpolate(x, size=big, mode="bilinear", align_corners=False), weight, padding=1
    )
    torch.testing.assert_close(upsampled_conv3x3(x, weight, big), direct, rtol=1e-12, atol=1e-12)


def test_fcn_head_switch_is_exact_and_keeps_gradients():
    torch.manual_seed(0)
    head = FCNHead(feature_channels=4, text_channels=6, width=5).double()
    features = torch.randn(2, 4, 16, 16, dtype=torch.float64)
    text = torch.randn(2, 6, 4, 4, dtype=torch.float64, requires_grad=True)
    head.factorized_text = True
    fast = head(features, text)
    (grad_fast,) = torch.autograd.grad(fast.square().sum(), text)
    head.factorized_text = False
    plain = head(features, text)
    (grad_plain,) = torch.autograd.grad(plain.square().sum(), text)
    torch.testing.assert_close(fast, plain, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_fast, grad_plain, rtol=1e-10, atol=1e-12)
