"""The official release's evaluation, end to end through ``acga test``, against a NumPy
transcription of the official ``report_result`` arithmetic."""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from acga_lightning.cli import main
from acga_lightning.convert import build_official_model, save_lightning_checkpoint
from acga_lightning.data.datasets.acga_h5 import ACGAPreprocessed
from acga_lightning.data.synthetic.acga_h5 import write_acga_release
from acga_lightning.metrics.official import (
    official_release_masks,
    official_release_predictions,
    resize_and_crop,
)

MASK = 64  # model frame size (grid 4) so that the model runs in a moment on a CPU
# portrait, landscape, square, odd differences between the sides (crop offsets that round)
TEST_SIZES = [(320, 480), (240, 427), (480, 360), (64, 64), (101, 150), (97, 96), (500, 333)]
FAST = ["--trainer.accelerator", "cpu", "--trainer.logger", "false", "--data.num_workers", "0"]


def official_crop(im: np.ndarray, input_h: int, input_w: int) -> np.ndarray:
    """The official resize_and_crop, step by step as util/tool.py states it."""
    im_h, im_w = im.shape[:2]
    scale = max(input_h / im_h, input_w / im_w)
    resized_h, resized_w = int(np.round(im_h * scale)), int(np.round(im_w * scale))
    crop_h = int(np.floor(resized_h - input_h) / 2)
    crop_w = int(np.floor(resized_w - input_w) / 2)
    resized = cv2.resize(im, (resized_w, resized_h))
    out = np.zeros((input_h, input_w), dtype=resized.dtype)
    out[...] = resized[crop_h : crop_h + input_h, crop_w : crop_w + input_w]
    return out


def report_result(logits: np.ndarray, masks: np.ndarray, sizes: list) -> dict[str, float]:
    """report_result's arithmetic on final logits (N, S, S) and stored masks (N, S, S)."""
    res3 = 1.0 / (1.0 + np.exp(-logits.astype(np.float32))) * np.float32(255.0)
    ious, inter, union = [], [], []
    for i in range(len(res3)):
        pred = official_crop((res3[i] > np.amax(res3[i]) * 0.5).astype(np.uint8), *sizes[i])
        gt = official_crop(masks[i].astype(np.uint8), *sizes[i])
        i_area = (pred & (gt == 1.0)).astype(float).sum()
        o_area = (pred | (gt == 1.0)).astype(float).sum()
        ious.append((i_area + 1e-6) / (o_area + 1e-6))
        inter.append(i_area)
        union.append(o_area)
    ious_np = np.array(ious)
    result = {f"precision_{10 * k}": float(np.mean(ious_np >= k / 10)) for k in range(5, 10)}
    result["map"] = float(np.mean([np.mean(ious_np >= t / 100) for t in range(50, 96, 5)]))
    result["overall_iou"] = float(np.sum(inter) / np.sum(union))
    result["mean_iou"] = float(np.mean(ious_np))
    return result


def test_resize_and_crop_matches_the_official_steps() -> None:
    rng = np.random.default_rng(0)
    square = (rng.random((64, 64)) > 0.5).astype(np.uint8)
    for h, w in TEST_SIZES:
        out = resize_and_crop(square, h, w)
        assert out.shape == (h, w)
        np.testing.assert_array_equal(out, official_crop(square, h, w))
        assert set(np.unique(out)) <= {0, 1}


