"""viz: overlays change exactly the masked pixels, attention pictures have the promised sizes,
and the recomputed LGVA attention is the one the module's forward applies."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from einops import rearrange
from PIL import Image

from acga_lightning import viz
from acga_lightning.data import frames_to_tensor
from acga_lightning.models.attention import LanguageGuidedVisionAttention
from acga_lightning.models.coords import append_coordinates

TITLE_PX = viz.TITLE_PX


def gray_frame(h=40, w=60, value=100):
    return np.full((h, w, 3), value, np.uint8)


def square_mask(h=40, w=60, top=10, left=20, size=10):
    m = np.zeros((h, w), bool)
    m[top : top + size, left : left + size] = True
    return m


def test_overlay_changes_only_masked_and_outline_pixels():
    frame = gray_frame()
    pred, target = square_mask(), square_mask(top=22, left=5, size=12)
    out = viz.overlay_masks(frame, pred, target)
    assert out.shape == frame.shape and out.dtype == np.uint8
    changed = (out != frame).any(axis=-1)
    assert changed[pred].all()  # the fill
    target_outline = viz.mask_outline(target)
    assert (out[target_outline] == viz.TARGET_COLOR).all()
    assert not changed[~pred & ~target_outline].any()
    assert not changed[target & ~target_outline].any()  # the truth is drawn as an outline only
    assert (out[viz.mask_outline(pred)] == viz.PRED_COLOR).all()
    # pred and target in different colours
    assert tuple(out[pred & ~viz.mask_outline(pred)][0]) != tuple(viz.TARGET_COLOR)
    np.testing.assert_array_equal(frame, gray_frame())  # the input is not modified


def test_tint_blends_by_alpha_and_outline_is_the_inner_ring():
    frame, mask = gray_frame(), square_mask()
    assert (viz.tint(frame, mask, (200, 0, 0), alpha=0.0) == frame).all()
    assert (viz.tint(frame, mask, (200, 0, 0), alpha=1.0)[mask] == (200, 0, 0)).all()
    assert (viz.tint(frame, mask, (200, 0, 0), alpha=0.5)[mask] == (150, 50, 50)).all()
    assert viz.mask_outline(mask).sum() == 4 * 10 - 4
    assert viz.mask_outline(mask, width=2).sum() == 100 - 36
    edge = np.zeros((5, 5), bool)
    edge[:, :2] = True  # touching the border: the border side is outlined too
    assert viz.mask_outline(edge).sum() == 10


def test_overlay_rejects_masks_of_another_size():
    with pytest.raises(ValueError, match="pred"):
        viz.overlay_masks(gray_frame(), pred=np.zeros((10, 10), bool))
    with pytest.raises(ValueError, match="frame"):
        viz.overlay_masks(np.zeros((4, 4), np.float32))


def test_clip_frame_inverts_the_model_input():
    frames = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    clip = frames_to_tensor(frames)  # (3, T, S, S)
    np.testing.assert_array_equal(viz.clip_frame(clip), frames[2])
    np.testing.assert_array_equal(viz.clip_frame(clip, 0), frames[0])
    pixels = torch.from_numpy(frames).permute(3, 0, 1, 2)  # uint8 clip (the datamodule's)
    np.testing.assert_array_equal(viz.clip_frame(pixels), frames[2])


def test_pixel_context_is_the_same_for_uint8_and_float_frames():
    from acga_lightning import ACGASegmenter

    torch.manual_seed(0)
    small3d = {"name": "small3d", "widths": [4, 4, 8, 8]}
    model = ACGASegmenter(video_encoder=small3d, num_frames=4, frame_size=32).eval()
    pixels = torch.randint(0, 256, (1, 3, 4, 32, 32), dtype=torch.uint8)
    batch = {"words": torch.randn(1, 3, 300), "word_mask": torch.ones(1, 3, dtype=torch.bool)}
    as_uint8 = viz.pixel_context(model, {**batch, "frames": pixels})
    as_float = viz.pixel_context(model, {**batch, "frames": pixels.float() / 127.5 - 1})
    assert torch.equal(as_uint8, as_float)


def word_attention(g=4, n=6, real=3, hot=((0, 0), (3, 3), (0, 3))):
    """(G*G, N) weights: word k puts all weight on cell hot[k]; padding words get none."""
    a = torch.zeros(g * g, n)
    for k, (y, x) in enumerate(hot[:real]):
        a[:, k] = 0.0
        a[y * g + x, :] = 0.0
        a[y * g + x, k] = 1.0
    return a


def test_word_attention_grid_size_and_hot_cells():
    frame, words = gray_frame(64, 64), ["dog", "on", "left"]
    a = word_attention()
    mask = np.arange(6) < 3
    maps = viz.word_attention_maps(a, mask)
    assert maps.shape == (3, 4, 4) and maps[1, 3, 3] == 1.0
    grid = viz.render_word_attention(frame, a, words, word_mask=mask, columns=2, panel_px=100)
    assert grid.shape == (2 * (100 + TITLE_PX), 2 * 100, 3) and grid.dtype == np.uint8
    # panel 0 ("dog") is hot (red under jet) at its top-left, cold (blue) at its bottom-right
    top_left = grid[TITLE_PX + 5, 5].astype(int)
    bottom_right = grid[TITLE_PX + 95, 95].astype(int)
    assert top_left[0] > top_left[2] and bottom_right[2] > bottom_right[0]
    one_row = viz.render_word_attention(frame, a, words, word_mask=mask, panel_px=80, columns=4)
    assert one_row.shape == (80 + TITLE_PX, 3 * 80, 3)  # columns capped at the number of words
    # by default: one row of 3 panels, the 64-pixel frame enlarged 2x (nearest), no resampling
    default = viz.render_word_attention(frame, a, words, word_mask=mask)
    assert default.shape == (128 + TITLE_PX, 3 * 128, 3)
    with pytest.raises(ValueError, match="words"):
        viz.render_word_attention(frame, a, ["dog"], word_mask=mask)
    with pytest.raises(ValueError, match="scale"):
        viz.render_word_attention(frame, a, words, word_mask=mask, scale="log")


def test_word_labels_follow_the_encoder_split():
    kv = SimpleNamespace(key_to_index={"left": 0, "most": 1, "dog": 2, "well-known": 3})
    assert viz.word_labels("The left-most dog", 4, kv) == ["the", "left", "most", "dog"]
    assert viz.word_labels("a well-known dog", 3, kv) == ["a", "well-known", "dog"]
    assert viz.word_labels("the dog's ball", 4) == ["the", "dog", "'s", "ball"]
    assert viz.word_labels("left-most dog", 3) == ["left", "most", "dog"]  # guessed from count
    assert viz.word_labels("dog", 2) == ["word 1", "word 2"]


@pytest.mark.parametrize("use_sdpa", [True, False])
def test_lgva_attention_is_what_the_forward_applies(use_sdpa):
    torch.manual_seed(0)
    lgva = LanguageGuidedVisionAttention(visual_channels=12, text_channels=20, use_sdpa=use_sdpa)
    visual, sentence = torch.randn(2, 12, 3, 3), torch.randn(2, 20)
    attention = viz.lgva_attention(lgva, visual, sentence)
    assert attention.shape == (2, 9, 9)
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 9))
    visual_coords = rearrange(append_coordinates(visual), "b c h w -> b (h w) c")
    expected = lgva(visual_coords, sentence)  # (B, HW, C_v)
    torch.testing.assert_close((attention @ lgva.value(visual_coords))[..., :12], expected)
    with pytest.raises(ValueError, match="share B"):
        viz.lgva_attention(lgva, visual, sentence[:1])


def test_pixel_context_of_a_segmenter_and_its_picture():
    from acga_lightning import ACGASegmenter

    features = {"name": "precomputed", "endpoint": "final", "in_channels": 16}
    model = ACGASegmenter(video_encoder=features, num_frames=4, frame_size=32).eval()
    batch = {
        "features": torch.randn(2, 16, 2, 2),
        "words": torch.randn(2, 5, 300),
        "word_mask": torch.tensor([[True] * 5, [True] * 3 + [False] * 2]),
    }
    context = viz.pixel_context(model, batch)
    assert context.shape == (2, 4, 4)
    torch.testing.assert_close(context.sum(-1), torch.ones(2, 4))
    frame = gray_frame(32, 32)
    picture = viz.render_pixel_context(frame, context[0], (20, 5), panel_px=120)
    assert picture.shape == (120 + TITLE_PX, 120, 3)
    assert viz.grid_index((20, 5), (32, 32), 2) == 2  # row 1, column 0
    with pytest.raises(ValueError, match="pixel"):
        viz.grid_index((32, 0), (32, 32), 2)
    no_lgva = ACGASegmenter(video_encoder=features, attention="vgla", num_frames=4, frame_size=32)
    with pytest.raises(ValueError, match="no LGVA"):
        viz.pixel_context(no_lgva, batch)


def test_blend_heatmap_upsamples_and_marks_nothing_outside():
    frame = gray_frame(30, 30)
    values = np.zeros((3, 3), np.float32)
    values[1, 1] = 1.0
    blended = viz.blend_heatmap(frame, values)
    assert blended.shape == (30, 30, 3)
    assert blended[15, 15, 0] > blended[15, 15, 2]  # hot centre
    assert blended[0, 0, 2] > blended[0, 0, 0]  # cold corner
    assert viz.upsample_map(values, (7, 9)).shape == (7, 9)


def test_mask_centre_lies_inside_the_mask():
    ring = np.zeros((21, 21), bool)
    yy, xx = np.mgrid[:21, :21]
    ring[(np.hypot(yy - 10, xx - 10) > 6) & (np.hypot(yy - 10, xx - 10) < 9)] = True
    y, x = viz.mask_centre(ring)
    assert ring[y, x] and math.hypot(y - 10, x - 10) < 9
    assert viz.mask_centre(np.zeros((4, 4), bool)) is None


def test_save_png_round_trip(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    path = viz.save_png(image, tmp_path / "a" / "b.png")
    np.testing.assert_array_equal(np.asarray(Image.open(path)), image)


@pytest.mark.parametrize("mask_padding", [False, True])
def test_encode_inputs_sees_the_words_the_forward_sees(mask_padding):
    from acga_lightning import ACGASegmenter

    features = {"name": "precomputed", "endpoint": "final", "in_channels": 16}
    model = ACGASegmenter(
        video_encoder=features, num_frames=4, frame_size=32, mask_padding=mask_padding
    ).eval()
    words = torch.randn(2, 5, 300)
    words[1, 3:] = 0
    batch = {
        "features": torch.randn(2, 16, 2, 2),
        "words": words,
        "word_mask": torch.tensor([[True] * 5, [True] * 3 + [False] * 2]),
    }
    with torch.no_grad():
        forward = model(**batch)["attention"].sentence
    torch.testing.assert_close(viz.encode_inputs(model, batch)["sentence"], forward)


def test_upscale_repeats_pixels_and_the_factor_reaches_the_readable_size():
    image = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    big = viz.upscale(image, 3)
    assert big.shape == (6, 6, 3)
    np.testing.assert_array_equal(big[:3, :3], np.broadcast_to(image[0, 0], (3, 3, 3)))
    np.testing.assert_array_equal(big[3:, 3:], np.broadcast_to(image[1, 1], (3, 3, 3)))
    assert viz.readable_factor((64, 64)) == 4 and viz.readable_factor((64, 100), 200) == 4
    assert viz.readable_factor((320, 400)) == 1  # large frames are left as they are
    with pytest.raises(ValueError, match="factor"):
        viz.upscale(image, 0)


@pytest.mark.parametrize(
    ("count", "columns"), [(1, 1), (3, 3), (5, 5), (6, 3), (7, 4), (10, 5), (11, 4), (20, 5)]
)
def test_balanced_columns_leave_no_empty_row_and_few_empty_panels(count, columns):
    assert viz.balanced_columns(count) == columns
    rows = math.ceil(count / columns)
    assert rows * columns - count < rows  # empty panels, all in the last row, fewer than rows
    assert rows == math.ceil(count / 5)  # the fewest rows of at most 5


def test_render_overlay_enlarges_captions_and_tells_prediction_from_truth():
    frame = gray_frame(32, 32)
    pred, target = square_mask(32, 32, 4, 4, 12), square_mask(32, 32, 10, 10, 12)
    picture = viz.render_overlay(frame, pred, target, query="the red ball on the left")
    assert picture.shape == (256 + 64, 256, 3) and picture.dtype == np.uint8
    body = picture[40 : 40 + 256]  # between the caption and the legend strips
    # each frame pixel is an 8 x 8 square: the prediction's fill inside, the truth's outline
    k = 8
    inside_pred_only = body[6 * k + 4, 6 * k + 4]
    expected = viz.overlay_masks(frame, pred, target, alpha=0.45)[6, 6]
    np.testing.assert_array_equal(inside_pred_only, expected)
    assert (body[10 * k + 20, 21 * k + 7] == viz.TARGET_COLOR).all()  # right edge of the truth
    assert (body[21 * k + 7, 16 * k] == viz.TARGET_COLOR).all()  # its bottom edge
    background = body[30 * k, 30 * k]
    np.testing.assert_array_equal(background, frame[30, 30])
    # the strips carry text and the legend's swatches in both colours
    caption, legend = picture[:40], picture[40 + 256 :]
    assert (caption < 128).any()  # dark text on white
    colours = legend.reshape(-1, 3)
    assert (colours == viz.PRED_COLOR).all(-1).any() and (colours == viz.TARGET_COLOR).all(-1).any()
    # the same size whatever the query: a batch's overlays make a strip
    long = viz.render_overlay(frame, pred, target, query="word " * 60, iou=0.5)
    assert long.shape == picture.shape


def test_mask_iou_and_the_caption_lines():
    a, b = square_mask(size=10), square_mask(left=25, size=10)
    assert viz.mask_iou(a, b) == pytest.approx(50 / 150)
    assert viz.mask_iou(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) == 1.0
    lines = viz._caption_lines("word " * 60, 256)
    assert lines.count("\n") == 1 and lines.endswith("\u2026")


def test_render_sample_puts_the_word_maps_beside_the_overlay():
    frame, words = gray_frame(64, 64), ["dog", "on", "left"]
    mask = np.arange(6) < 3
    pred = square_mask(64, 64, 8, 8, 20)
    picture = viz.render_sample(frame, pred, pred, "dog on left", word_attention(), words,
                                word_mask=mask)  # fmt: skip
    overlay = viz.render_overlay(frame, pred, pred, query="dog on left")
    assert picture.shape[0] == overlay.shape[0]  # one row of word panels as tall as the overlay
    np.testing.assert_array_equal(picture[:, : overlay.shape[1]], overlay)
    panel = overlay.shape[0] - TITLE_PX
    assert picture.shape[1] == overlay.shape[1] + 12 + 3 * panel
    alone = viz.render_sample(frame, pred, None, "dog on left")
    assert alone.shape == overlay.shape
    with pytest.raises(ValueError, match="words"):
        viz.render_sample(frame, pred, pred, "dog", word_attention(), None, word_mask=mask)
