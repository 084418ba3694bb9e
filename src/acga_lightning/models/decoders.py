"""Decoders: attended features to segmentation logits, at one or several resolutions."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from acga_lightning.models.coords import COORD_CHANNELS, coordinate_map
from acga_lightning.models.init import official_init
from acga_lightning.models.upsampled_conv import upsampled_conv3x3
from acga_lightning.registry import DECODERS


def upsample(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize (align_corners=False), the one interpolation the decoders use."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class FCNHead(nn.Module):
    """conv3x3 -> ReLU -> conv3x3 -> ReLU -> conv1x1, on [features, text map, coordinates].

    The text map may come at a lower resolution than the features: it is bilinearly upsampled.
    With ``factorized_text`` the first convolution's text part is computed by
    :func:`upsampled_conv3x3` (exactly the same result, far cheaper at 512x512); the weights are
    the same single convolution either way, so checkpoints do not depend on the switch.
    """

    def __init__(
        self,
        feature_channels: int,
        text_channels: int,
        width: int,
        factorized_text: bool = True,
    ) -> None:
        super().__init__()
        self.feature_channels = feature_channels
        self.text_channels = text_channels
        self.factorized_text = factorized_text
        in_channels = feature_channels + text_channels + COORD_CHANNELS
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.classifier = nn.Conv2d(width, 1, 1)

    def first_conv(self, features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        b, _, h, w = features.shape
        coords = coordinate_map(h, w, features.device, features.dtype).expand(b, -1, -1, -1)
        if not self.factorized_text or tuple(text.shape[-2:]) == (h, w):
            stacked = torch.cat([features, upsample(text, (h, w)), coords], dim=1)
            return self.conv1(stacked)
        c_f, c_t = self.feature_channels, self.text_channels
        weight = self.conv1.weight
        no_text = torch.cat([weight[:, :c_f], weight[:, c_f + c_t :]], dim=1)
        out = F.conv2d(torch.cat([features, coords], dim=1), no_text, self.conv1.bias, padding=1)
        text_part = upsampled_conv3x3(text, weight[:, c_f : c_f + c_t], (h, w))
        return out + text_part.to(out.dtype)

    def forward(self, features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.first_conv(features, text))  # (B, width, H, W)
        x = F.relu(self.conv2(x))
        return self.classifier(x)  # (B, 1, H, W)


UP_ACTIVATIONS = ("none", "relu")
#: What the sentence gate reads (``MultiResolutionDecoder(gate_source=...)``).
GATE_SOURCES = ("sentence", "words")


class UpBlock(nn.Module):
    """x``factor`` upsampling: ConvTranspose2d(k=2f, s=f, p=f/2) then conv3x3.

    The paper's block is ``factor=4`` (k=8, s=4, p=2); ``factor=2`` is k=4, s=2, p=1.
    ``activation="none"`` is the official code's ``Sequential(ConvTranspose2d, Conv2d)``;
    ``"relu"`` puts a ReLU after each of the two layers.
    """

    def __init__(
        self, in_channels: int, out_channels: int, factor: int = 4, activation: str = "none"
    ) -> None:
        super().__init__()
        if factor not in (2, 4):
            raise ValueError(f"factor: expected 2 or 4, got {factor}")
        if activation not in UP_ACTIVATIONS:
            raise ValueError(f"activation: expected one of {UP_ACTIVATIONS}, got {activation!r}")
        self.deconv = nn.ConvTranspose2d(
            in_channels, out_channels, 2 * factor, stride=factor, padding=factor // 2
        )
        self.conv = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation == "relu":
            return F.relu(self.conv(F.relu(self.deconv(x))))  # (B, C_out, fH, fW)
        return self.conv(self.deconv(x))  # (B, C_out, fH, fW)


def _check_inputs(visual: torch.Tensor, text: torch.Tensor, visual_channels: int) -> None:
    if visual.ndim != 4 or visual.shape[1] != visual_channels:
        raise ValueError(f"visual must be (B, {visual_channels}, G, G), got {tuple(visual.shape)}")
    if text.shape[-2:] != visual.shape[-2:]:
        raise ValueError(f"text map {tuple(text.shape)} and visual {tuple(visual.shape)} differ")


@DECODERS.register("multires")
class MultiResolutionDecoder(nn.Module):
    """ACGA's multi-resolution fusion decoder (paper section 3.3): logits at G, 4G and 16G.

    Small: FCN([F_VA, F_TA, C]) at G. Medium and large: x4 up-blocks from F_VA, then
    FCN([F_M or F_L, bilinear(F_TA), C]). The final logits fuse [up(R_S), up(R_M), R_L] with a
    3x3 convolution. Returns ``[R_S, R_M, R_L_fused]``.

    ``up_factors`` are the two up-blocks' factors: ``(4, 4)`` is the paper's (G=32 -> 512). A
    grid that is already fine, e.g. G=8 for a 64-pixel frame, reaches the frame with
    ``(4, 2)`` instead of decoding at 128 and resizing down, at a quarter of the cost.

    ``up_activation``: ``"none"`` (default) is the official code's up-block, a deconvolution
    followed by a convolution with no activation in between or after; ``"relu"`` adds a ReLU
    after each (a departure from the official code, kept for models trained with it).

    ``sentence_gate`` (not in the paper) scales the visual features, channel by channel, by
    ``1 + Linear(sentence)`` before the three resolutions read them: F_V * (1 + W s + b), the
    same at every pixel. The heads' concatenation [F_V, F_TA, C] can only add what the words
    say to what a pixel shows; the gate multiplies them, so a feature that answers "red" can be
    turned up by the word "red" alone. With VGLA alone (no LGVA) it is the only multiplicative
    path from the sentence to every resolution (docs/demo.md, "Reading the words").

    Three more options (not in the paper either) make the words readable sooner when the
    model is trained from scratch:

    - ``gate_source``: what the gate reads. ``"sentence"`` is the attention's sentence feature
      (the max over the word features); ``"words"`` is the mean of the sentence's input word
      vectors (the segmenter passes it; they must have ``text_channels`` dimensions).
    - ``gate_norm``: standardise that input over the batch (BatchNorm1d) first. Sentences of
      one dataset share most of their words, so what tells two of them apart is a small part
      of the raw vector; standardised, it is what varies.
    - ``sentence_match``: add a bilinear score ``<F_V(x), W s>`` to the small logits, the
      direct per-pixel match of what a cell shows with what the sentence says.
    """

    def __init__(
        self,
        visual_channels: int = 832,
        text_channels: int = 300,
        up_channels: tuple[int, int] = (256, 128),
        head_widths: tuple[int, int, int] = (256, 128, 64),
        fusion: bool = True,
        factorized_text: bool = True,
        up_factors: tuple[int, int] = (4, 4),
        up_activation: str = "none",
        sentence_gate: bool = False,
        gate_source: str = "sentence",
        gate_norm: bool = False,
        sentence_match: bool = False,
    ) -> None:
        super().__init__()
        if len(up_factors) != 2:
            raise ValueError(f"up_factors: expected two factors, got {up_factors}")
        if gate_source not in GATE_SOURCES:
            raise ValueError(f"gate_source: expected one of {GATE_SOURCES}, got {gate_source!r}")
        if not sentence_gate and (gate_source != "sentence" or gate_norm or sentence_match):
            raise ValueError("gate_source, gate_norm and sentence_match need sentence_gate")
        self.visual_channels = visual_channels
        self.small = FCNHead(visual_channels, text_channels, head_widths[0], factorized_text)
        self.up_medium = UpBlock(visual_channels, up_channels[0], int(up_factors[0]), up_activation)
        self.medium = FCNHead(up_channels[0], text_channels, head_widths[1], factorized_text)
        self.up_large = UpBlock(up_channels[0], up_channels[1], int(up_factors[1]), up_activation)
        self.large = FCNHead(up_channels[1], text_channels, head_widths[2], factorized_text)
        self.fusion = nn.Conv2d(3, 1, 3, padding=1) if fusion else None
        self.sentence_gate = nn.Linear(text_channels, visual_channels) if sentence_gate else None
        self.gate_source = gate_source
        self.gate_norm = nn.BatchNorm1d(text_channels) if gate_norm else None
        self.sentence_match = nn.Linear(text_channels, visual_channels) if sentence_match else None
        self.apply(official_init)
        if self.gate_norm is not None:  # a plain standardisation to start from
            nn.init.ones_(self.gate_norm.weight)
        if self.sentence_match is not None:  # a score of about unit scale from the start
            nn.init.normal_(self.sentence_match.weight, 0.0, text_channels**-0.5 / math.sqrt(3))

    def forward(
        self, visual: torch.Tensor, text: torch.Tensor, sentence: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        _check_inputs(visual, text, self.visual_channels)
        if self.sentence_gate is not None:
            if sentence is None:
                raise ValueError("sentence_gate: the decoder needs the sentence feature")
            if self.gate_norm is not None:
                sentence = self._standardise(sentence)  # (B, D)
            gate = self.sentence_gate(sentence)[:, :, None, None]  # (B, C_v, 1, 1)
            ungated, visual = visual, visual * (1 + gate)  # (B, C_v, G, G)
        small = self.small(visual, text)  # (B, 1, G, G)
        if self.sentence_match is not None:
            match = self.sentence_match(sentence)[:, :, None, None]  # (B, C_v, 1, 1)
            small = small + (ungated * match).sum(dim=1, keepdim=True)
        medium_features = self.up_medium(visual)  # (B, 256, 4G, 4G) with the paper's factors
        medium = self.medium(medium_features, text)  # (B, 1, 4G, 4G)
        large_features = self.up_large(medium_features)  # (B, 128, 16G, 16G)
        large = self.large(large_features, text)  # (B, 1, 16G, 16G)
        if self.fusion is not None:
            size = large.shape[-2:]
            stacked = torch.cat([upsample(small, size), upsample(medium, size), large], dim=1)
            large = self.fusion(stacked)  # (B, 1, 16G, 16G)
        return [small, medium, large]

    def _standardise(self, sentence: torch.Tensor) -> torch.Tensor:
        """``gate_norm`` over the batch; a batch of one sentence (the last of an epoch, a rank's
        share) has no spread of its own, so it uses the running statistics, as evaluation does."""
        norm = self.gate_norm
        if not (self.training and sentence.shape[0] == 1):
            return norm(sentence)
        return F.batch_norm(
            sentence, norm.running_mean, norm.running_var, norm.weight, norm.bias,
            training=False, eps=norm.eps,
        )  # fmt: skip


@DECODERS.register("single")
class SingleResolutionDecoder(nn.Module):
    """One FCN at the feature grid (the paper's Baseline decoder). Returns ``[R_S]``."""

    def __init__(
        self, visual_channels: int = 832, text_channels: int = 300, width: int = 256
    ) -> None:
        super().__init__()
        self.visual_channels = visual_channels
        self.head = FCNHead(visual_channels, text_channels, width)
        self.apply(official_init)

    def forward(
        self, visual: torch.Tensor, text: torch.Tensor, sentence: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        _check_inputs(visual, text, self.visual_channels)
        return [self.head(visual, text)]


class DynamicFilter(nn.Module):
    """A 1x1 filter generated from the sentence (Linear + tanh), applied to a visual map."""

    def __init__(self, text_channels: int, map_channels: int) -> None:
        super().__init__()
        self.generator = nn.Linear(text_channels, map_channels)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, visual_map: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        kernel = torch.tanh(self.generator(sentence))  # (B, C)
        response = torch.einsum("bchw,bc->bhw", visual_map, kernel)  # (B, H, W)
        return response[:, None] + self.bias  # (B, 1, H, W)


@DECODERS.register("dynamic_filter")
class DynamicFilterDecoder(nn.Module):
    """Gavrilyuk et al. (CVPR 2018): sentence-generated 1x1 filters at G, 4G and 16G.

    At each resolution the filter is convolved with [visual features, coordinates]; its response
    map is a logit map and is also passed, with the features, to the next x4 up-block. The
    per-pixel text map is not used (pair it with ``attention: none``). Returns 3 logit maps.
    ``up_activation`` as in ``multires`` (default ``"relu"`` here).
    """

    def __init__(
        self,
        visual_channels: int = 832,
        text_channels: int = 300,
        up_channels: tuple[int, int] = (256, 128),
        up_activation: str = "relu",
    ) -> None:
        super().__init__()
        self.visual_channels = visual_channels
        widths = (visual_channels, *up_channels)
        self.filters = nn.ModuleList(
            DynamicFilter(text_channels, c + COORD_CHANNELS) for c in widths
        )
        self.ups = nn.ModuleList(
            UpBlock(widths[i] + 1, widths[i + 1], activation=up_activation) for i in range(2)
        )
        self.apply(official_init)

    def forward(
        self, visual: torch.Tensor, text: torch.Tensor, sentence: torch.Tensor
    ) -> list[torch.Tensor]:
        _check_inputs(visual, text, self.visual_channels)
        logits = []
        features = visual
        for level, dynamic_filter in enumerate(self.filters):
            b, _, h, w = features.shape
            coords = coordinate_map(h, w, features.device, features.dtype).expand(b, -1, -1, -1)
            response = dynamic_filter(torch.cat([features, coords], dim=1), sentence)
            logits.append(response)  # (B, 1, H, W)
            if level < len(self.ups):
                features = self.ups[level](torch.cat([features, response], dim=1))
        return logits
