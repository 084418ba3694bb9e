"""The ``acga`` command: tools, config composition and ``--test_after_fit``, run in-process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from acga_lightning.cli import load_config, main, merge_configs, resolve_config_args
from acga_lightning.registry import REGISTRIES

TINY_MODEL = [
    "--model.video_encoder", "{name: small3d, widths: [4, 4, 4, 8], temporal: early}",
    "--model.decoder", "{name: multires, up_channels: [4, 4], head_widths: [4, 4, 4]}",
]  # fmt: skip


@pytest.fixture(scope="module")
def toy(a2d_root) -> Path:
    return a2d_root


@pytest.fixture(autouse=True)
def _quiet(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setattr(sys, "argv", ["acga"])
    monkeypatch.chdir(tmp_path)


def test_plugins_lists_every_registered_name(capsys) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    for kind, registry in REGISTRIES.items():
        for name in registry.names():
            assert name in out, f"{kind} {name} missing from acga plugins"
    assert "small3d" in out


def test_toy_data_and_check_data(tmp_path, capsys) -> None:
    assert main(["toy-data", str(tmp_path / "d"), "--videos", "2", "--height", "32"]) == 0
    assert (tmp_path / "d/Release/videoset.csv").is_file()
    assert main(["check-data", "--root", str(tmp_path / "d"), "--no-progress"]) == 0
    (tmp_path / "d/Release/videoset.csv").write_text("broken\n")
    assert main(["check-data", "--root", str(tmp_path / "d"), "--no-progress"]) != 0


def test_merge_configs_rules() -> None:
    base = {"model": {"decoder": {"name": "multires", "up_channels": [1, 2]}, "lr": 1.0},
            "trainer": {"logger": {"class_path": "W", "init_args": {"name": "a", "x": 1}},
                        "callbacks": [1, 2]}}  # fmt: skip
    over = {"model": {"decoder": {"name": "single"}},
            "trainer": {"logger": {"init_args": {"name": "b"}}, "callbacks": [3]}}  # fmt: skip
    merged = merge_configs(base, over)
    assert merged["model"] == {"decoder": {"name": "single"}, "lr": 1.0}
    assert merged["trainer"]["logger"] == {"class_path": "W", "init_args": {"name": "b", "x": 1}}
    assert merged["trainer"]["callbacks"] == [3]
    swapped = merge_configs(base, {"trainer": {"logger": {"class_path": "C"}}})
    assert swapped["trainer"]["logger"] == {"class_path": "C"}


def test_base_includes_resolve_relative_and_reject_cycles(tmp_path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base/a.yaml").write_text("model: {lr: 1.0, loss: bce}\n")
    (tmp_path / "b.yaml").write_text("__base__: base/a.yaml\nmodel: {lr: 2.0}\n")
    assert load_config(tmp_path / "b.yaml") == {"model": {"lr": 2.0, "loss": "bce"}}
    args = resolve_config_args(["fit", "--config", str(tmp_path / "b.yaml"), "--x", "1"])
    assert yaml.safe_load(args[2]) == {"model": {"lr": 2.0, "loss": "bce"}}
    assert args[3:] == ["--x", "1"]
    plain = tmp_path / "base/a.yaml"
    assert resolve_config_args([f"--config={plain}"]) == ["--config", str(plain)]
    (tmp_path / "c.yaml").write_text("__base__: d.yaml\n")
    (tmp_path / "d.yaml").write_text("__base__: c.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        load_config(tmp_path / "c.yaml")


def _demo_args(toy: Path, *extra: str) -> list[str]:
    return [
        "--config", str(Path(__file__).resolve().parents[1] / "configs/demo.yaml"),
        "--data.root", str(toy), "--data.frame_size", "32", "--data.num_frames", "2",
        "--data.batch_size", "2", "--data.num_workers", "0", "--trainer.logger", "false",
        *TINY_MODEL, *extra,
    ]  # fmt: skip


def test_fit_with_test_after_fit_prints_the_metric_table(toy, capsys, caplog) -> None:
    from acga_lightning.checkpointing import AtomicCheckpoints

    cli = main(["fit", *_demo_args(toy, "--trainer.fast_dev_run", "true")])
    out = capsys.readouterr().out
    assert cli.trainer.state.finished
    for key in ("test/mean_iou", "test/overall_iou", "test/precision_50", "test/num_samples"):
        assert key in out
    assert "test metrics of the last weights:" in out  # fast_dev_run saves no checkpoint
    # The final test reuses fit's AtomicCheckpoints instead of replacing it (and saying so).
    assert sum(isinstance(c, AtomicCheckpoints) for c in cli.trainer.callbacks) == 1
    assert "will override existing callbacks" not in caplog.text


def test_precomputed_encoder_without_cache_is_rejected(toy) -> None:
    args = _demo_args(toy, "--trainer.fast_dev_run", "true")
    args += ["--model.video_encoder", "{name: precomputed, endpoint: final, in_channels: 8}"]
    with pytest.raises(ValueError, match="no cached features"):
        main(["validate", *args])


def test_cache_features_builds_then_fit_reads_it(toy, tmp_path, capsys) -> None:
    encoder = "{name: small3d, widths: [4, 4, 4, 8]}"
    cache = f"{{mode: final, dir: {tmp_path / 'cache'}, encoder: {encoder}}}"
    args = _demo_args(toy, "--data.cache", cache)
    assert main(["cache-features", *args]) == 0
    out = capsys.readouterr().out
    assert "computed" in out and "0 present" in out
    assert list((tmp_path / "cache").rglob("*.npy"))
    assert main(["cache-features", *args]) == 0
    assert " 0 computed" in capsys.readouterr().out  # everything present now
    encoder = "{name: precomputed, endpoint: final, in_channels: 8}"
    cli = main(["fit", *args, "--trainer.fast_dev_run", "true", "--model.video_encoder", encoder])
    assert cli.trainer.state.finished


def test_torch_threads_is_applied(toy) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        main(
            ["validate", *_demo_args(toy, "--trainer.fast_dev_run", "true", "--torch_threads", "1")]
        )
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_time_budget_shortens_fit_and_still_validates_and_tests(toy, capsys) -> None:
    from acga_lightning.time_budget import TimeBudget

    budget = ["--time_budget_minutes", "1e-4", "--time_budget_reserve_minutes", "0"]
    limits = ["--trainer.max_epochs", "3", "--trainer.limit_train_batches", "2"]
    args = _demo_args(toy, *limits, *budget, "--test_after_fit", "true")
    with pytest.warns(UserWarning, match=r"TimeBudget: 6 training steps \(3 epochs\) did not fit"):
        cli = main(["fit", *args])
    callbacks = [c for c in cli.trainer.callbacks if isinstance(c, TimeBudget)]
    assert len(callbacks) == 1 and callbacks[0].shortened == (6, 2)
    assert cli.trainer.global_step == 2  # stopped after the first epoch's validation
    assert "test/mean_iou" in capsys.readouterr().out  # and the final test ran


def test_help_lists_every_subcommand_in_one_line_each(capsys) -> None:
    from acga_lightning.cli import SUBCOMMANDS, TOOLS

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert set(TOOLS) | {"fit", "validate", "test", "predict"} <= set(SUBCOMMANDS)
    for name in SUBCOMMANDS:
        (line,) = [x for x in out.splitlines() if x.strip().startswith(f"{name} ")]
        assert len(line.split(maxsplit=1)[1]) > 10, line
    assert main([]) == 0 and capsys.readouterr().out == out
