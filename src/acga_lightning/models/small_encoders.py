"""Small video encoders for laptop-scale training (the demo, notebooks, quick experiments).

I3D is 271 GFLOP per paper-size clip and needs ImageNet weights to be useful; trained from
scratch on two CPU cores it learns too slowly for a ten-minute demo, and frozen with random
weights its features are weak. :class:`Small3DEncoder` is a few strided 3-D convolutions,
trained end to end, that honours the same contract as ``i3d`` (see ``VIDEO_ENCODERS``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from acga_lightning.registry import VIDEO_ENCODERS


class _ConvBlock(nn.Sequential):
    """Conv (3x3x3 or 3x3) -> BatchNorm -> ReLU, halving height and width when ``downsample``."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool, dims: int) -> None:
        conv, norm = (nn.Conv3d, nn.BatchNorm3d) if dims == 3 else (nn.Conv2d, nn.BatchNorm2d)
        stride = (1, 2, 2) if dims == 3 else (2, 2)
        super().__init__(
            conv(
                in_channels,
                out_channels,
                3,
                stride=stride if downsample else 1,
                padding=1,
                bias=False,
            ),
            norm(out_channels),
            nn.ReLU(inplace=True),
        )


@VIDEO_ENCODERS.register("small3d")
class Small3DEncoder(nn.Module):
    """A small 3-D CNN trained from scratch: one strided block per halving, temporal mean, L2.

    ``frames (B, 3, T, S, S)`` in [-1, 1] -> ``(B, widths[-1], S/stride, S/stride)``. There are
    ``log2(stride)`` stages (3 for stride 8, 4 for stride 16); stage ``i`` is a strided block of
    width ``widths[i]`` followed by ``extra_blocks`` unstrided ones. ``temporal="3d"`` keeps
    time through every block (3x3x3 kernels) and averages it at the end, as ``i3d`` does;
    ``temporal="early"`` fuses the ``T`` frames in the first convolution (a ``T x 3 x 3``
    kernel, i.e. the frames stacked as channels) and runs 2-D blocks after it: several times
    cheaper on CPU, still sees motion. It has no frozen prefix, so it reads no cached features.
    """

    out_channels = 128
    stride = 16

    def __init__(
        self,
        widths: tuple[int, ...] = (16, 32, 64, 128),
        stride: int = 16,
        extra_blocks: int = 1,
        temporal: str = "3d",
        num_frames: int = 16,
        frame_size: int = 512,
        l2_normalize: bool = True,
    ) -> None:
        super().__init__()
        if stride not in (8, 16):
            raise ValueError(f"stride: expected 8 or 16, got {stride}")
        stages = int(math.log2(stride))
        if len(widths) != stages or any(int(w) < 1 for w in widths):
            raise ValueError(
                f"widths: expected {stages} positive widths for stride {stride}, got {widths}"
            )
        if extra_blocks < 0:
            raise ValueError(f"extra_blocks: expected >= 0, got {extra_blocks}")
        if temporal not in ("3d", "early"):
            raise ValueError(f"temporal: expected '3d' or 'early', got {temporal!r}")
        if frame_size % stride:
            raise ValueError(f"frame_size: {frame_size} is not a multiple of stride {stride}")
        self.out_channels = int(widths[-1])
        self.stride = stride
        self.l2_normalize = l2_normalize
        self.temporal = temporal
        self.num_frames = num_frames
        dims = 3 if temporal == "3d" else 2
        blocks: list[nn.Module] = []
        in_channels = 3 if temporal == "3d" else 3 * num_frames
        for width in widths:
            blocks.append(_ConvBlock(in_channels, int(width), True, dims))
            blocks.extend(
                _ConvBlock(int(width), int(width), False, dims) for _ in range(extra_blocks)
            )
            in_channels = int(width)
        self.blocks = nn.Sequential(*blocks)

    def forward(
        self, frames: torch.Tensor | None = None, features: torch.Tensor | None = None
    ) -> torch.Tensor:
        if frames is None:
            raise ValueError("small3d encodes frames (B, 3, T, S, S); it has no cached features")
        if frames.ndim != 5 or frames.shape[1] != 3:
            raise ValueError(f"frames: expected (B, 3, T, S, S), got {tuple(frames.shape)}")
        b, _, t, h, w = frames.shape
        if self.temporal == "3d":
            x = self.blocks(frames).mean(dim=2)  # (B, C, T, G, G) -> (B, C, G, G)
        else:
            if t != self.num_frames:
                raise ValueError(
                    f"frames: temporal 'early' was built for {self.num_frames} frames, got {t}"
                )
            x = self.blocks(frames.reshape(b, 3 * t, h, w))  # (B, C, G, G)
        return F.normalize(x, dim=1) if self.l2_normalize else x
