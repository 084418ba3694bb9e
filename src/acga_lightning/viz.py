"""Pictures of what the model sees: mask overlays, VGLA's attention per word, LGVA's context.

Everything returns uint8 RGB numpy images ``(H, W, 3)``; :func:`save_png` writes one. Grids are
drawn with matplotlib's object API on an Agg canvas (no pyplot, so a notebook's backend is left
alone). Small frames (the demo's are 64 x 64) are enlarged by an integer factor with
nearest-neighbour sampling (:func:`upscale`) before anything is drawn on them, so every pixel
of the model's input stays a visible square and the outlines are drawn at the readable size.

- :func:`overlay_masks`: the prediction as a tinted fill, the ground truth as an outline.
- :func:`render_overlay`: that overlay enlarged, captioned with the query and the IoU, with a
  legend telling the prediction from the truth.
- :func:`render_word_attention`: paper Fig. 5. For each word of the query, VGLA's weight of that
  word at every pixel of the ``G x G`` grid (a softmax over words, so in [0, 1]), upsampled onto
  the frame, one panel per word titled with it, in as few rows as fit without empty panels.
- :func:`render_sample`: the overlay and the word maps of one sample side by side.
- :func:`lgva_attention` recomputes LGVA's pixel-to-pixel attention ``(B, HW, HW)`` from the
  module's weights (the forward keeps only the attended features); :func:`render_pixel_context`
  draws one pixel's row of it: where that pixel looks for context.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image
from scipy import ndimage
from torch import nn

# Neither colour is one the generated actors are painted in (red, green, blue, yellow, purple,
# orange), so a mask never vanishes into the actor it covers.
PRED_COLOR = (0, 229, 255)  # cyan fill with its outline: the prediction
TARGET_COLOR = (255, 0, 170)  # magenta outline: the ground truth
MARKER_COLOR = (255, 255, 255)
READABLE_PX = 256  # the shorter side a picture of a frame is enlarged to, at least
TITLE_PX = 22  # the title strip above each panel of a grid

ArrayLike = np.ndarray | torch.Tensor


def _numpy(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _check_frame(frame: ArrayLike) -> np.ndarray:
    image = _numpy(frame)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"frame: expected uint8 (H, W, 3), got {image.dtype} {image.shape}")
    return image


def _check_mask(mask: ArrayLike, size: tuple[int, int], name: str) -> np.ndarray:
    m = _numpy(mask)
    if m.shape != size:
        raise ValueError(f"{name}: expected a mask of the frame's size {size}, got {m.shape}")
    return m.astype(bool)


def clip_frame(frames: ArrayLike, index: int | None = None) -> np.ndarray:
    """One frame of a model clip ``(3, T, S, S)`` as uint8 ``(S, S, 3)``.

    The clip is float in [-1, 1] or already uint8 pixels (the datamodule's fast path).
    ``index`` defaults to ``T // 2``, the annotated frame.
    """
    clip = _numpy(frames)
    if clip.ndim != 4 or clip.shape[0] != 3:
        raise ValueError(f"frames: expected a clip (3, T, S, S), got {clip.shape}")
    t = clip.shape[1] // 2 if index is None else index
    if clip.dtype == np.uint8:
        return np.ascontiguousarray(clip[:, t].transpose(1, 2, 0))  # (S, S, 3)
    rgb = (clip[:, t].astype(np.float32).transpose(1, 2, 0) + 1.0) * 127.5  # (S, S, 3)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def mask_outline(mask: ArrayLike, width: int = 1) -> np.ndarray:
    """The inner boundary of a bool mask ``(H, W)``, ``width`` pixels thick (bool ``(H, W)``)."""
    m = _numpy(mask).astype(bool)
    if width < 1:
        raise ValueError(f"width: expected >= 1, got {width}")
    if not m.any():
        return m
    inner = ndimage.binary_erosion(m, iterations=width, border_value=0)
    return m & ~inner


def tint(frame: ArrayLike, mask: ArrayLike, color: Sequence[int], alpha: float = 0.5) -> np.ndarray:
    """``frame`` with the pixels of ``mask`` blended towards ``color`` by ``alpha``."""
    image = _check_frame(frame)
    m = _check_mask(mask, image.shape[:2], "mask")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a value in [0, 1], got {alpha}")
    out = image.copy()
    blended = (1 - alpha) * image[m].astype(np.float32) + alpha * np.asarray(color, np.float32)
    out[m] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


def overlay_masks(
    frame: ArrayLike,
    pred: ArrayLike | None = None,
    target: ArrayLike | None = None,
    *,
    alpha: float = 0.5,
    pred_color: Sequence[int] = PRED_COLOR,
    target_color: Sequence[int] = TARGET_COLOR,
    outline_width: int = 1,
) -> np.ndarray:
    """The prediction as a tinted fill with its outline, the ground truth as an outline.

    ``frame`` uint8 ``(H, W, 3)``; ``pred`` and ``target`` bool ``(H, W)`` (either may be None).
    Returns a new uint8 ``(H, W, 3)`` image; only masked and outline pixels change.
    """
    image = _check_frame(frame)
    size = image.shape[:2]
    out = image.copy()
    if pred is not None:
        p = _check_mask(pred, size, "pred")
        out = tint(out, p, pred_color, alpha)
        out[mask_outline(p, outline_width)] = pred_color
    if target is not None:
        out[mask_outline(_check_mask(target, size, "target"), outline_width)] = target_color
    return out


def mask_iou(pred: ArrayLike, target: ArrayLike) -> float:
    """IoU of two bool masks of one size; 1.0 when both are empty (the ACGA protocol's rule)."""
    p, t = _numpy(pred).astype(bool), _numpy(target).astype(bool)
    union = np.logical_or(p, t).sum()
    return float(np.logical_and(p, t).sum() / union) if union else 1.0


def _caption_lines(text: str, width_px: int, lines: int = 2, char_px: float = 6.6) -> str:
    """``text`` wrapped to ``lines`` lines of the width (the last cut with an ellipsis)."""
    chars = max(8, int(width_px / char_px))
    wrapped = textwrap.wrap(text, chars) or [""]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: chars - 1].rstrip() + "\u2026"
    return "\n".join(wrapped)


def render_overlay(
    frame: ArrayLike,
    pred: ArrayLike | None = None,
    target: ArrayLike | None = None,
    *,
    query: str = "",
    iou: float | None = None,
    min_size: int = READABLE_PX,
    alpha: float = 0.45,
) -> np.ndarray:
    """The overlay of :func:`overlay_masks`, readable: enlarged, captioned, with a legend.

    The frame and masks are enlarged by :func:`readable_factor` (nearest), the masks drawn at
    that size (outlines 2 pixels wide); above, the query and the IoU (computed from ``pred`` and
    ``target`` when ``iou`` is None and both are given), in two lines at most; below, a legend.
    The size depends only on the frame's: pictures of one batch can be shown as a strip.
    Returns uint8 ``(k * H + 64, k * W, 3)`` for the factor ``k``.
    """
    image = _check_frame(frame)
    k = readable_factor(image.shape[:2], min_size)
    big = upscale(image, k)
    p = None if pred is None else upscale(_check_mask(pred, image.shape[:2], "pred"), k)
    t = None if target is None else upscale(_check_mask(target, image.shape[:2], "target"), k)
    picture = overlay_masks(big, p, t, alpha=alpha, outline_width=2)
    if iou is None and pred is not None and target is not None:
        iou = mask_iou(pred, target)
    caption = query if iou is None else f"{query} (IoU {iou:.2f})"
    legend = [("prediction", PRED_COLOR, True)] if pred is not None else []
    legend += [("truth", TARGET_COLOR, False)] if target is not None else []
    return _captioned(picture, _caption_lines(caption, picture.shape[1]), legend)


def _captioned(
    picture: np.ndarray, caption: str, legend: Sequence[tuple[str, Sequence[int], bool]]
) -> np.ndarray:
    """``picture`` under a 40-pixel caption strip and over a 24-pixel legend strip."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    caption_px, legend_px, dpi = 40, 24, 100
    h, w = picture.shape[:2]
    height = caption_px + h + legend_px
    fig = Figure(figsize=(w / dpi, height / dpi), dpi=dpi, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, legend_px / height, 1, h / height))
    ax.imshow(picture, interpolation="nearest")
    ax.set_axis_off()
    fig.text(0.5, 1 - caption_px / 2 / height, caption, ha="center", va="center", fontsize=9)
    if legend:
        handles = [
            Patch(
                facecolor=np.asarray(c) / 255 if filled else "none",
                edgecolor=np.asarray(c) / 255,
                linewidth=2,
                label=label,
            )
            for label, c, filled in legend
        ]
        fig.legend(
            handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9,
            bbox_to_anchor=(0.5, 0), borderaxespad=0.2, handlelength=1.5, columnspacing=1.5,
        )  # fmt: skip
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def readable_factor(size: tuple[int, int], min_size: int = READABLE_PX) -> int:
    """The smallest integer factor that brings the shorter side of ``size`` to ``min_size``."""
    if min_size < 1:
        raise ValueError(f"min_size: expected >= 1, got {min_size}")
    return max(1, math.ceil(min_size / max(1, min(size))))


def upscale(image: ArrayLike, factor: int) -> np.ndarray:
    """``image`` ``(H, W, ...)`` with every pixel repeated ``factor`` x ``factor`` (nearest)."""
    if factor < 1:
        raise ValueError(f"factor: expected an integer >= 1, got {factor}")
    a = _numpy(image)
    return a.repeat(factor, axis=0).repeat(factor, axis=1)


def upsample_map(values: ArrayLike, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a ``(G, G)`` map to ``size = (H, W)`` (float32, same value range)."""
    x = torch.as_tensor(_numpy(values), dtype=torch.float32)
    if x.ndim != 2:
        raise ValueError(f"values: expected a 2-D map, got shape {tuple(x.shape)}")
    up = F.interpolate(x[None, None], size=tuple(size), mode="bilinear", align_corners=False)
    return up[0, 0].numpy()


def heatmap(
    values: ArrayLike, cmap: str = "jet", vmin: float | None = None, vmax: float | None = None
) -> np.ndarray:
    """A float map ``(H, W)`` coloured by ``cmap`` as uint8 ``(H, W, 3)``; the range defaults
    to the map's own minimum and maximum."""
    from matplotlib import colormaps

    v = _numpy(values).astype(np.float32)
    lo = float(v.min()) if vmin is None else vmin
    hi = float(v.max()) if vmax is None else vmax
    scaled = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
    rgba = colormaps[cmap](np.clip(scaled, 0.0, 1.0))  # (H, W, 4) in [0, 1]
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def blend_heatmap(
    frame: ArrayLike,
    values: ArrayLike,
    *,
    alpha: float = 0.55,
    cmap: str = "jet",
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray:
    """``frame`` (uint8 ``(H, W, 3)``) under a coloured map, upsampled from ``(G, G)`` if needed."""
    image = _check_frame(frame)
    v = _numpy(values)
    if v.shape != image.shape[:2]:
        v = upsample_map(v, image.shape[:2])
    colours = heatmap(v, cmap, vmin, vmax).astype(np.float32)
    mixed = (1 - alpha) * image.astype(np.float32) + alpha * colours
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------- words (VGLA)
def word_labels(query: str, num_words: int, word_vectors: Any = None) -> list[str]:
    """The word behind each of the first ``num_words`` attention slots of ``query``.

    Follows :func:`~acga_lightning.data.io.words.encode_query`: tokens, and a hyphenated token the
    vocabulary lacks split into its parts. Without ``word_vectors`` the split is guessed from the
    count; when the count still does not match, slots are labelled ``word 1``, ``word 2``, ...
    """
    from acga_lightning.data.io.words import tokenize

    tokens = tokenize(query)
    if word_vectors is not None:
        vocab = word_vectors.key_to_index
        keys = []
        for tok in tokens:
            split = "-" in tok and tok not in vocab
            keys.extend([p for p in tok.split("-") if p] if split else [tok])
        return (keys + [f"word {i + 1}" for i in range(len(keys), num_words)])[:num_words]
    if len(tokens) >= num_words:
        return tokens[:num_words]
    parts = [p for tok in tokens for p in tok.split("-") if p]
    if len(parts) >= num_words:
        return parts[:num_words]
    return [f"word {i + 1}" for i in range(num_words)]


def word_attention_maps(
    word_attention: ArrayLike, word_mask: ArrayLike | None = None
) -> np.ndarray:
    """VGLA weights of one sample ``(G*G, N)`` -> a ``(G, G)`` map per real word ``(N', G, G)``."""
    a = _numpy(word_attention).astype(np.float32)
    if a.ndim != 2:
        raise ValueError(f"word_attention: expected one sample's (G*G, N), got {a.shape}")
    g = math.isqrt(a.shape[0])
    if g * g != a.shape[0]:
        raise ValueError(f"word_attention: {a.shape[0]} pixels is not a square grid")
    if word_mask is not None:
        a = a[:, _numpy(word_mask).astype(bool)]
    return rearrange(a, "(h w) n -> n h w", h=g, w=g)


def _figure_grid(
    panels: Sequence[np.ndarray], titles: Sequence[str], columns: int, panel_px: int, dpi: int = 100
) -> np.ndarray:
    """Panels in a grid, each ``panel_px`` square under a title strip, as uint8 ``(H, W, 3)``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = max(1, min(columns, len(panels)))
    rows = math.ceil(len(panels) / columns)
    title_px = TITLE_PX
    cell_h = panel_px + title_px
    width, height = columns * panel_px, rows * cell_h
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    for k, (panel, title) in enumerate(zip(panels, titles, strict=True)):
        r, c = divmod(k, columns)
        bottom = height - (r * cell_h + title_px + panel_px)
        ax = fig.add_axes(
            (c * panel_px / width, bottom / height, panel_px / width, panel_px / height)
        )
        ax.imshow(panel, interpolation="nearest" if panel.shape[0] == panel_px else "bilinear")
        ax.set_axis_off()
        ax.set_title(title, fontsize=9, pad=3)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())  # (H, W, 4)
    return rgba[..., :3].copy()


def balanced_columns(count: int, max_columns: int = 5) -> int:
    """Columns for ``count`` panels in the fewest rows of at most ``max_columns``, the rows as
    even as they can be (5 words: one row of 5; 7: 4 + 3; 10: 5 + 5)."""
    if count < 1 or max_columns < 1:
        raise ValueError(f"count and max_columns: expected >= 1, got {count}, {max_columns}")
    rows = math.ceil(count / max_columns)
    return math.ceil(count / rows)


def render_word_attention(
    frame: ArrayLike,
    word_attention: ArrayLike,
    words: Sequence[str],
    *,
    word_mask: ArrayLike | None = None,
    scale: str = "absolute",
    columns: int | None = None,
    panel_px: int | None = None,
    alpha: float = 0.55,
    cmap: str = "jet",
) -> np.ndarray:
    """Paper Fig. 5: one panel per word, VGLA's weight of that word over the frame's pixels.

    ``word_attention`` ``(G*G, N)`` of one sample; ``words`` the labels of the real words (see
    :func:`word_labels`), ``word_mask`` ``(N,)`` which slots are real (default: the first
    ``len(words)``). ``scale="absolute"`` colours weights 0..1 on one scale, so panels compare
    across words; ``"per_word"`` stretches each map to its own range. ``columns`` defaults to
    :func:`balanced_columns` (no empty panel but in the last row, fewer than the rows);
    ``panel_px`` to the frame enlarged by an integer factor (nearest) to at least 128 pixels.
    Returns uint8 ``(rows * (panel_px + 22), columns * panel_px, 3)``, ``columns`` capped at the
    number of words.
    """
    if scale not in ("absolute", "per_word"):
        raise ValueError(f"scale: expected 'absolute' or 'per_word', got {scale!r}")
    image = _check_frame(frame)
    if word_mask is None:
        word_mask = np.arange(_numpy(word_attention).shape[-1]) < len(words)
    maps = word_attention_maps(word_attention, word_mask)  # (N', G, G)
    if len(words) != len(maps):
        raise ValueError(f"words: {len(words)} labels for {len(maps)} real words")
    vmin, vmax = (0.0, 1.0) if scale == "absolute" else (None, None)
    if panel_px is None:
        k = readable_factor(image.shape[:2], READABLE_PX // 2)
        panel_px = k * image.shape[0]
    big = _panel_frame(image, panel_px)
    panels = [blend_heatmap(big, m, alpha=alpha, cmap=cmap, vmin=vmin, vmax=vmax) for m in maps]
    titles = [f"{w} ({float(m.max()):.2f})" for w, m in zip(words, maps, strict=True)]
    columns = balanced_columns(len(panels)) if columns is None else columns
    return _figure_grid(panels, titles, columns, panel_px)


def _panel_frame(image: np.ndarray, panel_px: int) -> np.ndarray:
    """``image`` resized (nearest) to ``panel_px`` x ``panel_px``: pixels stay sharp squares."""
    if image.shape[:2] == (panel_px, panel_px):
        return image
    return np.asarray(Image.fromarray(image).resize((panel_px, panel_px), Image.Resampling.NEAREST))


def render_sample(
    frame: ArrayLike,
    pred: ArrayLike,
    target: ArrayLike | None,
    query: str,
    word_attention: ArrayLike | None = None,
    words: Sequence[str] | None = None,
    *,
    word_mask: ArrayLike | None = None,
    min_size: int = READABLE_PX,
    gap_px: int = 12,
) -> np.ndarray:
    """One sample at a glance: :func:`render_overlay` with the word maps to its right.

    Without ``word_attention`` this is the overlay alone. The word panels are sized so that
    their rows stand as tall as the overlay; the shorter side is padded with white at its foot.
    """
    overlay = render_overlay(frame, pred, target, query=query, min_size=min_size)
    if word_attention is None:
        return overlay
    if words is None:
        raise ValueError("words: labels are needed with word_attention (see word_labels)")
    count = len(words)
    columns = balanced_columns(count)
    rows = math.ceil(count / columns)
    panel_px = max(64, (overlay.shape[0] - rows * TITLE_PX) // rows)
    grid = render_word_attention(
        frame, word_attention, words, word_mask=word_mask, columns=columns, panel_px=panel_px
    )
    height = max(overlay.shape[0], grid.shape[0])
    out = np.full((height, overlay.shape[1] + gap_px + grid.shape[1], 3), 255, np.uint8)
    out[: overlay.shape[0], : overlay.shape[1]] = overlay
    out[: grid.shape[0], overlay.shape[1] + gap_px :] = grid
    return out


# ----------------------------------------------------------------------------- pixels (LGVA)
def lgva_attention(lgva: nn.Module, visual: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
    """LGVA's attention matrix ``(B, HW, HW)`` recomputed from the module's weights.

    ``lgva`` is a :class:`~acga_lightning.models.attention.LanguageGuidedVisionAttention`;
    ``visual`` the encoder's F_V ``(B, C_v, G, G)`` (before attention) and ``sentence`` ``(B, D)``.
    Row ``i`` is softmax over pixels ``j`` of ``Q_i K_j / sqrt(C)``, exactly the weights the
    forward applies to V (eq. 6-8). Pixels are numbered row-major: ``i = y * G + x``.
    """
    from acga_lightning.models.coords import append_coordinates

    if visual.ndim != 4 or sentence.ndim != 2 or visual.shape[0] != sentence.shape[0]:
        raise ValueError(
            f"visual (B, C_v, G, G) and sentence (B, D) must share B, got "
            f"{tuple(visual.shape)} and {tuple(sentence.shape)}"
        )
    visual_coords = rearrange(append_coordinates(visual), "b c h w -> b (h w) c")  # (B, HW, C)
    gate = lgva.sentence_gate(sentence)[:, None, :]  # (B, 1, C)
    query = lgva.query(visual_coords) * gate  # (B, HW, C)
    key = lgva.key(visual_coords) * gate  # (B, HW, C)
    scores = query @ key.transpose(1, 2) / math.sqrt(query.shape[-1])  # (B, HW, HW)
    return scores.softmax(dim=-1)


@torch.no_grad()
def encode_inputs(model: nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """What a segmenter's attention sees for a batch: ``visual`` F_V ``(B, C_v, G, G)``,
    ``text`` F_T ``(B, N, D)``, ``word_mask`` ``(B, N)`` and ``sentence`` ``(B, D)``.

    As the segmenter's forward: unless its ``mask_padding`` is set, every word position counts
    (``word_mask`` all True), as in the official model."""
    from acga_lightning.data.io.resize import normalise_frames
    from acga_lightning.models.attention import sentence_feature

    device = next(model.parameters()).device
    frames, features = batch.get("frames"), batch.get("features")
    if frames is not None and frames.dtype == torch.uint8:
        frames = normalise_frames(frames.to(device))  # (B, 3, T, S, S) in [-1, 1]
    visual = model.video_encoder(
        frames=None if frames is None else frames.to(device),
        features=None if features is None else features.to(device),
    )
    word_mask = batch["word_mask"].to(device).bool()
    hparams = getattr(model, "hparams", None)
    if hparams is not None and not hparams.get("mask_padding", False):
        word_mask = torch.ones_like(word_mask)
    text = model.text_encoder(batch["words"].to(device), word_mask)
    return {
        "visual": visual,
        "text": text,
        "word_mask": word_mask,
        "sentence": sentence_feature(text, word_mask),
    }


@torch.no_grad()
def pixel_context(model: nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
    """LGVA's attention ``(B, HW, HW)`` of a segmenter (ACGASegmenter) on a batch."""
    lgva = getattr(model.attention, "lgva", None)
    if lgva is None:
        name = getattr(model.attention, "registry_name", type(model.attention).__name__)
        raise ValueError(f"model: attention {name!r} has no LGVA branch (use acga or lgva)")
    inputs = encode_inputs(model, batch)
    return lgva_attention(lgva, inputs["visual"], inputs["sentence"])


def grid_index(pixel: tuple[int, int], frame_size: tuple[int, int], grid: int) -> int:
    """The row-major grid cell ``y * G + x`` that frame pixel ``(y, x)`` falls in."""
    y, x = pixel
    h, w = frame_size
    if not (0 <= y < h and 0 <= x < w):
        raise ValueError(f"pixel: {pixel} lies outside the {h}x{w} frame")
    return (y * grid // h) * grid + (x * grid // w)


def render_pixel_context(
    frame: ArrayLike,
    attention: ArrayLike,
    pixel: tuple[int, int],
    *,
    title: str | None = None,
    panel_px: int = READABLE_PX,
    alpha: float = 0.55,
    cmap: str = "jet",
) -> np.ndarray:
    """Where frame pixel ``(y, x)`` looks for context: its LGVA row over the frame.

    ``attention`` is one sample's ``(HW, HW)`` matrix (or already the pixel's row ``(HW,)``).
    The frame is enlarged (nearest) to ``panel_px``, the map stretched to its own range and the
    pixel marked with a white cross. Returns uint8 ``(panel_px + 22, panel_px, 3)``.
    """
    image = _check_frame(frame)
    a = _numpy(attention).astype(np.float32)
    hw = a.shape[-1]
    g = math.isqrt(hw)
    if g * g != hw or a.ndim not in (1, 2) or (a.ndim == 2 and a.shape[0] != hw):
        raise ValueError(f"attention: expected (HW, HW) or (HW,) on a square grid, got {a.shape}")
    row = a if a.ndim == 1 else a[grid_index(pixel, image.shape[:2], g)]
    big = _panel_frame(image, panel_px)  # the marker is drawn at the panel's size
    panel = blend_heatmap(big, row.reshape(g, g), alpha=alpha, cmap=cmap)
    h, w = image.shape[:2]
    y, x = (pixel[0] * panel_px + panel_px // 2) // h, (pixel[1] * panel_px + panel_px // 2) // w
    arm = max(3, panel_px // 16)
    for offset in (-1, 0, 1):  # a cross 3 pixels thick
        panel[max(0, y - arm) : y + arm + 1, min(max(x + offset, 0), panel_px - 1)] = MARKER_COLOR
        panel[min(max(y + offset, 0), panel_px - 1), max(0, x - arm) : x + arm + 1] = MARKER_COLOR
    label = title if title is not None else f"context of pixel (y={pixel[0]}, x={pixel[1]})"
    return _figure_grid([panel], [label], 1, panel_px)


def mask_centre(mask: ArrayLike) -> tuple[int, int] | None:
    """The pixel nearest the centre of mass of a bool mask ``(H, W)``; None when it is empty."""
    m = _numpy(mask).astype(bool)
    if not m.any():
        return None
    ys, xs = np.nonzero(m)
    cy, cx = ys.mean(), xs.mean()
    k = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))  # a pixel inside the mask
    return int(ys[k]), int(xs[k])


def save_png(image: ArrayLike, path: str | Path) -> Path:
    """Write a uint8 ``(H, W, 3)`` or ``(H, W)`` image as PNG (folders made); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_numpy(image)).save(path)
    return path
