"""Converting the official ACGA release's checkpoint into a checkpoint of this library.

The official code (haowang1992/ACGA) saves ``model_best.pth.tar`` as ``{"epoch", "state_dict",
"optimizer"}``; ``state_dict`` is its whole ``ACGA`` module (possibly with DataParallel's
``module.`` prefix), I3D included under ``video_model.model.`` in the hassony2 port's names.
The official model takes Mixed_4e features and runs I3D's ``Mixed_4f`` itself, so the converted
model is ``ACGASegmenter`` with ``video_encoder: {name: precomputed, endpoint: mixed_4e,
batchnorm: hassony2}`` carrying the official Mixed_4f weights; the rest of the I3D (the layers
that made the features, and those after Mixed_4f) is not run by that model and is skipped.

Every other tensor is mapped by name (:data:`OFFICIAL_HEAD`); a tensor with no mapping, a mapped
tensor of the wrong shape, or a parameter of the model that receives nothing is an error that
names them. The official LGVA computes ``softmax(K Q^T)``: its ``video_linearK`` plays our
``query`` and its ``video_linearQ`` our ``key``.

``acga convert-official model_best.pth.tar OUT.ckpt`` writes a Lightning checkpoint that
``ACGASegmenter.load_from_checkpoint`` and ``acga test --ckpt_path OUT.ckpt`` load; its
hyper-parameters are the official model's (:data:`OFFICIAL_HPARAMS`) with the official
evaluation (``evaluation: official_release``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from acga_lightning.models.i3d import hassony2_to_piergiaj

I3D_PREFIX = "video_model.model."

OFFICIAL_HEAD: dict[str, str] = {
    # official module path -> ours (each followed by .weight / .bias)
    "txt_model.0": "text_encoder.conv",
    "attention_layer.video_reduce": "attention.vgla.visual_to_text",
    "attention_layer.txt_increase": "attention.lgva.sentence_gate",
    "attention_layer.video_linearK": "attention.lgva.query",
    "attention_layer.video_linearQ": "attention.lgva.key",
    "attention_layer.video_linearV": "attention.lgva.value",
    "deconv_small.0": "decoder.up_medium.deconv",
    "deconv_small.1": "decoder.up_medium.conv",
    "deconv_medium.0": "decoder.up_large.deconv",
    "deconv_medium.1": "decoder.up_large.conv",
    **{
        f"conv_mask_{level}.{index}": f"decoder.{level}.{ours}"
        for level in ("small", "medium", "large")
        for index, ours in ((0, "conv1"), (2, "conv2"), (4, "classifier"))
    },
    "conv_fusion": "decoder.fusion",
}
"""The official ACGA head's modules and their counterparts in :class:`ACGASegmenter`."""

OFFICIAL_HPARAMS: dict[str, Any] = {
    "video_encoder": {"name": "precomputed", "endpoint": "mixed_4e", "batchnorm": "hassony2"},
    "text_encoder": {"name": "word_cnn"},
    "attention": {"name": "acga"},
    "decoder": {"name": "multires", "up_activation": "none"},
    "loss": {"name": "wbce", "pos_weight": 1.5},
    "num_frames": 16,
    "frame_size": 512,
    "mask_padding": False,
    "evaluation": "official_release",
    "metrics_protocol": "acga",
    "lr_milestones": [8],
}
"""The converted model's hyper-parameters: the official model, scored as the official code."""


class ConversionError(ValueError):
    """The checkpoint does not fit the official model: names every offending tensor."""


@dataclass
class ConversionReport:
    """What the conversion mapped and skipped (official names)."""

    source: str
    epoch: int | None = None
    mapped: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        i3d = sorted({k[len(I3D_PREFIX) :].partition(".")[0] for k in self.skipped})
        return (
            f"{self.source}: {len(self.mapped)} tensors mapped; {len(self.skipped)} I3D tensors "
            f"skipped (layers the converted model does not run: {', '.join(i3d) or 'none'})"
        )


