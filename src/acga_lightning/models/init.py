"""The official ACGA code's weight initialisation."""

from __future__ import annotations

from torch import nn


def official_init(module: nn.Module, std: float = 0.02) -> None:
    """Linear weights N(0, std) (official: 0.02) and bias 0; BatchNorm weight N(1, 0.02), bias 0.

    Applied with ``module.apply(official_init)`` to the head (attention, text encoder, decoder),
    never to a pretrained video encoder.
    """
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0.0, std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
