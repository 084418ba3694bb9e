"""The ``data`` section of ``acga``: one datamodule class per dataset, chosen by ``class_path``,
its settings typed on the command line, and configs of the old form (``data.dataset``) migrated.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import yaml

from acga_lightning.cli import load_config, main, merge_configs, resolve_config_args
from acga_lightning.data import A2DDataModule, JHMDBDataModule
from acga_lightning.data.compat import migrate_data_config
from acga_lightning.data.synthetic.a2d import A2DSynthetic
from acga_lightning.errors import ConfigError
from tests.test_cli import TINY_MODEL, _demo_args, _quiet  # noqa: F401 (the autouse fixture)

REPO = Path(__file__).resolve().parents[1]
DEMO = str(REPO / "configs/demo.yaml")
FAST = ["--trainer.fast_dev_run", "true", "--trainer.logger", "false"]
#: The demo's generator at a size that writes in a second or two (the video count is the test's).
SMALL_TOY = [
    "--data.toy.height", "32", "--data.toy.width", "32", "--data.toy.num_frames", "[8, 10]",
    "--data.toy.test_fraction", "0.5",
]  # fmt: skip
CLIP = ["--data.frame_size", "32", "--data.num_frames", "2", "--data.batch_size", "2"]


def usage_error(capsys, *argv: str) -> tuple[int, list[str]]:
    """``acga ARGV`` ending in a parser error: its exit code and the lines it wrote to stderr."""
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    return exited.value.code, capsys.readouterr().err.strip().splitlines()


# ------------------------------------------------------------------------------- command line
def test_a_toy_setting_on_the_command_line_is_typed_and_generates_that_data(tmp_path) -> None:
    root = tmp_path / "generated"  # absent: fit's prepare_data writes it
    args = ["--config", DEMO, "--data.root", str(root), "--data.toy.num_videos", "6", *SMALL_TOY]
    cli = main(["fit", *args, *CLIP, "--data.num_workers", "0", *TINY_MODEL, *FAST])
    assert cli.trainer.state.finished
    settings = cli.datamodule.toy_settings
    assert isinstance(settings, A2DSynthetic)
    assert settings.num_videos == 6 and type(settings.num_videos) is int
    assert settings.sentence_only is True  # the rest of the demo's generator settings are kept
    manifest = json.loads((root / "toy_manifest.json").read_text())
    assert len(manifest["videos"]) == 6
    # What a checkpoint and the logs keep: plain values, not the settings dataclass, so a
    # checkpoint loads without unpickling code (weights_only) and rebuilds the datamodule.
    toy = cli.datamodule.hparams["toy"]
    assert type(toy) is dict and toy.keys() == dataclasses.asdict(settings).keys()
    cli.trainer.save_checkpoint(tmp_path / "run.ckpt")
    saved = torch.load(tmp_path / "run.ckpt", map_location="cpu", weights_only=True)
    assert saved["datamodule_hyper_parameters"]["toy"]["num_videos"] == 6
    assert A2DDataModule.load_from_checkpoint(tmp_path / "run.ckpt").toy_settings == settings


def test_a_bad_toy_setting_is_one_line_naming_the_key(capsys) -> None:
    code, lines = usage_error(capsys, "fit", "--config", DEMO, "--data.toy.num_videos", "six")
    errors = [line for line in lines if "error:" in line]
    assert code == 2 and len(errors) == 1 and len(lines) <= 2, lines
    assert errors[0].startswith("acga fit: error: data.toy.num_videos:") and "six" in errors[0]
    code, lines = usage_error(capsys, "fit", "--config", DEMO, "--data.toy.num_videoz", "3")
    assert code == 2 and len(lines) <= 2 and "data.toy" in lines[0] and "num_videoz" in lines[0]


def test_an_unknown_datamodule_is_one_line_listing_the_known_ones(capsys, tmp_path) -> None:
    for chosen in (["--data", "KineticsDataModule"], ["--data.class_path", "Kinetics"]):
        code, lines = usage_error(capsys, "fit", "--config", DEMO, *chosen)
        assert code == 2 and len(lines) <= 2, lines
        assert "data.class_path:" in lines[0] and "is not a datamodule" in lines[0]
        assert "A2DDataModule" in lines[0] and "JHMDBDataModule" in lines[0]
    config = tmp_path / "kinetics.yaml"
    config.write_text("data:\n  class_path: KineticsDataModule\n  init_args: {root: x}\n")
    code, lines = usage_error(capsys, "fit", "--config", str(config))
    assert code == 2 and "'KineticsDataModule' is not a datamodule" in lines[0]
    # The old flag is refused, saying what replaced it.
    code, lines = usage_error(capsys, "fit", "--config", DEMO, "--data.dataset", "toy")
    assert (
        code == 2 and "'dataset' is not accepted" in lines[0] and "--data A2DDataModule" in lines[0]
    )


def test_a_datamodule_that_refuses_its_settings_is_a_config_error(a2d_root) -> None:
    # jhmdb is evaluation only: no training videos to hold out (the demo holds out 0.1).
    with pytest.raises(ConfigError, match="val_fraction: jhmdb has no training part"):
        main(["test", *_demo_args(a2d_root, "--data", "JHMDBDataModule", *FAST)])


def test_print_config_shows_every_generator_setting(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["fit", "--config", DEMO, "--print_config"])
    assert exited.value.code == 0
    data = yaml.safe_load(capsys.readouterr().out)["data"]
    assert data["class_path"].endswith("A2DDataModule")
    toy = data["init_args"]["toy"]
    assert toy["sentence_only"] is True and toy["num_videos"] == 2000  # the demo's
    defaults = A2DSynthetic()
    for key in ("annotated_per_video", "quirks", "min_actors", "max_actors"):
        assert toy[key] == getattr(defaults, key), key  # the generator's defaults, written out


def test_the_data_class_can_be_chosen_on_the_command_line(toy_jhmdb) -> None:
    root = toy_jhmdb(num_videos=2, height=48, width=64, seed=3)
    args = ["--data", "JHMDBDataModule", "--data.root", str(root), "--data.val_fraction", "0"]
    args += ["--data.word_vectors", str(root / "word2vec.bin"), "--data.frames_per_video", "1"]
    cli = main(["test", "--config", DEMO, *args, *CLIP, *TINY_MODEL, *FAST])
    assert isinstance(cli.datamodule, JHMDBDataModule) and cli.trainer.state.finished
    assert cli.datamodule.hparams["frames_per_video"] == 1
    assert cli.datamodule.toy_settings is None  # the demo's A2D generator is not carried over


# ------------------------------------------------------------------------- configs of old form
def old_form_config(path: Path, root: Path) -> Path:
    """A config as written before one datamodule per dataset."""
    path.write_text(
        yaml.safe_dump(
            {
                "data": {
                    "dataset": "toy",
                    "root": str(root),
                    "toy": {"num_videos": 4, "height": 32, "num_frames": [8, 10], "seed": 1},
                    "dataset_options": {"index_cache": False},
                    "num_frames": 2,
                    "frame_size": 32,
                    "batch_size": 2,
                    "val_fraction": 0.25,
                }
            }
        )
    )
    return path


def test_an_old_form_config_still_runs_and_says_so(tmp_path, capsys) -> None:
    config = old_form_config(tmp_path / "old.yaml", tmp_path / "generated")
    cli = main(["fit", "--config", str(config), *TINY_MODEL, *FAST])
    assert cli.trainer.state.finished
    err = capsys.readouterr().err
    assert f"{config}: data.dataset: 'toy' is the old form; read as data.class_path: " in err
    assert "A2DDataModule with data.toy" in err and "docs/data.md" in err
    dm = cli.datamodule
    assert isinstance(dm, A2DDataModule) and dm.index_cache is False
    assert dm.toy_settings.num_videos == 4 and dm.cache_identity == "a2d_synthetic"
    assert (tmp_path / "generated/Release/videoset.csv").is_file()
    assert cli.model.hparams.frame_size == 32  # still linked into the model


def test_migrate_data_config_rewrites_each_old_form() -> None:
    today = {"class_path": "A2DDataModule", "init_args": {"root": "r"}}
    assert migrate_data_config(today) == (today, None)
    assert migrate_data_config(None) == (None, None)
    assert migrate_data_config({"root": "r"}) == ({"root": "r"}, None)  # a partial override

    data, notice = migrate_data_config({"dataset": "toy", "root": "r"})
    assert data == {"class_path": "acga_lightning.data.datamodules.a2d.A2DDataModule",
                    "init_args": {"root": "r", "toy": {}}}  # fmt: skip
    assert "'toy' is the old form" in notice
    data, _ = migrate_data_config(
        {"dataset": "jhmdb", "root": "j", "dataset_options": {"frames_per_video": 2}}
    )
    assert data["class_path"].endswith("JHMDBDataModule")
    assert data["init_args"] == {"root": "j", "frames_per_video": 2}
    data, _ = migrate_data_config({"dataset": "a2d", "root": "a", "toy": {"num_videos": 3}})
    assert "toy" not in data["init_args"]  # the old form used toy settings only with toy
    with pytest.raises(ConfigError, match="'kinetics' is not a dataset of the old form"):
        migrate_data_config({"dataset": "kinetics"})


def test_an_old_form_config_over_a_config_of_today(tmp_path, capsys) -> None:
    """An old config that includes one of today's: its keys land in init_args, merged."""
    base = {"class_path": "A2DDataModule",
            "init_args": {"root": "data/toy", "batch_size": 8, "index_cache": False,
                          "toy": {"num_videos": 2000, "sentence_only": True},
                          "cache": {"mode": "final", "dir": "c"}}}  # fmt: skip
    data, notice = migrate_data_config({**base, "root": "mine", "toy": {"num_videos": 3}})
    assert notice.startswith("data.root, data.toy beside data.class_path: the old form")
    assert data["class_path"] == "A2DDataModule"
    assert data["init_args"]["root"] == "mine" and data["init_args"]["batch_size"] == 8
    assert data["init_args"]["toy"] == {"num_videos": 3, "sentence_only": True}
    data, _ = migrate_data_config({**base, "dataset": "jhmdb", "root": "j"})
    assert data["class_path"].endswith("JHMDBDataModule")
    # another dataset: the settings every datamodule takes are kept, the A2D ones are not
    assert data["init_args"] == {"root": "j", "batch_size": 8, "cache": base["init_args"]["cache"]}
    # through the command line, as an old config with __base__ would be run
    child = tmp_path / "child.yaml"
    child.write_text(f"__base__: {DEMO}\ndata:\n  root: mine\n  batch_size: 3\n")
    args = resolve_config_args(["fit", "--config", str(child)])
    merged = yaml.safe_load(args[2])["data"]
    assert merged["class_path"] == "A2DDataModule" and "root" not in merged
    assert merged["init_args"]["root"] == "mine" and merged["init_args"]["batch_size"] == 3
    assert merged["init_args"]["toy"]["num_videos"] == 2000
    assert "data.batch_size, data.root beside data.class_path" in capsys.readouterr().err


