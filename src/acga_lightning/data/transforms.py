"""Training augmentation applied identically to every frame of a clip and to its mask.

Horizontal flips are done here (so the query can follow: ``left`` and ``right`` swap); the small
affine (scale/translate) and the brightness/contrast jitter come from albumentations, whose
``images=`` target samples one set of parameters per call and applies it to all frames and the
mask. Hue/saturation jitter is deliberately off: queries name colours ("man in red shirt", and
the generated toy data relies on colour words), and changing hue would make them false.
Augmentation is for training only; evaluation readers get ``transform=None``.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations calls the network otherwise

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

_SIDE = re.compile(r"\b(left|right)(?=most\b|\b)")


def swap_left_right(query: str) -> str:
    """Swap ``left``/``right`` as words, also in ``leftmost``/``left-most`` (not ``bright``)."""
    return _SIDE.sub(lambda m: "right" if m.group(1) == "left" else "left", query)


@dataclass(frozen=True)
class AugmentSettings:
    """The datamodules' ``augment_options``: the arguments of :class:`ClipAugment`."""

    p_flip: float = 0.5
    p_affine: float = 0.5
    scale: tuple[float, float] = (0.9, 1.1)
    translate: float = 0.05
    p_color: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    seed: int | None = None

    def build(self) -> ClipAugment:
        return ClipAugment(**asdict(self))


class ClipAugment:
    """Random flip, small affine and brightness/contrast jitter, the same on all frames and mask.

    Called as ``augment(frames uint8 (T, H, W, 3), mask (H, W), query) -> (frames, mask, query)``
    with shapes and dtypes kept. A flip swaps ``left`` and ``right`` in the query.
    """

    def __init__(
        self,
        p_flip: float = 0.5,
        p_affine: float = 0.5,
        scale: tuple[float, float] = (0.9, 1.1),
        translate: float = 0.05,
        p_color: float = 0.5,
        brightness: float = 0.2,
        contrast: float = 0.2,
        seed: int | None = None,
    ) -> None:
        for name, p in (("p_flip", p_flip), ("p_affine", p_affine), ("p_color", p_color)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1], got {p}")
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale: expected 0 < low <= high, got {scale}")
        self.p_flip = p_flip
        self.rng = np.random.default_rng(seed)
        self.pipeline = A.Compose(
            [
                A.Affine(
                    scale=scale,
                    translate_percent=(-translate, translate),
                    interpolation=cv2.INTER_LINEAR,
                    mask_interpolation=cv2.INTER_NEAREST,
                    border_mode=cv2.BORDER_CONSTANT,
                    p=p_affine,
                ),
                A.RandomBrightnessContrast(
                    brightness_limit=brightness, contrast_limit=contrast, p=p_color
                ),
            ],
            seed=None if seed is None else int(self.rng.integers(2**31)),
        )

    def __call__(
        self, frames: np.ndarray, mask: np.ndarray, query: str
    ) -> tuple[np.ndarray, np.ndarray, str]:
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(
                f"frames: expected uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}"
            )
        if mask.shape != frames.shape[1:3]:
            raise ValueError(f"mask: expected {frames.shape[1:3]}, got {mask.shape}")
        mask_dtype = mask.dtype
        if self.rng.random() < self.p_flip:
            frames = frames[:, :, ::-1]
            mask = mask[:, ::-1]
            query = swap_left_right(query)
        out = self.pipeline(
            images=np.ascontiguousarray(frames), mask=np.ascontiguousarray(mask, np.uint8)
        )
        return np.asarray(out["images"]), np.asarray(out["mask"]).astype(mask_dtype), query
