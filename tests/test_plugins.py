"""Plug-ins from outside the package: entry points, ``module:Class`` specs, broken modules.

The entry-point tests build a throw-away installed package (a ``.dist-info`` folder with
``entry_points.txt`` on ``PYTHONPATH``) and run the real ``acga`` console script in fresh
processes, as a user's project would.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from acga_lightning import registry
from acga_lightning.data.synthetic import write_a2d
from acga_lightning.registry import ATTENTION, PluginError, UnknownPartError, import_class_path

REPO = Path(__file__).resolve().parents[1]
ACGA = str(Path(sys.executable).with_name("acga"))
PARTS = textwrap.dedent(
    '''
    from torch import nn
    from acga_lightning.registry import ATTENTION
    from acga_lightning.models.attention import AttentionOutput, sentence_feature, tile

    @ATTENTION.register("{name}")
    class MeanText(nn.Module):
        """Tile the mean word feature over the grid (a test plug-in)."""

        def __init__(self, visual_channels: int = 832, text_channels: int = 300) -> None:
            super().__init__()

        def forward(self, visual, text, word_mask) -> AttentionOutput:
            b, c, h, w = visual.shape
            mean = (text * word_mask[..., None]).sum(1) / word_mask.sum(1, keepdim=True)
            return AttentionOutput(visual, tile(mean, h, w), sentence_feature(text, word_mask))
    '''
)
TINY = [
    "--data.frame_size", "32", "--data.num_frames", "2", "--data.batch_size", "2",
    "--trainer.logger", "false", "--time_budget_minutes", "null",
    "--model.video_encoder", "{name: small3d, widths: [4, 4, 4, 8], temporal: early}",
    "--model.decoder", "{name: multires, up_channels: [4, 4], head_widths: [4, 4, 4]}",
]  # fmt: skip


def install_package(site: Path, module_body: str, dist: str = "acga_test_parts") -> None:
    """A package ``acga_test_parts`` declaring ``parts = acga_test_parts.parts`` as a plug-in."""
    (site / "acga_test_parts").mkdir(parents=True)
    (site / "acga_test_parts/__init__.py").write_text("")
    (site / "acga_test_parts/parts.py").write_text(module_body)
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[acga_lightning.plugins]\nparts = acga_test_parts.parts\n"
    )


def run(args: list[str], cwd: Path, site: Path | None = None, check: bool = True):
    env = {**os.environ, "WANDB_MODE": "disabled", "NO_ALBUMENTATIONS_UPDATE": "1"}
    env.pop("ACGA_DEBUG", None)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH")) if p)
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return write_a2d(tmp_path_factory.mktemp("plugins") / "toy", num_videos=6, height=32, seed=2)


def test_entry_point_plugin_through_the_cli_and_a_fresh_checkpoint_load(toy, tmp_path) -> None:
    site = tmp_path / "site"
    install_package(site, PARTS.format(name="ep_mean_text"))
    demo = ["--config", str(REPO / "configs/demo.yaml"), "--data.root", str(toy), *TINY]
    # As the user runs it: the plug-in named in the config, nothing imported by hand.
    run([ACGA, "fit", *demo, "--model.attention", "ep_mean_text",
         "--trainer.fast_dev_run", "true"], tmp_path, site)  # fmt: skip
    listing = run([ACGA, "plugins", "--kind", "attention"], tmp_path, site).stdout
    row = next(line for line in listing.splitlines() if "ep_mean_text" in line)
    assert "acga_test_parts" in row and "a test plug-in" in row
    assert "plug-in packages: acga_test_parts" in listing
    # A real (one short epoch) run writes a checkpoint; a fresh process loads it by name.
    fit = [ACGA, "fit", *demo, "--model.attention", "ep_mean_text", "--trainer.max_epochs", "1",
           "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
           "--trainer.default_root_dir", str(tmp_path / "run"),
           "--test_after_fit", "false"]  # fmt: skip
    run(fit, tmp_path, site)
    checkpoint = next((tmp_path / "run").rglob("last.ckpt"))
    load = (
        "from acga_lightning import ACGASegmenter\n"
        "from acga_lightning.registry import parse_spec\n"
        f"m = ACGASegmenter.load_from_checkpoint({str(checkpoint)!r}, map_location='cpu')\n"
        "print(type(m.attention).__module__, parse_spec(m.hparams.attention)[0])\n"
    )
    out = run([sys.executable, "-c", load], tmp_path, site).stdout
    assert out.split() == ["acga_test_parts.parts", "ep_mean_text"]
    # Without the package the same checkpoint names what is missing.
    failed = run([sys.executable, "-c", load], tmp_path, None, check=False)
    assert failed.returncode != 0 and "unknown attention 'ep_mean_text'" in failed.stderr


def test_a_broken_plugin_module_is_named_in_one_line(tmp_path) -> None:
    site = tmp_path / "site"
    install_package(site, "import a_module_that_does_not_exist\n", dist="broken_parts")
    result = run([ACGA, "plugins"], tmp_path, site, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "plug-in 'parts' of package 'broken_parts'" in message
    assert "a_module_that_does_not_exist" in message


def test_config_mistakes_are_one_line_errors_naming_the_key(toy, tmp_path) -> None:
    demo = [ACGA, "fit", "--config", str(REPO / "configs/demo.yaml"), "--data.root", str(toy)]
    cases = {
        "unknown plug-in": (["--model.attention", "mean_texts"], "model.attention"),
        "unknown key": (["--model.lrr", "3"], "--model.lrr"),
        "wrong type": (["--model.lr", "fast"], "model.lr"),
        "missing config": (["--config", str(tmp_path / "nope.yaml")], "nope.yaml"),
    }
    for case, (extra, key) in cases.items():
        result = run([*demo, *extra], tmp_path, check=False)
        assert result.returncode == 2, case
        assert "Traceback" not in result.stderr and "usage:" not in result.stderr, case
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1 and key in result.stderr, (case, result.stderr)
        assert len(result.stderr.strip().splitlines()) <= 4, (case, result.stderr)


def test_class_path_spec_is_kept_and_rebuilds_from_a_checkpoint(tmp_path, monkeypatch) -> None:
    from acga_lightning import ACGASegmenter

    (tmp_path / "my_parts_mod.py").write_text(PARTS.format(name="path_mean_text"))
    monkeypatch.syspath_prepend(str(tmp_path))
    parts = {
        "video_encoder": {"name": "small3d", "widths": [4, 4, 4, 8], "temporal": "early"},
        "decoder": {"name": "multires", "up_channels": [4, 4], "head_widths": [4, 4, 4]},
    }
    try:
        model = ACGASegmenter(
            **parts, attention="my_parts_mod:MeanText", num_frames=2, frame_size=32
        )
        assert type(model.attention).__name__ == "MeanText"
        assert model.hparams.attention == "my_parts_mod:MeanText"
        path = tmp_path / "model.ckpt"
        torch.save(
            {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
             "pytorch-lightning_version": "2.6.0"},
            path,
        )  # fmt: skip
        loaded = ACGASegmenter.load_from_checkpoint(path, map_location="cpu")
        assert type(loaded.attention) is type(model.attention)
    finally:
        ATTENTION._classes.pop("path_mean_text", None)


def test_class_path_errors_name_the_part() -> None:
    with pytest.raises(PluginError, match="cannot import module 'no_such_pkg.parts'"):
        ATTENTION.get("no_such_pkg.parts:Thing")
    with pytest.raises(UnknownPartError, match="has no 'NotThere'"):
        import_class_path("acga_lightning.models.attention:NotThere", "attention")
    with pytest.raises(PluginError, match="not a class"):
        import_class_path("acga_lightning.models.attention:tile", "attention")
    assert import_class_path("torch.nn.Identity") is torch.nn.Identity  # dotted form too
    with pytest.raises(KeyError):  # still a KeyError for callers that catch one
        ATTENTION.get("not_registered")


def test_entry_points_load_once_and_a_failure_is_retried(monkeypatch) -> None:
    calls = []

    class Entry:
        name, value, module, dist = "x", "x_mod", "x_mod", None

        def load(self):
            calls.append(1)
            raise ImportError("boom")

    monkeypatch.setattr(registry, "_plugin_modules", None)
    monkeypatch.setattr(registry.importlib.metadata, "entry_points", lambda group: [Entry()])
    for _ in range(2):  # not cached as loaded: every lookup says what is wrong
        with pytest.raises(PluginError, match="plug-in 'x' of package 'unknown package'.*boom"):
            ATTENTION.names()
    assert len(calls) == 2
    monkeypatch.setattr(registry.importlib.metadata, "entry_points", lambda group: [])
    monkeypatch.setattr(registry, "_plugin_modules", None)
    assert "acga" in ATTENTION.names()


def test_readme_plugin_example_runs_exactly_as_printed(toy, tmp_path) -> None:
    """The README's "Adding a plug-in" code saved as mean_text.py, then its command, verbatim."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Adding a plug-in", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, re.S)
    commands = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(code) == 1 and len(commands) == 1, "the section has one file and one command"
    (tmp_path / "mean_text.py").write_text(code[0])
    shutil.copytree(REPO / "configs", tmp_path / "configs")  # a fresh copy of configs/
    shutil.copytree(toy, tmp_path / "data/toy")  # small data where the demo config looks
    env = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    for command in commands[0].strip().splitlines():
        assert command.startswith("PYTHONPATH=. acga "), command
        result = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=300,
            env={**os.environ, "PATH": env, "WANDB_MODE": "disabled"},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
