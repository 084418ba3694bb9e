"""A 3x3 convolution of a bilinearly upsampled map, without materialising the upsampled map.

The decoder convolves ``bilinear_upsample(F_TA)`` (300 channels) at 128x128 and 512x512. Both
operations are linear and bilinear upsampling is separable, ``up(x) = U_h x U_w^T``, so

    conv3x3(up(x))[o, y, x'] = sum_{i,j} (S_i U_h) (W_ij x) (S_j U_w)^T

where ``W_ij x`` is a 1x1 projection at the low resolution and ``S_d`` shifts rows by ``d`` with
zero fill (the convolution's zero padding). The right side costs ~25x fewer FLOPs at 512x512 and
never holds a (B, 300, 512, 512) tensor. ``tests/models/test_upsampled_conv.py`` proves the
equality in float64.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=32)
def _shifted_interpolation(
    size_in: int, size_out: int, device: str, dtype: torch.dtype
) -> torch.Tensor:
    """(3, size_out, size_in): the 1-D linear interpolation matrix, shifted by -1, 0, +1 rows."""
    eye = torch.eye(size_in, dtype=torch.float64)[None]  # (1, in, in)
    matrix = F.interpolate(eye, size=size_out, mode="linear", align_corners=False)[0].T  # (out, in)
    padded = F.pad(matrix, (0, 0, 1, 1))  # (out + 2, in), zero rows at both ends
    shifted = torch.stack([padded[k : k + size_out] for k in range(3)])  # (3, out, in)
    return shifted.to(device=device, dtype=dtype)


def upsampled_conv3x3(
    low: torch.Tensor, weight: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """``conv2d(interpolate(low, size, bilinear), weight, padding=1)`` without the big map.

    ``low`` (B, D, h, w), ``weight`` (O, D, 3, 3) -> (B, O, H, W). No bias.
    """
    b, d, h, w = low.shape
    big_h, big_w = size
    # Eager runs reuse the cached matrices; a compiled graph builds them itself (constants).
    interpolation = (
        _shifted_interpolation.__wrapped__
        if torch.compiler.is_compiling()
        else _shifted_interpolation
    )
    rows = interpolation(h, big_h, str(low.device), low.dtype)  # (3, H, h)
    cols = interpolation(w, big_w, str(low.device), low.dtype)  # (3, W, w)
    projected = torch.einsum("odij,bdyx->bijoyx", weight.to(low.dtype), low)  # (B, 3, 3, O, h, w)
    widened = torch.einsum("bijoyx,jXx->bioyX", projected, cols)  # (B, 3, O, h, W)
    return torch.einsum("bioyX,iYy->boYX", widened, rows)  # (B, O, H, W)
