"""Video encoders: a clip (or its cached features) to the visual feature map F_V.

Every encoder honours the ``VIDEO_ENCODERS`` contract: ``forward(frames=None, features=None)``
returns ``(B, C_v, G, G)`` with ``G = S // stride``: the network's output averaged over time,
then L2-normalised over channels at each pixel (ACGA's F_V).
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from acga_lightning.models.i3d import (
    BATCHNORM,
    ENDPOINTS,
    InceptionI3d,
    LoadReport,
    load_i3d_weights,
    load_state_dict_checked,
    read_checkpoint,
)
from acga_lightning.registry import VIDEO_ENCODERS


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_sha256(module: nn.Module) -> str | None:
    """Hex sha256 of a module's state (names, shapes, values); None on the meta device."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        if tensor.is_meta:
            return None
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(
            tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    return digest.hexdigest()


def pool_and_normalise(x: torch.Tensor, l2_normalize: bool) -> torch.Tensor:
    """Temporal mean of ``(B, C, T, G, G)`` (or pass ``(B, C, G, G)``), then per-pixel L2 norm."""
    if x.dim() == 5:
        x = x.mean(dim=2)  # (B, C, G, G)
    return F.normalize(x, p=2.0, dim=1) if l2_normalize else x


def check_frames(frames: Any, num_frames: int, frame_size: int) -> None:
    """ValueError naming ``frames`` unless it is ``(B, 3, num_frames, frame_size, frame_size)``."""
    if not isinstance(frames, torch.Tensor) or frames.dim() != 5 or frames.shape[1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"frames must be (B, 3, T, S, S), got {shape}")
    expected = (num_frames, frame_size, frame_size)
    if tuple(frames.shape[2:]) != expected:
        raise ValueError(
            f"frames must have (T, S, S) = {expected} as the encoder was built for, "
            f"got {tuple(frames.shape)}"
        )


def check_features(
    features: Any, channels: int, grid: int | None, argument: str = "features"
) -> None:
    """ValueError naming ``features`` unless it is ``(B, channels, T', G, G)``."""
    if not isinstance(features, torch.Tensor) or features.dim() != 5:
        shape = (
            tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        )
        raise ValueError(f"{argument} must be (B, {channels}, T', G, G), got {shape}")
    b, c, t, h, w = features.shape
    if c != channels or h != w or (grid is not None and h != grid):
        g = grid if grid is not None else "G"
        raise ValueError(
            f"{argument} must be (B, {channels}, T', {g}, {g}), got {tuple(features.shape)}"
        )


def _check_batchnorm(batchnorm: str) -> None:
    if batchnorm != "auto" and batchnorm not in BATCHNORM:
        raise ValueError(
            f"batchnorm: expected 'auto' or one of {sorted(BATCHNORM)}, got {batchnorm!r}"
        )


def _initial(batchnorm: str) -> str:
    """The convention before any weights load: piergiaj's for ``auto``."""
    return "piergiaj" if batchnorm == "auto" else batchnorm


def _one_input(frames: Any, features: Any) -> None:
    if (frames is None) == (features is None):
        raise ValueError("give exactly one of frames and features")


@VIDEO_ENCODERS.register("i3d")
class I3DEncoder(nn.Module):
    """ACGA's video encoder: Inception-v1 I3D to ``Mixed_4f``, temporal mean, per-pixel L2.

    ``frames (B, 3, T, S, S)`` in [-1, 1] -> ``(B, 832, S/16, S/16)``. ``features`` instead of
    frames are cached ``Mixed_4e`` outputs ``(B, 528, T', G, G)`` (see :meth:`extract_frozen`);
    they skip the prefix, which then must be frozen through ``Mixed_4e``. Layers up to and
    including ``frozen_through`` neither learn nor update their BatchNorm statistics: they stay
    in eval mode whatever ``train()`` says. ``frozen_through=None`` trains everything.
    ``batchnorm``: the BatchNorm eps/momentum convention, ``"auto"`` (that of the port the
    ``weights`` come from, piergiaj's without weights), ``"piergiaj"`` or ``"hassony2"``
    (the official ACGA code's port).
    """

    out_channels = 832
    stride = 16
    feature_endpoint = "Mixed_4e"
    feature_channels = 528

    def __init__(
        self,
        weights: str | None = None,
        frozen_through: str | None = "Mixed_4e",
        num_frames: int = 16,
        frame_size: int = 512,
        l2_normalize: bool = True,
        fast_stem: bool = True,
        batchnorm: str = "auto",
    ) -> None:
        super().__init__()
        _check_batchnorm(batchnorm)
        if frozen_through is not None and frozen_through not in ENDPOINTS:
            raise ValueError(
                f"frozen_through must be None or one of {ENDPOINTS}, got {frozen_through!r}"
            )
        if frame_size <= 0 or frame_size % self.stride:
            raise ValueError(f"frame_size must be a positive multiple of 16, got {frame_size}")
        if num_frames <= 0:
            raise ValueError(f"num_frames must be positive, got {num_frames}")
        self.weights = None if weights is None else os.fspath(weights)
        self.frozen_through = frozen_through
        self.num_frames, self.frame_size, self.l2_normalize = num_frames, frame_size, l2_normalize
        self.i3d = InceptionI3d(final_endpoint="Mixed_4f", batchnorm=_initial(batchnorm))
        # Speed switch: the 7x7x7 stride-2 stem as a 4x4x4 conv on a space-to-depth input.
        self.i3d.Conv3d_1a_7x7.space_to_depth = fast_stem
        self.load_report: LoadReport | None = None
        self._weights_sha256: str | None = None
        if self.weights is not None:
            self.load_report = load_i3d_weights(self.i3d, self.weights, batchnorm=batchnorm)
            self._weights_sha256 = file_sha256(self.weights)
        stop = -1 if frozen_through is None else ENDPOINTS.index(frozen_through)
        self.frozen_endpoints: tuple[str, ...] = ENDPOINTS[: stop + 1]
        for name in self.frozen_endpoints:
            getattr(self.i3d, name).requires_grad_(False)
        self.train()

    @property
    def prefix_frozen(self) -> bool:
        """Whether every layer through ``Mixed_4e`` is frozen (so cached features stay valid)."""
        return self.feature_endpoint in self.frozen_endpoints

    def train(self, mode: bool = True) -> I3DEncoder:
        super().train(mode)
        for name in self.frozen_endpoints:
            getattr(self.i3d, name).eval()
        return self

    def forward(
        self, frames: torch.Tensor | None = None, features: torch.Tensor | None = None
    ) -> torch.Tensor:
        _one_input(frames, features)
        if features is not None:
            check_features(features, self.feature_channels, self.frame_size // self.stride)
            self._require_frozen_prefix("features")
            x = features.to(self.i3d.Mixed_4f.b0.conv3d.weight.dtype)
            x = self.i3d(x, start="Mixed_4f")  # (B, 832, T', G, G)
        else:
            check_frames(frames, self.num_frames, self.frame_size)
            x = self.i3d(frames)  # (B, 832, T', G, G)
        return pool_and_normalise(x, self.l2_normalize)  # (B, 832, G, G)

    def extract_frozen(self, frames: torch.Tensor) -> torch.Tensor:
        """The frozen prefix's output, ``Mixed_4e (B, 528, T', G, G)``, for the feature cache."""
        check_frames(frames, self.num_frames, self.frame_size)
        self._require_frozen_prefix("extract_frozen")
        with torch.no_grad():
            return self.i3d(frames, stop=self.feature_endpoint)

    def _require_frozen_prefix(self, what: str) -> None:
        if not self.prefix_frozen:
            raise ValueError(
                f"{what} needs the I3D prefix frozen through {self.feature_endpoint} "
                "(frozen_through 'Mixed_4e' or 'Mixed_4f'), "
                f"got frozen_through={self.frozen_through!r}"
            )

    def cache_signature(self) -> dict[str, Any]:
        """What determines :meth:`extract_frozen`'s output, as plain data to fingerprint a cache.

        ``prefix_sha256`` hashes the prefix's actual parameters and statistics, so a cache made
        with random initial weights is told apart from one made under another seed.
        """
        t = math.ceil(math.ceil(self.num_frames / 2) / 2)
        g = self.frame_size // self.stride
        prefix = nn.ModuleDict({n: getattr(self.i3d, n) for n in ENDPOINTS[:12]})
        return {
            "class": type(self).__name__,
            "registry_name": "i3d",
            "endpoint": self.feature_endpoint,
            "feature_shape": [self.feature_channels, t, g, g],
            "num_frames": self.num_frames,
            "frame_size": self.frame_size,
            "padding": "tf_same",
            "weights": self.weights,
            "weights_sha256": self._weights_sha256 or "random-init",
            "prefix_sha256": state_sha256(prefix),
            # Only when it is not piergiaj's, so caches fingerprinted before the option existed
            # (all piergiaj) stay valid.
            **({"batchnorm": self.i3d.batchnorm} if self.i3d.batchnorm != "piergiaj" else {}),
        }


@VIDEO_ENCODERS.register("precomputed")
class PrecomputedEncoder(nn.Module):
    """A video encoder for cached features: no frames, only ``features``.

    ``endpoint="mixed_4e"``: ``features (B, 528, T', G, G)`` from :meth:`I3DEncoder.extract_frozen`
    go through a trainable I3D ``Mixed_4f`` (loaded from ``weights`` if given), then temporal
    mean and L2 -> ``(B, 832, G, G)``; ``in_channels`` must then be 832 (F_V's width).
    ``endpoint="final"``: ``features`` are final maps ``(B, in_channels, G, G)`` or
    ``(B, in_channels, T', G, G)`` (averaged over time), L2-normalised if ``l2_normalize``.
    ``batchnorm`` as in :class:`I3DEncoder` (``mixed_4e`` only).
    """

    stride = 16
    endpoints = ("mixed_4e", "final")

    def __init__(
        self,
        endpoint: str = "mixed_4e",
        in_channels: int = 832,
        weights: str | None = None,
        l2_normalize: bool = True,
        batchnorm: str = "auto",
    ) -> None:
        super().__init__()
        _check_batchnorm(batchnorm)
        if endpoint not in self.endpoints:
            raise ValueError(f"endpoint must be one of {self.endpoints}, got {endpoint!r}")
        if endpoint == "mixed_4e" and in_channels != 832:
            raise ValueError(f"in_channels must be 832 with endpoint 'mixed_4e', got {in_channels}")
        if endpoint == "final" and weights is not None:
            raise ValueError(
                "weights are only used with endpoint 'mixed_4e' (final features have no layers)"
            )
        if in_channels <= 0:
            raise ValueError(f"in_channels must be positive, got {in_channels}")
        self.endpoint, self.l2_normalize = endpoint, l2_normalize
        self.out_channels = in_channels
        self.weights = None if weights is None else os.fspath(weights)
        self.load_report: LoadReport | None = None
        self.i3d: InceptionI3d | None = None
        if endpoint == "mixed_4e":
            self.i3d = InceptionI3d(
                first_endpoint="Mixed_4f", final_endpoint="Mixed_4f", batchnorm=_initial(batchnorm)
            )
            if self.weights is not None:
                self.load_report = load_i3d_weights(self.i3d, self.weights, batchnorm=batchnorm)

    def forward(
        self, frames: torch.Tensor | None = None, features: torch.Tensor | None = None
    ) -> torch.Tensor:
        if features is None:
            raise ValueError(
                "the precomputed encoder needs features (a feature cache); it got none"
                + (" but frames" if frames is not None else "")
            )
        if self.i3d is not None:
            check_features(features, 528, None)
            x = features.to(self.i3d.Mixed_4f.b0.conv3d.weight.dtype)
            x = self.i3d(x)  # (B, 832, T', G, G)
        else:
            if features.dim() == 4:
                check_features(features[:, :, None], self.out_channels, None)
            else:
                check_features(features, self.out_channels, None)
            x = features.float() if features.dtype in (torch.float16, torch.bfloat16) else features
        return pool_and_normalise(x, self.l2_normalize)  # (B, C, G, G)


R50_STAGES = ("stem", "res2", "res3", "res4")
_R50_STAGE_BLOCKS = {"stem": 1, "res2": 3, "res3": 4, "res4": 5}  # blocks[:n] end the stage
# pytorchvideo's Kinetics models read RGB in [0, 1] normalised by these.
_R50_MEAN, _R50_STD = 0.45, 0.225


def build_i3d_r50_trunk() -> nn.ModuleList:
    """pytorchvideo's I3D ResNet-50 (``hub.i3d_r50`` settings) cut after res4 (stride 16)."""
    from pytorchvideo.models.resnet import create_resnet

    net = create_resnet(
        stem_conv_kernel_size=(5, 7, 7),
        stage1_pool=nn.MaxPool3d,
        stage_conv_a_kernel_size=(
            (3, 1, 1),
            [(3, 1, 1), (1, 1, 1)],
            [(3, 1, 1), (1, 1, 1)],
            [(1, 1, 1), (3, 1, 1)],
        ),
    )
    # blocks: 0 stem, 1 res2, 2 temporal max-pool, 3 res3, 4 res4, 5 res5, 6 head
    return nn.ModuleList(list(net.blocks)[:5])


@VIDEO_ENCODERS.register("i3d_r50")
class I3DR50Encoder(nn.Module):
    """pytorchvideo's I3D ResNet-50 cut after res4, temporal mean, per-pixel L2.

    ``frames (B, 3, T, S, S)`` in [-1, 1] -> ``(B, 1024, S/16, S/16)``. Frames are mapped to
    pytorchvideo's input convention ((x + 1) / 2 - 0.45) / 0.225 inside. ``weights`` is a local
    pytorchvideo checkpoint (``I3D_8x8_R50.pyth``, state dict under ``model_state``); keys of
    res5 and the head are skipped. Stages through ``frozen_through`` stay frozen and in eval mode.
    """

    out_channels = 1024
    stride = 16

    def __init__(
        self,
        weights: str | None = None,
        frozen_through: str | None = "res3",
        num_frames: int = 16,
        frame_size: int = 512,
        l2_normalize: bool = True,
    ) -> None:
        super().__init__()
        if frozen_through is not None and frozen_through not in R50_STAGES:
            raise ValueError(
                f"frozen_through must be None or one of {R50_STAGES}, got {frozen_through!r}"
            )
        if frame_size <= 0 or frame_size % self.stride:
            raise ValueError(f"frame_size must be a positive multiple of 16, got {frame_size}")
        if num_frames <= 0:
            raise ValueError(f"num_frames must be positive, got {num_frames}")
        self.frozen_through = frozen_through
        self.num_frames, self.frame_size, self.l2_normalize = num_frames, frame_size, l2_normalize
        self.blocks = build_i3d_r50_trunk()
        self.weights = None if weights is None else os.fspath(weights)
        self.load_report: LoadReport | None = None
        if self.weights is not None:
            state, source = read_checkpoint(self.weights)
            self.load_report = load_state_dict_checked(
                self,
                state,
                ignore=lambda key: key.startswith(("blocks.5.", "blocks.6.")),
                source=source,
                format="pytorchvideo",
            )
        self.num_frozen_blocks = 0 if frozen_through is None else _R50_STAGE_BLOCKS[frozen_through]
        for block in self.blocks[: self.num_frozen_blocks]:
            block.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> I3DR50Encoder:
        super().train(mode)
        for block in self.blocks[: self.num_frozen_blocks]:
            block.eval()
        return self

    def forward(
        self, frames: torch.Tensor | None = None, features: torch.Tensor | None = None
    ) -> torch.Tensor:
        if features is not None:
            raise ValueError(
                "i3d_r50 takes frames, not cached features; use the 'precomputed' encoder"
            )
        if frames is None:
            raise ValueError("i3d_r50 needs frames, got none")
        check_frames(frames, self.num_frames, self.frame_size)
        x = ((frames + 1.0) * 0.5 - _R50_MEAN) / _R50_STD  # (B, 3, T, S, S)
        for block in self.blocks:
            x = block(x)  # ends at (B, 1024, T / 2, S / 16, S / 16)
        return pool_and_normalise(x, self.l2_normalize)  # (B, 1024, G, G)
