"""Speed switches that change how the model runs, never what it computes.

Each switch defaults on and has an equivalence test on CPU (``tests/test_perf.py`` and the
plug-ins' own tests): the space-to-depth I3D stem (``i3d: fast_stem``), LGVA through
``scaled_dot_product_attention`` (``acga/lgva: use_sdpa``), the factorised text branch of the
decoder (``multires: factorized_text``), and here: channels-last memory formats and
``torch.compile``. bf16 autocast is Lightning's ``trainer.precision: bf16-mixed``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# The plug-in switches, and the value that turns each one off.
PLUGIN_SWITCHES = {
    "video_encoder": {"name": "i3d", "fast_stem": False},
    "attention": {"name": "acga", "use_sdpa": False},
    "decoder": {"name": "multires", "factorized_text": False},
}


def segmenter_specs(fast: bool = True) -> dict[str, dict[str, Any]]:
    """The paper's part specs with every plug-in speed switch on (``fast``) or off (plain)."""
    return {
        kind: {key: (value if key == "name" else fast) for key, value in spec.items()}
        for kind, spec in PLUGIN_SWITCHES.items()
    }


def to_channels_last(model: nn.Module) -> nn.Module:
    """3-D parts to ``channels_last_3d`` and 2-D parts to ``channels_last`` (weights only)."""
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            module.to(memory_format=torch.channels_last_3d)
        elif isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            module.to(memory_format=torch.channels_last)
    model.channels_last_inputs = True
    return model


def compile_parts(model: nn.Module, **compile_kwargs) -> nn.Module:
    """``torch.compile`` each part in place (``Module.compile`` keeps state-dict keys)."""
    for name in ("video_encoder", "text_encoder", "attention", "decoder"):
        part = getattr(model, name, None)
        if part is not None:
            part.compile(**compile_kwargs)
    model.compiled = True
    return model


def optimise_for_speed(
    model: nn.Module, compile: bool = True, channels_last: bool = True
) -> nn.Module:
    """Apply the run-time switches to a built segmenter; returns the same object."""
    if channels_last:
        to_channels_last(model)
    if compile:
        compile_parts(model)
    return model
