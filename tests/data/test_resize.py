"""Resize policies: geometry, frames, masks, and restore_mask as their exact inverse."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from acga_lightning.data.io.resize import (
    compute_geometry,
    frames_to_model_input,
    normalise_frames,
    resize_frames,
    resize_mask,
    restore_mask,
)
from acga_lightning.data.sample import frames_to_tensor

SIZES = [(320, 570), (320, 428), (240, 320), (64, 96), (100, 60), (512, 512), (700, 900)]


def blob_mask(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random shape (a few ellipses) covering part of the frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    mask = np.zeros((h, w), bool)
    for _ in range(3):
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.1, 0.9) * w
        ry, rx = rng.uniform(0.1, 0.3) * h, rng.uniform(0.1, 0.3) * w
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return mask


def test_cover_geometry_of_an_a2d_frame() -> None:
    g = compute_geometry((320, 570), 512, "cover")
    assert g.resized == (512, 912) and g.offset == (0, -200)
    assert g.scale == (1.6, 912 / 570)
    g = compute_geometry((320, 570), 512, "letterbox")
    assert g.resized == (287, 512) and g.offset == (112, 0)


@pytest.mark.parametrize("policy", ["cover", "letterbox"])
@pytest.mark.parametrize("orig", SIZES)
def test_geometry_is_exactly_invertible(policy: str, orig: tuple[int, int]) -> None:
    g = compute_geometry(orig, 512, policy)
    h, w = orig
    corners = np.array([[0, 0], [h, w], [h / 2, w / 2], [1.25, w - 3.5]])
    np.testing.assert_allclose(g.to_orig(g.to_canvas(corners)), corners, rtol=0, atol=1e-9)
    # The frame's corners land on the resized image's corners, placed at the offset.
    np.testing.assert_allclose(g.to_canvas([[0, 0]]), [g.offset])
    np.testing.assert_allclose(g.to_canvas([[h, w]]), [np.add(g.offset, g.resized)])
    if policy == "cover":  # the canvas lies inside the resized frame, centred (crop)
        assert all(-o >= 0 and -o + 512 <= r for o, r in zip(g.offset, g.resized, strict=True))
        assert all(abs((r - 512) - 2 * -o) <= 1 for o, r in zip(g.offset, g.resized, strict=True))
    else:  # the resized frame lies inside the canvas, centred (padding)
        assert all(o >= 0 and o + r <= 512 for o, r in zip(g.offset, g.resized, strict=True))
        assert max(g.resized) == 512


def test_geometry_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="policy"):
        compute_geometry((10, 10), 8, "stretch")
    with pytest.raises(ValueError, match="orig_size"):
        compute_geometry((0, 10), 8)
    with pytest.raises(ValueError, match="size"):
        compute_geometry((10, 10), 0)


def test_resize_frames_cover_crops_and_letterbox_pads() -> None:
    frames = np.full((2, 40, 80, 3), 100, np.uint8)
    frames[:, :, :10] = 255  # a bright left border, cropped away by cover
    cover = resize_frames(frames, 32, "cover")
    assert cover.shape == (2, 32, 32, 3) and cover.dtype == torch.uint8
    assert int(cover.max()) == 100
    letter = resize_frames(frames, 32, "letterbox")  # 16 x 32 image, 8 rows of black each side
    assert (letter[:, :8] == 0).all() and (letter[:, 24:] == 0).all()
    assert (letter[:, 8:24, 0] == 255).all() and (letter[:, 8:24, -1] == 100).all()
    single = resize_frames(frames[0], 32, "cover")
    assert torch.equal(single, cover[0])


def test_resize_frames_rejects_non_uint8() -> None:
    with pytest.raises(ValueError, match="frames"):
        resize_frames(np.zeros((2, 8, 8, 3), np.float32), 4)


@pytest.mark.parametrize("policy", ["cover", "letterbox"])
@pytest.mark.parametrize("orig", SIZES)
@pytest.mark.parametrize("size", [512, 64])
def test_restore_inverts_resize_within_boundary_pixels(
    policy: str, orig: tuple[int, int], size: int
) -> None:
    h, w = orig
    mask = blob_mask(h, w, seed=h + w)
    target = resize_mask(mask, size, policy)
    assert target.shape == (size, size) and target.dtype == torch.float32
    assert set(target.unique().tolist()) <= {0.0, 1.0}
    restored = restore_mask(target.bool(), orig, policy).numpy()
    assert restored.shape == orig and restored.dtype == bool
    g = compute_geometry(orig, size, policy)
    # Pixels of the original that the canvas shows (cover crops some away: they come back False).
    visible = np.zeros(orig, bool)
    y0, x0 = np.floor(g.to_orig([[0, 0]])[0]).clip(0).astype(int)
    y1, x1 = np.ceil(g.to_orig([[size, size]])[0]).astype(int)
    visible[y0:y1, x0:x1] = True
    assert not restored[~visible].any()
    # Inside, disagreements sit on the mask boundary: within one model pixel of it.
    tol = int(np.ceil(1 / min(g.scale))) + 1
    boundary = ndimage.binary_dilation(mask, iterations=tol) & ~ndimage.binary_erosion(
        mask, iterations=tol
    )
    inner = visible & ~ndimage.binary_dilation(~visible, iterations=tol)
    wrong = (restored != mask) & inner
    assert not (wrong & ~boundary).any()
    assert wrong.sum() <= 0.02 * max(mask.sum(), 1) + 2 * (h + w)


def test_restore_of_a_full_canvas_covers_exactly_the_centre_crop() -> None:
    restored = restore_mask(torch.ones(512, 512, dtype=torch.bool), (320, 570), "cover")
    cols = np.nonzero(restored.numpy().any(0))[0]
    # 200 resized columns are cropped from each side: 200 / 1.6 = 125 original columns.
    assert abs(cols[0] - 125) <= 1 and abs(cols[-1] + 1 - (570 - 125)) <= 1
    assert not restored.all(1).any() and restored[:, 200].all()
    letter = restore_mask(torch.ones(512, 512, dtype=torch.bool), (320, 570), "letterbox")
    assert letter.all()


def test_restore_batches_and_floats() -> None:
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(3, 64, 64, generator=g)
    out = restore_mask(probs, (40, 90), "cover")
    assert out.shape == (3, 40, 90) and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    for i in range(3):
        torch.testing.assert_close(out[i], restore_mask(probs[i], (40, 90), "cover"))
    bools = restore_mask(probs > 0.5, (40, 90), "cover")
    assert bools.dtype == torch.bool and bools.shape == (3, 40, 90)
    logits = restore_mask(torch.full((64, 64), 5.0), (40, 90), "cover", fill=-30.0)
    assert float(logits.max()) == 5.0 and float(logits.min()) < 0  # the crop border gets fill


def test_restore_rejects_non_square() -> None:
    with pytest.raises(ValueError, match="mask"):
        restore_mask(torch.zeros(4, 5), (10, 10))


def test_read_only_and_flipped_arrays_are_accepted() -> None:
    frames = np.arange(2 * 8 * 12 * 3, dtype=np.uint8).reshape(2, 8, 12, 3)
    mask = frames[0, :, :, 0] > 100
    flipped = resize_frames(frames[:, :, ::-1], 8)
    assert torch.equal(flipped, resize_frames(np.ascontiguousarray(frames[:, :, ::-1]), 8))
    frames.flags.writeable = False
    assert torch.equal(resize_frames(frames, 8), resize_frames(frames.copy(), 8))
    assert torch.equal(resize_mask(mask[:, ::-1], 8), resize_mask(mask[:, ::-1].copy(), 8))


@pytest.mark.parametrize("policy", ["cover", "letterbox"])
def test_model_input_equals_resize_then_normalise(policy: str) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 40, 70, 3), dtype=np.uint8)
    expected = frames_to_tensor(resize_frames(frames, 32, policy))  # (3, T, S, S)
    got = frames_to_model_input(frames, 32, policy)
    assert got.shape == (3, 3, 32, 32) and got.dtype == torch.float32 and got.is_contiguous()
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert float(got.min()) >= -1.0 and float(got.max()) <= 1.0


@pytest.mark.parametrize("policy", ["cover", "letterbox"])
def test_uint8_model_input_normalises_to_the_float_one_exactly(policy: str) -> None:
    frames = np.random.default_rng(1).integers(0, 256, (3, 40, 70, 3), dtype=np.uint8)
    pixels = frames_to_model_input(frames, 32, policy, dtype="uint8")  # (3, T, S, S)
    assert pixels.shape == (3, 3, 32, 32) and pixels.dtype == torch.uint8
    assert pixels.is_contiguous()
    assert torch.equal(pixels, resize_frames(frames, 32, policy).permute(3, 0, 1, 2))
    floats = frames_to_model_input(frames, 32, policy)
    assert torch.equal(floats, pixels.float() / 127.5 - 1)  # bit for bit, not approximately
    assert torch.equal(floats, normalise_frames(pixels))


def test_normalise_frames_maps_the_ends_and_rejects_floats() -> None:
    x = torch.arange(256, dtype=torch.uint8)
    y = normalise_frames(x)
    assert y.dtype == torch.float32 and y[0] == -1.0 and y[255] == 1.0
    torch.testing.assert_close(y.double(), x.double() / 127.5 - 1, rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="frames"):
        normalise_frames(x.float())
    with pytest.raises(ValueError, match="dtype"):
        frames_to_model_input(np.zeros((1, 8, 8, 3), np.uint8), 8, dtype="float16")