def test_masks_are_thresholded_before_the_resize() -> None:
    logits = torch.full((1, 1, 8, 8), -4.0)
    logits[0, 0, 2:6, 2:6] = 4.0
    target = torch.zeros(1, 8, 8)
    target[0, 3:7, 3:7] = 1.0
    preds, targets = official_release_masks(logits, target, [(8, 16)])
    assert preds[0].shape == targets[0].shape == (8, 16)
    assert preds[0].dtype == torch.bool and preds[0].any() and targets[0].any()
    with pytest.raises(ValueError, match="targets"):
        official_release_masks(logits, target[:, :4], [(8, 16)])


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> tuple:
    root = tmp_path_factory.mktemp("release")
    sizes = {"train": [(320, 480)], "test": TEST_SIZES}
    write_acga_release(root, sizes, frames=2, grid=MASK // 16, mask_size=MASK, seed=1)
    torch.manual_seed(0)
    model = build_official_model(frame_size=MASK).eval()
    with torch.no_grad():  # logits with spread: sigmoid near 0.5 everywhere is all foreground
        model.decoder.fusion.weight.mul_(30)
    ckpt = root / "official.ckpt"
    save_lightning_checkpoint(model, ckpt)
    # Targets: the top rows of the model's own foreground, a share falling from 1 to 0.3, so
    # that the IoUs spread over the thresholds (a random model scores near 0 on rectangles).
    logits = forward(model, ACGAPreprocessed(root, "test"))[0]
    scaled = torch.sigmoid(torch.from_numpy(logits))
    foreground = (scaled > 0.5 * scaled.flatten(1).amax(1)[:, None, None]).numpy()
    with h5py.File(root / "mask.h5", "a") as f:
        targets = foreground.astype(np.uint8)
        for target, share in zip(targets, [1.0, 0.93, 0.86, 0.76, 0.66, 0.56, 0.3], strict=True):
            target[int(share * MASK) :] = 0
        f["test/large"][...] = targets
    return root, ckpt, model


def forward(model, data: ACGAPreprocessed) -> tuple[np.ndarray, np.ndarray, list]:
    """Final logits (N, S, S), stored masks (N, S, S) and sizes of every sample of ``data``."""
    samples = [data[i] for i in range(len(data))]
    with torch.no_grad():
        out = model(
            words=torch.stack([s["words"] for s in samples]),
            word_mask=torch.stack([s["word_mask"] for s in samples]),
            features=torch.stack([s["features"] for s in samples]).float(),
        )
    masks = np.stack([s["mask"].numpy() for s in samples])
    return out["logits"][-1][:, 0].numpy(), masks, [s["orig_size"] for s in samples]


def test_acga_test_scores_as_report_result(release, tmp_path, monkeypatch) -> None:
    root, ckpt, model = release
    monkeypatch.chdir(tmp_path)
    config = Path(__file__).resolve().parents[2] / "configs" / "acga_release_a2d.yaml"
    args = ["test", "--config", str(config), "--ckpt_path", str(ckpt)]
    args += ["--data.root", str(root), "--data.frame_size", str(MASK)]
    args += ["--data.num_frames", "4", "--data.batch_size", "3", *FAST]
    cli = main(args)
    logged = {k.removeprefix("test/"): float(v) for k, v in cli.trainer.callback_metrics.items()}

    expected = report_result(*forward(model, ACGAPreprocessed(root, "test")))
    assert 0 < expected["mean_iou"] < 1 and len(set(np.round(list(expected.values()), 6))) > 4
    assert logged["num_samples"] == len(TEST_SIZES)
    for key, value in expected.items():
        assert logged[key] == pytest.approx(value, abs=1e-9), key


def test_acga_predict_writes_the_masks_the_official_evaluation_scores(
    release, tmp_path, monkeypatch
) -> None:
    import csv

    from acga_lightning.prediction import read_mask

    root, ckpt, model = release
    monkeypatch.chdir(tmp_path)  # the run's config.yaml lands here, not in the checkout
    config = Path(__file__).resolve().parents[2] / "configs" / "acga_release_a2d.yaml"
    out = tmp_path / "pred"
    args = ["predict", "--config", str(config), "--ckpt_path", str(ckpt), "--data.root", str(root)]
    args += ["--data.frame_size", str(MASK), "--data.num_frames", "4", "--data.batch_size", "3"]
    main([*args, *FAST, "--predictions_dir", str(out)])
    logits, _, sizes = forward(model, ACGAPreprocessed(root, "test"))
    expected = official_release_predictions(torch.from_numpy(logits)[:, None], sizes)
    with open(out / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    data = ACGAPreprocessed(root, "test")
    order = {int(data[i]["sample_id"]): i for i in range(len(data))}
    assert sorted(order) == sorted(int(r["sample_id"]) for r in rows)
    for row in rows:
        mask = read_mask(out / row["mask"])
        assert np.array_equal(mask, expected[order[int(row["sample_id"])]].numpy())
