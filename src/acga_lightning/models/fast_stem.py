"""I3D's 7x7x7 stride-2 stem as a stride-1 4x4x4 convolution on a space-to-depth input.

A convolution with 3 input channels uses tensor cores poorly. Folding each 2x2x2 block of the
(padded) clip into channels turns ``Conv3d(3, 64, 7, stride=2)`` into ``Conv3d(24, 64, 4,
stride=1)`` whose kernel is the original one zero-padded to 8x8x8 and regrouped the same way:

    out[t] = sum_{k<7} w[k] x[2t + k] = sum_{j<4} sum_{p<2} w[2j + p] y[t + j][p],
    with y[t][p] = x[2t + p] and w[7] = 0,

in each of the three dimensions. The result is the same convolution (tested against the direct
one in float64), with 1.5x the multiply-adds but a shape the GPU's matrix units handle well.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """(B, C, 2T, 2H, 2W) -> (B, 8C, T, H, W), channel order (C, p_t, p_h, p_w)."""
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t // 2, 2, h // 2, 2, w // 2, 2)
    x = x.permute(0, 1, 3, 5, 7, 2, 4, 6)  # (B, C, 2, 2, 2, T, H, W)
    return x.reshape(b, c * 8, t // 2, h // 2, w // 2)


def space_to_depth_kernel(weight: torch.Tensor) -> torch.Tensor:
    """(O, C, k, k, k) stride-2 kernel -> (O, 8C, ceil(k/2), ...) stride-1 kernel."""
    o, c, kt, kh, kw = weight.shape
    weight = F.pad(weight, (0, kw % 2, 0, kh % 2, 0, kt % 2))  # even sizes, zero taps appended
    kt, kh, kw = (n + n % 2 for n in (kt, kh, kw))
    weight = weight.reshape(o, c, kt // 2, 2, kh // 2, 2, kw // 2, 2)
    weight = weight.permute(0, 1, 3, 5, 7, 2, 4, 6)  # (O, C, 2, 2, 2, kt/2, kh/2, kw/2)
    return weight.reshape(o, c * 8, kt // 2, kh // 2, kw // 2)


def strided_conv3d_via_space_to_depth(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``conv3d(x, weight, stride=2)`` (no padding, ``x`` already padded) computed as above."""
    pads = []
    for size in reversed(x.shape[-3:]):
        pads += [0, size % 2]  # an odd padded size gets one more zero row: it meets a zero tap
    x = F.pad(x, pads)
    return F.conv3d(space_to_depth(x), space_to_depth_kernel(weight))