def read_official_state(source: str | os.PathLike | Mapping[str, Any]) -> tuple[dict, int | None]:
    """The official checkpoint's tensors (``module.`` prefixes dropped) and its epoch."""
    if isinstance(source, Mapping):
        obj: Any = source
    else:
        if not os.path.isfile(source):
            raise FileNotFoundError(f"official checkpoint not found: {os.fspath(source)!r}")
        obj = torch.load(os.fspath(source), map_location="cpu", weights_only=True)
    if not isinstance(obj, Mapping):
        raise ConversionError(f"{source}: holds a {type(obj).__name__}, not a checkpoint dict")
    epoch = obj.get("epoch") if isinstance(obj.get("epoch"), int) else None
    state = obj.get("state_dict", obj)
    if not isinstance(state, Mapping):
        raise ConversionError(f"{source}: 'state_dict' is a {type(state).__name__}, not a mapping")
    tensors = {str(k).removeprefix("module."): v for k, v in state.items()}
    not_tensors = sorted(k for k, v in tensors.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise ConversionError(f"{source}: entries that are not tensors: {not_tensors[:10]}")
    return tensors, epoch


def map_official_keys(state: Mapping[str, torch.Tensor]) -> tuple[dict, list[str], list[str]]:
    """``(ours -> official, skipped, unmapped)``: every official key sorted into one of them."""
    mapped: dict[str, str] = {}
    skipped, unmapped = [], []
    for key in sorted(state):
        if key.startswith(I3D_PREFIX):
            ours = hassony2_to_piergiaj(key[len(I3D_PREFIX) :])
            if ours.startswith("Mixed_4f."):
                mapped[f"video_encoder.i3d.{ours}"] = key
            else:
                skipped.append(key)
            continue
        module, _, leaf = key.rpartition(".")
        if module in OFFICIAL_HEAD and leaf in ("weight", "bias"):
            mapped[f"{OFFICIAL_HEAD[module]}.{leaf}"] = key
        else:
            unmapped.append(key)
    return mapped, skipped, unmapped


def build_official_model(**overrides: Any) -> Any:
    """An :class:`ACGASegmenter` with the official model's hyper-parameters (random weights)."""
    from acga_lightning.segmenter import ACGASegmenter

    return ACGASegmenter(**{**OFFICIAL_HPARAMS, **overrides})


def convert_official_checkpoint(
    source: str | os.PathLike | Mapping[str, Any],
    destination: str | os.PathLike | None = None,
    **hparam_overrides: Any,
) -> tuple[Any, ConversionReport]:
    """Load the official ``model_best.pth.tar`` into an ``ACGASegmenter`` (and save it).

    ``destination``: where to write the Lightning checkpoint (nothing is written if None).
    ``hparam_overrides`` change the converted model's hyper-parameters (e.g.
    ``evaluation="restore"``); the weights fit only the official architecture.
    Returns the model (eval mode) and a :class:`ConversionReport`. Raises
    :class:`ConversionError` naming unmapped, mis-shaped and missing tensors.
    """
    name = "<state dict>" if isinstance(source, Mapping) else os.fspath(source)
    state, epoch = read_official_state(source)
    if not any(k.startswith(I3D_PREFIX) for k in state) and not any(
        k.rpartition(".")[0] in OFFICIAL_HEAD for k in state
    ):
        raise ConversionError(
            f"{name}: not an official ACGA checkpoint (no 'video_model.model.' I3D and no head "
            f"tensors; first keys {sorted(state)[:5]}). A bare I3D file (i3d_rgb.pth) is "
            "loaded directly as `weights:` of the i3d or precomputed video encoder."
        )
    mapped, skipped, unmapped = map_official_keys(state)
    model = build_official_model(**hparam_overrides)
    own = model.state_dict()
    wanted = {k for k in own if not k.endswith("num_batches_tracked")}
    problems = []
    if unmapped:
        problems.append(f"unmapped ({len(unmapped)}): {', '.join(unmapped)}")
    misshaped = [
        f"{official} {tuple(state[official].shape)} -> {ours} {tuple(own[ours].shape)}"
        for ours, official in mapped.items()
        if ours in own and tuple(state[official].shape) != tuple(own[ours].shape)
    ]
    if misshaped:
        problems.append(f"mis-shaped ({len(misshaped)}): {'; '.join(misshaped)}")
    unknown = sorted(
        f"{official} -> {ours}" for ours, official in mapped.items() if ours not in own
    )
    if unknown:
        problems.append(f"mapped to no parameter ({len(unknown)}): {', '.join(unknown)}")
    missing = sorted(wanted - set(mapped))
    if missing:
        problems.append(f"missing from the checkpoint ({len(missing)}): {', '.join(missing)}")
    if problems:
        raise ConversionError(
            f"{name} does not fit the official ACGA model:\n  " + "\n  ".join(problems)
        )
    model.load_state_dict(
        {ours: state[official] for ours, official in mapped.items()}, strict=False
    )
    model.eval()
    report = ConversionReport(name, epoch, {v: k for k, v in mapped.items()}, skipped)
    if destination is not None:
        save_lightning_checkpoint(model, destination, epoch=epoch or 0)
    return model, report


def save_lightning_checkpoint(model: Any, destination: str | os.PathLike, epoch: int = 0) -> None:
    """Write ``model`` as a Lightning checkpoint: weights and hyper-parameters, no trainer state."""
    import pytorch_lightning as pl

    checkpoint = {
        "epoch": int(epoch),
        "global_step": 0,
        "pytorch-lightning_version": pl.__version__,
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
    }
    destination = os.fspath(destination)
    parent = os.path.dirname(destination)
    if parent:
        os.makedirs(parent, exist_ok=True)
    tmp = f"{destination}.tmp"
    torch.save(checkpoint, tmp)
    os.replace(tmp, destination)


def convert_official_main(argv: Sequence[str] | None = None) -> int:
    """``acga convert-official model_best.pth.tar OUT.ckpt``: the official checkpoint, converted."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="acga convert-official", description=convert_official_main.__doc__
    )
    parser.add_argument("source", help="the official checkpoint (model_best.pth.tar)")
    parser.add_argument("destination", help="the Lightning checkpoint to write (.ckpt)")
    args = parser.parse_args(argv)
    try:
        _, report = convert_official_checkpoint(args.source, args.destination)
    except (ConversionError, FileNotFoundError) as err:
        raise SystemExit(f"acga convert-official: {err}") from None
    print(report.summary())
    print(f"wrote {args.destination}: acga test --config configs/acga_release_a2d.yaml "
          f"--ckpt_path {args.destination}")  # fmt: skip
    return 0
