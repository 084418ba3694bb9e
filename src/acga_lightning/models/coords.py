"""The 8-channel spatial coordinate map that ACGA concatenates to visual features."""

from __future__ import annotations

import torch


def coordinate_map(
    height: int,
    width: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Coordinates of each cell of an ``height x width`` grid, as ``(8, height, width)``.

    Channel order ``[xmin, ymin, xmax, ymax, xctr, yctr, 1/W, 1/H]`` with ``xmin = w/W*2-1``,
    ``xmax = (w+1)/W*2-1`` (likewise for y) and the centres their midpoints.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"coordinate_map needs a positive grid, got {height}x{width}")
    xs = torch.arange(width, device=device, dtype=torch.float64)
    ys = torch.arange(height, device=device, dtype=torch.float64)
    xmin = (xs / width * 2 - 1).expand(height, width)  # (H, W)
    xmax = ((xs + 1) / width * 2 - 1).expand(height, width)
    ymin = (ys / height * 2 - 1)[:, None].expand(height, width)
    ymax = ((ys + 1) / height * 2 - 1)[:, None].expand(height, width)
    xctr = (xmin + xmax) / 2
    yctr = (ymin + ymax) / 2
    inv_w = torch.full_like(xmin, 1.0 / width)
    inv_h = torch.full_like(xmin, 1.0 / height)
    coords = torch.stack([xmin, ymin, xmax, ymax, xctr, yctr, inv_w, inv_h])  # (8, H, W)
    return coords.to(dtype)


def append_coordinates(features: torch.Tensor) -> torch.Tensor:
    """Concatenate the coordinate map to ``features`` (B, C, H, W) -> (B, C + 8, H, W)."""
    b, _, h, w = features.shape
    coords = coordinate_map(h, w, device=features.device, dtype=features.dtype)
    return torch.cat([features, coords.expand(b, -1, -1, -1)], dim=1)


COORD_CHANNELS = 8