# ------------------------------------------------------------------------------ config includes
def test_a_config_naming_another_datamodule_keeps_the_shared_settings() -> None:
    cache = {"mode": "final", "dir": "c"}
    a2d = {"root": "a", "toy": {}, "index_cache": False, "batch_size": 3, "cache": cache}
    base = {"data": {"class_path": "A2DDataModule", "init_args": a2d}}
    over = {"data": {"class_path": "JHMDBDataModule", "init_args": {"root": "j"}}}
    merged = merge_configs(base, over)["data"]
    assert merged == {
        "class_path": "JHMDBDataModule",
        "init_args": {"batch_size": 3, "cache": cache, "root": "j"},
    }
    # the same class under its full path merges as usual
    same = {"data": {"class_path": "acga_lightning.data.A2DDataModule", "init_args": {"root": "b"}}}
    assert merge_configs(base, same)["data"]["init_args"]["toy"] == {}
    # other class_path sections (loggers, callbacks) are still replaced whole
    logger = {"trainer": {"logger": {"class_path": "W", "init_args": {"x": 1}}}}
    other = {"trainer": {"logger": {"class_path": "C"}}}
    assert merge_configs(logger, other)["trainer"]["logger"] == {"class_path": "C"}


def test_jhmdb_eval_evaluates_with_the_a2d_configs_cache_and_word_vectors() -> None:
    a2d = load_config(REPO / "configs/a2d_acga.yaml")["data"]["init_args"]
    data = load_config(REPO / "configs/jhmdb_eval.yaml")["data"]
    assert data["class_path"] == "JHMDBDataModule"
    init_args = data["init_args"]
    for key in ("word_vectors", "cache", "num_frames", "frame_size", "batch_size"):
        assert init_args[key] == a2d[key], key
    assert init_args["root"] != a2d["root"] and "toy" not in init_args


def test_the_frame_stride_is_linked_into_the_model(tmp_path) -> None:
    config = old_form_config(tmp_path / "old.yaml", tmp_path / "generated")
    args = ["--seed_everything", "0", "--data.frame_stride", "2"]
    cli = main(["fit", "--config", str(config), *args, *TINY_MODEL, *FAST])
    assert cli.datamodule.hparams.frame_stride == 2 and cli.model.hparams.frame_stride == 2
    assert cli.datamodule.datasets["train"].dataset.frame_stride == 2  # a Subset of the reader
