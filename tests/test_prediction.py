"""``acga predict`` writes one mask per sample at the original size, equal to what test scored."""

from __future__ import annotations

import contextlib
import csv
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from acga_lightning.cli import main
from acga_lightning.data.synthetic import write_a2d
from acga_lightning.prediction import mask_path, read_mask, write_mask

DEMO = Path(__file__).resolve().parents[1] / "configs/demo.yaml"
TINY_MODEL = [
    "--model.video_encoder", "{name: small3d, widths: [4, 4, 4, 8], temporal: early}",
    "--model.decoder", "{name: multires, up_channels: [4, 4], head_widths: [4, 4, 4]}",
]  # fmt: skip
# MLflow's documented rule for metric names (mlflow.utils.validation): alphanumerics,
# underscores, dashes, periods, spaces and slashes.
NO_LOGGER = ["--trainer.logger", "false"]
MLFLOW_NAME = re.compile(r"^[/\w.\- ]*$")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setattr(sys, "argv", ["acga"])
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("predict")
    # Frames 48 x 64 (not square): the masks must come back at that size, not the model's.
    root = write_a2d(base / "toy", num_videos=6, height=48, width=64, seed=4)
    args = [
        "--config", str(DEMO), "--data.root", str(root), "--data.frame_size", "32",
        "--data.num_frames", "2", "--data.batch_size", "2", "--time_budget_minutes", "null",
        "--test_after_fit", "false", "--trainer.default_root_dir", str(base / "run"), *TINY_MODEL,
    ]  # fmt: skip
    fit = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3"]
    cli = main(["fit", *args, *fit, *NO_LOGGER])
    ckpt = Path(cli.trainer.checkpoint_callback.last_model_path)
    assert ckpt.is_file()
    return {"args": [*args, *NO_LOGGER], "bare": args, "ckpt": ckpt, "base": base}


def _iou(pred: np.ndarray, target: np.ndarray) -> float:
    union = np.logical_or(pred, target).sum()
    return 1.0 if union == 0 else np.logical_and(pred, target).sum() / union


def test_predict_writes_one_mask_per_sample_equal_to_what_test_scored(trained, tmp_path) -> None:
    args, ckpt = trained["args"], str(trained["ckpt"])
    tested = main(["test", *args, "--ckpt_path", ckpt])
    test_miou = float(tested.trainer.callback_metrics["test/mean_iou"])
    samples = {int(s["sample_id"]): s for s in tested.datamodule.datasets["test"]}
    out = tmp_path / "pred"
    main(["predict", *args, "--ckpt_path", ckpt, "--predictions_dir", str(out)])
    with open(out / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(int(r["sample_id"]) for r in rows) == sorted(samples)
    assert len(list((out / "masks").rglob("*.png"))) == len(samples)
    ious = []
    for row in rows:
        sample = samples[int(row["sample_id"])]
        assert (
            row["mask"]
            == mask_path(sample["video_id"], sample["frame_idx"], sample["sample_id"]).as_posix()
        )
        mask = read_mask(out / row["mask"])
        target = np.asarray(sample["orig_mask"], dtype=bool)
        assert mask.shape == target.shape == tuple(sample["orig_size"]) == (48, 64)
        assert int(row["mask_area"]) == mask.sum() and 0 < float(row["score"]) <= 1
        assert row["query"] == sample["query"]
        ious.append(_iou(mask, target))
    assert np.mean(ious) == pytest.approx(test_miou, abs=1e-6)
    # A second run into the same folder refuses before any work, unless told to overwrite.
    with pytest.raises(FileExistsError, match="--overwrite true"):
        main(["predict", *args, "--ckpt_path", ckpt, "--predictions_dir", str(out)])
    main(["predict", *args, "--ckpt_path", ckpt, "--predictions_dir", str(out),
          "--overwrite", "true"])  # fmt: skip


def test_logged_metric_names_suit_every_logger(trained, tmp_path) -> None:
    """A validation epoch through CSVLogger: every key passes MLflow's name rule."""
    csv_logger = "pytorch_lightning.loggers.CSVLogger"
    logger = f"{{class_path: {csv_logger}, init_args: {{save_dir: {tmp_path}}}}}"
    main(["validate", *trained["bare"], "--trainer.logger", logger])
    (metrics,) = list(tmp_path.rglob("metrics.csv"))
    with open(metrics, newline="") as f:
        keys = [k for k in next(csv.reader(f)) if k not in ("epoch", "step")]
    expected = {f"val/precision_{k}" for k in (50, 60, 70, 80, 90)}
    expected |= {"val/map", "val/overall_iou", "val/mean_iou", "val/num_samples", "val/loss"}
    assert set(keys) == expected
    validate = None
    with contextlib.suppress(ImportError):  # MLflow's own check, where it is installed
        from mlflow.utils.validation import _validate_metric_name as validate
    for key in keys:
        assert MLFLOW_NAME.match(key), key
        if validate is not None:
            validate(key)
    for old in ("val/P@0.5", "val/mAP@0.5:0.95"):
        assert not MLFLOW_NAME.match(old)  # the rule does reject the old names


def test_old_metric_names_in_a_config_say_what_to_rename(trained) -> None:
    from acga_lightning.errors import ConfigError

    checkpoint = "pytorch_lightning.callbacks.ModelCheckpoint"
    callback = f"{{class_path: {checkpoint}, init_args: {{monitor: val/P@0.5}}}}"
    args = [*trained["args"], "--trainer.callbacks+", callback]
    with pytest.raises(ConfigError, match="'val/P@0.5', which is now logged as 'val/precision_50'"):
        main(["validate", *args, "--ckpt_path", str(trained["ckpt"])])


def test_mask_paths_stay_inside_the_output_folder(tmp_path) -> None:
    path = mask_path("brush_hair/clip_1", 3, 17)
    assert path.as_posix() == "masks/brush_hair/clip_1/00003_17.png"
    for bad in ("../x", "/etc", "a/../../b", ""):
        with pytest.raises(ValueError, match="video_id"):
            mask_path(bad, 1, 1)
    mask = np.zeros((5, 7), dtype=bool)
    mask[1:3, 2:6] = True
    write_mask(tmp_path / "m.png", mask)
    assert np.array_equal(read_mask(tmp_path / "m.png"), mask)


def test_an_older_checkpoint_through_the_cli_is_built_as_it_was_trained(trained, tmp_path):
    """--ckpt_path puts the checkpoint's hyper-parameters in the config: an older one (no
    mask_padding saved) must come back with masked padding and ReLU up-blocks there too."""
    import torch

    checkpoint = torch.load(trained["ckpt"], map_location="cpu", weights_only=False)
    hparams = checkpoint["hyper_parameters"]
    del hparams["mask_padding"]
    hparams["decoder"] = {k: v for k, v in dict(hparams["decoder"]).items() if k != "up_activation"}
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    args = [*trained["args"], "--model.mask_padding", "false", "--trainer.fast_dev_run", "true"]
    with pytest.warns(UserWarning, match="before the official-model defaults"):
        cli = main(["test", *args, "--ckpt_path", str(old)])
    assert cli.model.hparams.mask_padding is True
    assert cli.model.decoder.up_medium.activation == "relu"
