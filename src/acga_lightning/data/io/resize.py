"""Resizing frames and masks to the model's square input, and mapping predictions back.

Two policies (``h x w`` frame, ``S x S`` model input):

- ``"cover"`` (default, what the official ACGA code does): scale by ``max(S/h, S/w)`` so the
  frame covers the square, then centre-crop. The cropped-away border is lost: restored masks are
  False there.
- ``"letterbox"``: scale by ``min(S/h, S/w)`` so the whole frame fits, then centre-pad (frames with
  black, masks with 0).

Interpolation: frames are resized bilinearly with antialiasing.
Masks are resized as floats with the same bilinear filter and thresholded at ``> 0.5``, in both
directions (to the model and back): nearest-neighbour shifts edges by up to half a pixel on one
side only, while bilinear-then-threshold is symmetric. :func:`restore_mask` on float input
(probabilities) returns bilinearly resized floats and leaves the threshold to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

ResizePolicy = Literal["cover", "letterbox"]
POLICIES = ("cover", "letterbox")


@dataclass(frozen=True)
class ResizeGeometry:
    """How an ``h x w`` frame maps onto the ``S x S`` canvas.

    The frame is scaled to ``resized = (rh, rw)`` and its top-left corner placed at ``offset =
    (oy, ox)`` on the canvas: ``canvas[y, x] = resized[y - oy, x - ox]``. Offsets are <= 0 for
    ``cover`` (a crop) and >= 0 for ``letterbox`` (padding).
    """

    orig_size: tuple[int, int]
    size: int
    policy: str
    resized: tuple[int, int]
    offset: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """The (y, x) scale factors actually applied (they differ slightly from rounding)."""
        return self.resized[0] / self.orig_size[0], self.resized[1] / self.orig_size[1]

    def to_canvas(self, points: np.ndarray) -> np.ndarray:
        """Map continuous (y, x) points ``(N, 2)`` of the original frame to canvas coordinates.

        Continuous coordinates: pixel ``i`` covers ``[i, i+1)``, as in ``align_corners=False``.
        """
        return np.asarray(points, np.float64) * self.scale + self.offset

    def to_orig(self, points: np.ndarray) -> np.ndarray:
        """The exact inverse of :meth:`to_canvas`."""
        return (np.asarray(points, np.float64) - self.offset) / self.scale


def compute_geometry(
    orig_size: tuple[int, int], size: int, policy: str = "cover"
) -> ResizeGeometry:
    """The :class:`ResizeGeometry` of an ``orig_size = (h, w)`` frame under ``policy``."""
    h, w = int(orig_size[0]), int(orig_size[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"orig_size: expected positive (h, w), got {orig_size}")
    if size <= 0:
        raise ValueError(f"size: expected a positive frame size, got {size}")
    if policy == "cover":
        scale = max(size / h, size / w)
        rh, rw = max(size, round(h * scale)), max(size, round(w * scale))
        offset = (-((rh - size) // 2), -((rw - size) // 2))
    elif policy == "letterbox":
        scale = min(size / h, size / w)
        rh, rw = min(size, max(1, round(h * scale))), min(size, max(1, round(w * scale)))
        offset = ((size - rh) // 2, (size - rw) // 2)
    else:
        raise ValueError(f"policy: expected one of {POLICIES}, got {policy!r}")
    return ResizeGeometry((h, w), int(size), policy, (rh, rw), offset)


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A tensor view of an array; read-only or negatively strided arrays are copied first."""
    if isinstance(x, np.ndarray) and (not x.flags.writeable or any(s < 0 for s in x.strides)):
        x = np.array(x)
    return torch.as_tensor(x)


def _interpolate(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``(N, C, H, W)``; antialiased when shrinking."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def _place(x: torch.Tensor, geom: ResizeGeometry, fill: float) -> torch.Tensor:
    """Crop or pad ``(..., rh, rw)`` onto the ``(..., S, S)`` canvas at ``geom.offset``."""
    s, (oy, ox) = geom.size, geom.offset
    out = x.new_full((*x.shape[:-2], s, s), fill)
    _paste(out, x, oy, ox)
    return out


def _paste(dst: torch.Tensor, src: torch.Tensor, oy: int, ox: int) -> None:
    """``dst[..., y, x] = src[..., y - oy, x - ox]`` where both exist."""
    dh, dw = dst.shape[-2:]
    sh, sw = src.shape[-2:]
    y0, x0 = max(0, oy), max(0, ox)
    y1, x1 = min(dh, oy + sh), min(dw, ox + sw)
    dst[..., y0:y1, x0:x1] = src[..., y0 - oy : y1 - oy, x0 - ox : x1 - ox]


def resize_frames(
    frames: np.ndarray | torch.Tensor, size: int, policy: str = "cover"
) -> torch.Tensor:
    """Resize uint8 frames ``(T, H, W, 3)`` or ``(H, W, 3)`` to ``(T, S, S, 3)`` or ``(S, S, 3)``.

    Letterbox padding is black.
    """
    x = _as_tensor(frames)
    if x.dtype != torch.uint8 or x.ndim not in (3, 4) or x.shape[-1] != 3:
        raise ValueError(f"frames: expected uint8 (T, H, W, 3), got {x.dtype} {tuple(x.shape)}")
    single = x.ndim == 3
    x = x[None] if single else x
    geom = compute_geometry(tuple(x.shape[1:3]), size, policy)
    # uint8 channels-last bilinear has a fast antialiased CPU kernel in torch.
    x = x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)  # (T, 3, H, W)
    x = _place(_interpolate(x, geom.resized), geom, 0)  # (T, 3, S, S)
    x = x.permute(0, 2, 3, 1).contiguous()  # (T, S, S, 3)
    return x[0] if single else x


