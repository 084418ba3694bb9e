"""The official ACGA release's evaluation (``util/tool.py`` ``report_result``), as an option.

How the official code turns a batch into scored masks, which this module reproduces:

1. the final 512 x 512 logits go through a sigmoid and are multiplied by 255 (float32); the
   foreground is where that map is ``>`` 0.5 x its own maximum (uint8 0/1);
2. the prediction AND the 512 x 512 target (the stored ``mask.h5`` mask, cast to uint8) are each
   mapped to the frame's original size by :func:`resize_and_crop`: the square is resized
   (OpenCV bilinear on uint8) to ``round(max(h, w))`` on both sides and centre-cropped to
   ``h x w``. This is not the inverse of the square crop that made the input (that would
   restore the cropped-away border as background); it is what the published table measured;
3. a pixel is predicted where the mapped prediction is 1 and true where the mapped target is 1;
   IoU = (I + 1e-6) / (U + 1e-6), P@K counts ``IoU >= K``, mAP is the mean of P@K over
   0.50:0.05:0.95, overall IoU = sum I / sum U (protocol ``acga_release`` of
   :mod:`acga_lightning.metrics.functional`).

``ACGASegmenter(evaluation="official_release")`` scores validation and test batches this way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

RELATIVE_THRESHOLD = 0.5


def resize_and_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The official ``resize_and_crop``: scale ``image`` to cover ``height x width``, centre-crop.

    ``image`` (H, W) or (H, W, C), any dtype OpenCV resizes (uint8 here). The scale is
    ``max(height / H, width / W)``, the resized sides are rounded half to even (``np.round``),
    the crop offsets are ``(resized - wanted) // 2``, and the resize is ``cv2.resize``'s
    default (bilinear; on uint8 OpenCV rounds fixed-point weights, so a 0/1 map stays 0/1).
    """
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - opencv comes with albumentations
        raise ImportError("the official evaluation needs OpenCV (opencv-python-headless)") from err
    if height <= 0 or width <= 0:
        raise ValueError(f"height, width: expected positive sizes, got {height}, {width}")
    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    resized_h, resized_w = int(np.round(h * scale)), int(np.round(w * scale))
    top, left = (resized_h - height) // 2, (resized_w - width) // 2
    resized = cv2.resize(image, (resized_w, resized_h))
    return np.ascontiguousarray(resized[top : top + height, left : left + width])


def official_release_predictions(
    logits: torch.Tensor, orig_sizes: Sequence[tuple[int, int]]
) -> list[torch.Tensor]:
    """Boolean predictions at each frame's size as ``report_result`` makes them: the map
    ``sigmoid x 255`` thresholded at half its maximum, then through :func:`resize_and_crop`.

    ``logits`` (B, 1, S, S); returns CPU bool tensors ``(h, w)``.
    """
    if logits.ndim != 4 or logits.shape[1] != 1:
        raise ValueError(f"logits: expected (B, 1, S, S), got {tuple(logits.shape)}")
    scaled = torch.sigmoid(logits.detach().float())[:, 0] * 255.0  # (B, S, S)
    peak = scaled.flatten(1).amax(dim=1)[:, None, None]  # (B, 1, 1)
    foreground = (scaled > peak * RELATIVE_THRESHOLD).to(torch.uint8).cpu().numpy()
    return [
        torch.from_numpy(resize_and_crop(pred, int(size[0]), int(size[1])) == 1)
        for pred, size in zip(foreground, orig_sizes, strict=True)
    ]


def official_release_masks(
    logits: torch.Tensor,
    targets: torch.Tensor,
    orig_sizes: Sequence[tuple[int, int]],
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Boolean prediction and target masks at each frame's size, as ``report_result`` makes them.

    ``logits`` (B, 1, S, S): the model's final map; ``targets`` (B, S, S): the model-resolution
    target (the release's ``large`` mask), cast to uint8 as the official code does. Returns two
    lists of CPU bool tensors ``(h, w)``.
    """
    if logits.ndim != 4 or logits.shape[1] != 1:
        raise ValueError(f"logits: expected (B, 1, S, S), got {tuple(logits.shape)}")
    if targets.shape != logits[:, 0].shape:
        raise ValueError(
            f"targets: expected {tuple(logits[:, 0].shape)} like the logits, "
            f"got {tuple(targets.shape)}"
        )
    preds = official_release_predictions(logits, orig_sizes)
    stored = targets.detach().float().cpu().numpy().astype(np.uint8)  # (B, S, S)
    trues = [
        torch.from_numpy(resize_and_crop(true, int(size[0]), int(size[1])) == 1)
        for true, size in zip(stored, orig_sizes, strict=True)
    ]
    return preds, trues
