"""Clip augmentation: the same transform on every frame and the mask; flips swap left/right."""

from __future__ import annotations

import numpy as np
import pytest

from acga_lightning.data.transforms import ClipAugment, swap_left_right


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("dog on the left", "dog on the right"),
        ("left dog and right cat", "right dog and left cat"),
        ("the leftmost man", "the rightmost man"),
        ("the right-most ball", "the left-most ball"),
        ("bright upright leftover copyright", "bright upright leftover copyright"),
        ("man, left.", "man, right."),
    ],
)
def test_swap_left_right(query: str, expected: str) -> None:
    assert swap_left_right(query) == expected
    assert swap_left_right(expected) == query


def clip_with_mask_drawn_in(t: int = 4, h: int = 48, w: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Frames whose red channel is the mask: a transform applied alike keeps them in step."""
    mask = np.zeros((h, w), bool)
    mask[10:30, 5:25] = True
    frames = np.zeros((t, h, w, 3), np.uint8)
    frames[..., 0] = mask * 255
    frames[..., 1] = np.arange(t)[:, None, None] * 20  # frames differ from one another
    return frames, mask


def test_flip_flips_frames_mask_and_query() -> None:
    frames, mask = clip_with_mask_drawn_in()
    aug = ClipAugment(p_flip=1.0, p_affine=0.0, p_color=0.0, seed=0)
    out, out_mask, query = aug(frames, mask, "ball on the left")
    np.testing.assert_array_equal(out, frames[:, :, ::-1])
    np.testing.assert_array_equal(out_mask, mask[:, ::-1])
    assert query == "ball on the right" and out_mask.dtype == bool


def test_no_flip_keeps_the_query() -> None:
    frames, mask = clip_with_mask_drawn_in()
    out, out_mask, query = ClipAugment(p_flip=0.0, p_affine=0.0, p_color=0.0)(frames, mask, "left")
    np.testing.assert_array_equal(out, frames)
    np.testing.assert_array_equal(out_mask, mask)
    assert query == "left"


@pytest.mark.parametrize("seed", range(4))
def test_affine_and_colour_are_identical_on_all_frames_and_the_mask(seed: int) -> None:
    frames, mask = clip_with_mask_drawn_in()
    aug = ClipAugment(p_flip=0.5, p_affine=1.0, p_color=1.0, scale=(0.8, 1.2), seed=seed)
    out, out_mask, _ = aug(frames, mask, "x")
    assert out.shape == frames.shape and out.dtype == np.uint8 and out_mask.shape == mask.shape
    assert not np.array_equal(out_mask, mask)  # the affine moved it
    red = out[..., 0].astype(int)
    for t in range(1, len(out)):  # the same geometry and colour change on every frame
        np.testing.assert_array_equal(red[t], red[0])
    # ...and on the mask: it sits where the red square went (bilinear edges aside).
    inside, outside = red[0][out_mask], red[0][~out_mask]
    assert inside.mean() > 150 and np.mean(outside > 100) < 0.05


def test_seed_makes_it_reproducible() -> None:
    frames, mask = clip_with_mask_drawn_in()
    a = ClipAugment(p_affine=1.0, p_color=1.0, seed=3)(frames, mask, "left")
    b = ClipAugment(p_affine=1.0, p_color=1.0, seed=3)(frames, mask, "left")
    np.testing.assert_array_equal(a[0], b[0])
    assert a[2] == b[2]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="p_flip"):
        ClipAugment(p_flip=1.5)
    with pytest.raises(ValueError, match="scale"):
        ClipAugment(scale=(1.2, 0.8))
    frames, mask = clip_with_mask_drawn_in()
    with pytest.raises(ValueError, match="frames"):
        ClipAugment()(frames.astype(np.float32), mask, "q")
    with pytest.raises(ValueError, match="mask"):
        ClipAugment()(frames, mask[:-1], "q")
