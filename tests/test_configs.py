"""Every file in configs/ (base fragments aside) runs through the real CLI on tiny generated data.

Only the data location, sizes and the weights paths are overridden: the model, loss, attention,
schedule, cache mode and callbacks are the config's own. The A2D configs keep their Mixed_4e
feature cache (built once into a shared folder: the random I3D prefix is the same under
``seed_everything``, so its fingerprint is too).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from acga_lightning.cli import load_config, main
from acga_lightning.data.synthetic.acga_h5 import write_acga_release
from acga_lightning.data.synthetic.ref_vos import write_ref_vos
from acga_lightning.registry import parse_spec

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RUNNABLE = sorted(p.name for p in CONFIGS.glob("*.yaml"))
TINY = ["--data.frame_size", "64", "--data.num_frames", "4", "--data.batch_size", "2"]
# bf16-mixed (the A2D configs' GPU setting) is slow on CPU and warns in the model summary.
FAST = [
    "--trainer.fast_dev_run", "true", "--trainer.accelerator", "cpu",
    "--trainer.precision", "32-true", "--data.num_workers", "0",
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, small_a2d_root, toy_jhmdb) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("configs")
    jhmdb = toy_jhmdb(num_videos=2, height=48, width=64, seed=3)
    # The official release's h5 layout, at the 64-pixel frame size of TINY (grid 4).
    write_acga_release(base / "release", frames=2, grid=4, mask_size=64, seed=3)
    ytvos = write_ref_vos(base / "ytvos", "ytvos", num_videos=4, height=48, width=64, seed=3)
    davis = write_ref_vos(base / "davis", "davis", num_videos=3, height=48, width=64, seed=4)
    return {"a2d": small_a2d_root, "jhmdb": jhmdb, "cache": base / "cache", "base": base,
            "release": base / "release", "ytvos": ytvos, "davis": davis}  # fmt: skip


def cache_overrides(tiny: dict[str, Path]) -> list[str]:
    # The real configs point at data/weights/rgb_imagenet.pt: use a random I3D instead.
    cache = f"{{mode: mixed_4e, dir: {tiny['cache']}, encoder: {{name: i3d}}}}"
    return [
        "--data.cache", cache,
        "--model.video_encoder", "{name: precomputed, endpoint: mixed_4e}",
    ]  # fmt: skip


def arguments(name: str, tiny: dict[str, Path]) -> list[str]:
    """The command line that runs config ``name`` on the tiny data."""
    config = ["--config", str(CONFIGS / name)]
    if name == "demo.yaml":
        root = tiny["base"] / "demo_toy"  # absent: the datamodule must generate it
        toy = "{num_videos: 4, height: 64, seed: 1}"
        data = ["--data.root", str(root), "--data.toy", toy]
        return ["fit", *config, *FAST, *TINY, *data]
    quiet = ["--trainer.logger", "false"]
    if name.startswith("acga_release_"):
        data = ["--data.root", str(tiny["release"])]
        subcommand = "fit" if load_config(CONFIGS / name).get("test_after_fit") else "test"
        return [subcommand, *config, *FAST, *TINY, *data, *quiet]
    if name == "jhmdb_eval.yaml":
        root = tiny["jhmdb"]
        data = ["--data.root", str(root), "--data.word_vectors", str(root / "word2vec.bin")]
        return ["test", *config, *FAST, *TINY, *data, *cache_overrides(tiny), *quiet]
    if name.startswith(("ytvos_", "davis_")):  # Ref-VOS: fit, predict the submission, test
        root = tiny["davis" if name.startswith("davis") else "ytvos"]
        data = ["--data.root", str(root), "--data.word_vectors", str(root / "word2vec.bin")]
        if name == "ytvos_acga.yaml":
            data += ["--data.val_fraction", "0.34"]  # 1 of the 3 training videos
        subcommand = {"ytvos_acga.yaml": "fit", "ytvos_submit.yaml": "predict"}.get(name, "test")
        fast = FAST[2:] if subcommand == "predict" else FAST  # a submission needs every batch
        return [subcommand, *config, *fast, *TINY, *data, *cache_overrides(tiny), *quiet]
    root = tiny["a2d"]
    data = ["--data.root", str(root)]
    data += ["--data.word_vectors", str(root / "word2vec.bin")]
    return ["fit", *config, *FAST, *TINY, *data, *cache_overrides(tiny), *quiet]


def test_every_config_is_tested() -> None:
    assert {"a2d_acga.yaml", "demo.yaml", "jhmdb_eval.yaml"} <= set(RUNNABLE)
    assert {"acga_release_a2d.yaml", "acga_release_jhmdb.yaml"} <= set(RUNNABLE)
    assert {"ytvos_acga.yaml", "ytvos_submit.yaml", "davis_eval.yaml"} <= set(RUNNABLE)
    assert all(not p.name.startswith("_") for p in CONFIGS.glob("*.yaml"))


@pytest.mark.parametrize("name", RUNNABLE)
def test_config_runs(name: str, tiny: dict[str, Path], tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    args = arguments(name, tiny)
    # As the console script runs: sys.argv holds the same command line that main() hands
    # LightningCLI (resolved). LightningCLI's "both args and sys.argv" warning must not show
    # (warnings are errors here).
    monkeypatch.setattr(sys, "argv", ["acga", *args])
    monkeypatch.chdir(tmp_path)  # outputs/ and checkpoints land in this test's folder
    cli = main(args)
    assert cli.trainer.state.finished
    config = load_config(CONFIGS / name)
    for key in ("attention", "decoder", "loss"):
        expected = config["model"][key]
        expected = expected if isinstance(expected, str) else expected["name"]
        assert parse_spec(cli.model.hparams[key])[0] == expected
    if config.get("test_after_fit") and cli.subcommand == "fit":
        assert "test/mean_iou" in capsys.readouterr().out
    if name.startswith(("ytvos_", "davis_")) and cli.subcommand != "predict":
        assert {"test/j", "test/f", "test/jf"} <= set(cli.trainer.callback_metrics)
    if name == "ytvos_submit.yaml":  # the server's zip, every listed valid frame in it
        from acga_lightning.prediction import check_submission

        archive = tmp_path / "outputs" / "ytvos_submission.zip"
        assert check_submission(archive, tiny["ytvos"], "valid") == []


@pytest.mark.parametrize("name", [n for n in RUNNABLE if n.startswith("a2d_")])
def test_a2d_configs_keep_paper_settings(name: str) -> None:
    config = load_config(CONFIGS / name)
    data, model, trainer = config["data"]["init_args"], config["model"], config["trainer"]
    assert config["data"]["class_path"] == "A2DDataModule"
    assert (data["num_frames"], data["frame_size"], data["batch_size"]) == (16, 512, 4)
    assert data["cache"]["mode"] == "mixed_4e"
    assert model["video_encoder"]["name"] == "precomputed"
    assert model["video_encoder"]["weights"] == data["cache"]["encoder"]["weights"]
    assert (model["lr"], model["lr_milestones"], trainer["max_epochs"]) == (5e-4, [8], 12)
    assert trainer["precision"] == "bf16-mixed"


def test_demo_config_is_self_contained() -> None:
    config = load_config(CONFIGS / "demo.yaml")
    data = config["data"]
    assert data["class_path"] == "A2DDataModule" and config["test_after_fit"] is True
    assert data["init_args"]["toy"]["num_videos"] > 0  # generated data, written on first use
    assert config["trainer"]["logger"]["init_args"]["offline"] is True
    callbacks = [c["class_path"].rsplit(".", 1)[-1] for c in config["trainer"]["callbacks"]]
    assert "RichProgressBar" in callbacks
    assert not os.path.isabs(data["init_args"]["root"])
    assert config["time_budget_minutes"] == 10  # the quickstart's promise, on any machine


@pytest.mark.parametrize("name", [n for n in RUNNABLE if n.startswith("acga_release_")])
def test_release_configs_are_the_converted_model(name: str) -> None:
    from acga_lightning.convert import OFFICIAL_HPARAMS

    model = load_config(CONFIGS / name)["model"]
    for key, value in OFFICIAL_HPARAMS.items():
        assert model.get(key, value) == value or parse_spec(model[key]) == parse_spec(value), key
    assert load_config(CONFIGS / name)["data"]["class_path"] == "ACGAReleaseDataModule"