FRAME_DTYPES = ("float32", "uint8")


def normalise_frames(frames: torch.Tensor) -> torch.Tensor:
    """The one formula from uint8 pixels to the model's float32 in [-1, 1]: ``x / 127.5 - 1``.

    Shape-agnostic; runs on ``frames``' device. The readers' float32 output and the model's
    on-device conversion of uint8 batches both use it, so the two paths are bit-identical.
    """
    if frames.dtype != torch.uint8:
        raise ValueError(f"frames: expected a uint8 tensor, got {frames.dtype}")
    return frames.float().div_(127.5).sub_(1.0)


def frames_to_model_input(
    frames: np.ndarray | torch.Tensor,
    size: int,
    policy: str = "cover",
    dtype: str = "float32",
) -> torch.Tensor:
    """uint8 frames ``(T, h, w, 3)`` -> the model's ``(3, T, S, S)`` clip.

    ``dtype="float32"``: values in [-1, 1] (the sample contract); ``"uint8"``: the resized pixels,
    4x less memory to pass through a DataLoader and to the device, where the model applies
    :func:`normalise_frames` (float32 output == ``normalise_frames(uint8 output)`` exactly). The
    resize runs on uint8 in channels-last layout; float conversion, if asked, comes last.
    """
    if dtype not in FRAME_DTYPES:
        raise ValueError(f"dtype: expected one of {FRAME_DTYPES}, got {dtype!r}")
    x = _as_tensor(frames)
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"frames: expected uint8 (T, H, W, 3), got {x.dtype} {tuple(x.shape)}")
    geom = compute_geometry(tuple(x.shape[1:3]), size, policy)
    x = _interpolate(x.permute(0, 3, 1, 2), geom.resized)  # (T, 3, rh, rw), channels-last
    if policy == "cover":
        (oy, ox), s = geom.offset, geom.size
        x = x[:, :, -oy : -oy + s, -ox : -ox + s]  # (T, 3, S, S), a view
        # Packing the crop first (row copies, ~0.5 ms at 16x512x512) makes the channel
        # de-interleave below about twice as fast as from the strided view.
        x = x.contiguous(memory_format=torch.channels_last)  # (T, 3, S, S)
    else:
        x = _place(x, geom, 0)  # (T, 3, S, S)
    out = x.permute(1, 0, 2, 3).contiguous()  # (3, T, S, S)
    return out if dtype == "uint8" else normalise_frames(out)


def resize_mask(mask: np.ndarray | torch.Tensor, size: int, policy: str = "cover") -> torch.Tensor:
    """The model-resolution target: bool/0-1 mask ``(h, w)`` -> float32 ``(S, S)`` in {0, 1}."""
    m = _as_tensor(mask)
    if m.ndim != 2:
        raise ValueError(f"mask: expected (h, w), got {tuple(m.shape)}")
    geom = compute_geometry(tuple(m.shape), size, policy)
    x = _interpolate(m.float()[None, None], geom.resized)  # (1, 1, rh, rw)
    return _place((x > 0.5).float(), geom, 0.0)[0, 0]  # (S, S)


def restore_mask(
    mask: torch.Tensor,
    orig_size: tuple[int, int],
    policy: str = "cover",
    fill: float = 0.0,
) -> torch.Tensor:
    """Map a model-resolution mask back to the frame's original size: the inverse of the policy.

    ``mask``: ``(S, S)`` or ``(B, S, S)``, bool or float (probabilities). The part of the frame
    that ``cover`` cropped away gets False / ``fill`` (use a very negative ``fill`` for logits).
    Returns ``(h, w)`` or ``(B, h, w)``: bool for bool input (bilinear then ``> 0.5``), float for
    float input (bilinear).
    """
    if mask.ndim not in (2, 3) or mask.shape[-1] != mask.shape[-2]:
        raise ValueError(f"mask: expected (S, S) or (B, S, S), got {tuple(mask.shape)}")
    geom = compute_geometry(orig_size, mask.shape[-1], policy)
    is_bool = mask.dtype == torch.bool
    x = mask.float().reshape(-1, 1, *mask.shape[-2:])  # (B, 1, S, S)
    resized = x.new_full((x.shape[0], 1, *geom.resized), 0.0 if is_bool else fill)
    # canvas[y, x] = resized[y - oy, x - ox]  <=>  resized[v, u] = canvas[v + oy, u + ox]
    _paste(resized, x, -geom.offset[0], -geom.offset[1])  # (B, 1, rh, rw)
    out = _interpolate(resized, geom.orig_size)[:, 0]  # (B, h, w)
    out = out > 0.5 if is_bool else out
    return out.reshape(*mask.shape[:-2], *geom.orig_size)
