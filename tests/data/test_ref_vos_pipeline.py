"""Ref-YouTube-VOS and Ref-DAVIS17 end to end through ``acga``: train, J&F, the submission.

A tiny model is trained with ``configs/ytvos_acga.yaml`` on generated Ref-YouTube-VOS data; then
``configs/davis_eval.yaml`` tests it on generated Ref-DAVIS17 data, and the J&F it logs must equal
J&F recomputed here from the masks ``acga predict`` wrote, scored against the annotation PNGs by
the independent DAVIS reference of ``tests/metrics/test_davis.py``. ``configs/ytvos_submit.yaml``
must write exactly the submission the server expects.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from acga_lightning.cli import main
from acga_lightning.data.datasets.ref_vos import VOID, ReferringVOS, read_labels
from acga_lightning.data.sample import make_sample_id
from acga_lightning.data.synthetic import write_ref_vos
from acga_lightning.prediction import check_submission, mask_path, read_mask
from tests.metrics.test_davis import ref_f, ref_j

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# A frames encoder (no feature cache) and a small decoder: the configs' own model is I3D.
TINY = [
    "--model.video_encoder", "{name: small3d, widths: [4, 4, 4, 8], temporal: early}",
    "--model.decoder", "{name: multires, up_channels: [4, 4], head_widths: [4, 4, 4]}",
    "--data.cache", "{mode: none}", "--data.frame_size", "32", "--data.num_frames", "2",
    "--data.batch_size", "4", "--data.num_workers", "0", "--trainer.accelerator", "cpu",
    "--trainer.precision", "32-true", "--trainer.logger", "false",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _quiet(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setattr(sys, "argv", ["acga"])
    monkeypatch.chdir(tmp_path)  # outputs/ and the saved config land in the test's folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("refvos")
    ytvos = write_ref_vos(base / "ytvos", "ytvos", num_videos=6, height=36, width=48, seed=2)
    davis = write_ref_vos(base / "davis", "davis", num_videos=4, height=36, width=48, seed=3)
    words = ["--data.word_vectors", str(ytvos / "word2vec.bin")]
    args = [
        "fit", "--config", str(CONFIGS / "ytvos_acga.yaml"), *TINY, *words,
        "--data.root", str(ytvos), "--data.val_fraction", "0.34", "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "3", "--trainer.default_root_dir", str(base / "run"),
        "--test_after_fit", "true",
    ]  # fmt: skip
    cli = main(args)
    assert {"test/jf", "test/j", "test/f"} <= set(cli.trainer.callback_metrics)
    # The best checkpoint was chosen by validation J&F (held-out training videos).
    assert "-jf" in Path(cli.trainer.checkpoint_callback.best_model_path).name
    ckpt = Path(cli.trainer.checkpoint_callback.best_model_path).with_name("last.ckpt")
    assert ckpt.is_file()
    # Later runs use the training run's folder, as a user's `acga test` of a run would (another
    # folder makes Lightning warn that the checkpoint callback's state cannot be restored).
    words += ["--trainer.default_root_dir", str(base / "run")]
    return {"ytvos": ytvos, "davis": davis, "ckpt": ckpt, "words": words}


def test_davis_eval_logs_the_j_and_f_of_the_masks_predict_writes(trained, tmp_path) -> None:
    davis, ckpt = trained["davis"], str(trained["ckpt"])
    common = [
        "--config", str(CONFIGS / "davis_eval.yaml"), *TINY, *trained["words"],
        "--data.root", str(davis), "--ckpt_path", ckpt,
    ]  # fmt: skip
    logged = main(["test", *common]).trainer.callback_metrics
    main(["predict", *common, "--predictions_dir", str(tmp_path / "pred")])
    # The samples davis_eval scores: valid, first and last frame of each video left out.
    reader = ReferringVOS(davis, "valid", num_frames=2, frame_size=32, exclude_first_last=True)
    assert 0 < len(reader) < sum(len(n) for n in reader.listed.values()) * 3
    per_expression: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for r in reader.records:
        sample_id = make_sample_id("davis", r["video_id"], r["exp_id"], r["frame_name"])
        pred = read_mask(tmp_path / "pred" / mask_path(r["video_id"], r["frame_idx"], sample_id))
        labels = read_labels(davis / "valid/Annotations" / r["video_id"] / f"{r['frame_name']}.png")
        assert pred.shape == labels.shape
        target, void = labels == r["obj_id"], labels == VOID
        per_expression[r["video_id"], r["exp_id"]].append(
            (ref_j(pred, target, void), ref_f(pred, target, void))
        )
    means = np.array([np.mean(scores, axis=0) for scores in per_expression.values()])
    j, f = means.mean(axis=0)
    assert float(logged["test/j"]) == pytest.approx(j, abs=1e-6)
    assert float(logged["test/f"]) == pytest.approx(f, abs=1e-6)
    assert float(logged["test/jf"]) == pytest.approx((j + f) / 2, abs=1e-6)
    assert float(logged["test/num_expressions"]) == len(per_expression)
    assert float(logged["test/num_frames"]) == len(reader)


def test_ytvos_submit_writes_exactly_what_the_server_expects(trained, tmp_path) -> None:
    ytvos = trained["ytvos"]
    args = [
        "predict", "--config", str(CONFIGS / "ytvos_submit.yaml"), *TINY, *trained["words"],
        "--data.root", str(ytvos), "--ckpt_path", str(trained["ckpt"]),
    ]  # fmt: skip
    main(args)
    archive = tmp_path / "outputs" / "ytvos_submission.zip"
    assert archive.is_file()
    assert check_submission(archive, ytvos, "valid") == []
    # ... and it is not vacuous: one PNG per listed frame of every valid expression.
    written = list((tmp_path / "outputs/ytvos_submission/Annotations").rglob("*.png"))
    reader = ReferringVOS(ytvos, "valid", num_frames=2, frame_size=32)
    assert len(written) == len(reader) > 0
    # A second run refuses to overwrite the submission, before any work.
    with pytest.raises(FileExistsError, match="overwrite: true"):
        main(args)
