"""Every command README shows works: run here, or run by a named test or by CI.

README's code blocks are read as a newcomer would copy them. Cheap commands (``acga plugins``,
``toy-data``, ``check-data``, ``segment``, the Python inference snippet) run here, in order, in a
scratch folder laid out as the README assumes (``clip.mp4``, ``data/a2d``). Commands that need the
real datasets or minutes of training are matched to the test or CI step that runs them, and that
step must exist. A command that matches nothing fails, so a new README command needs a check.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from acga_lightning.cli import main as acga

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def code_blocks(language: str) -> list[str]:
    return [code for lang, code in BLOCK.findall(README) if lang == language]


def shell_commands() -> list[str]:
    """Each command of README's bash blocks: continuations joined, comments dropped."""
    commands = []
    for block in code_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.split(r"\s+#\s", line)[0].strip()
            if line:
                commands.append(line)
    return commands


def _covered_by(test_file: str, test_name: str) -> None:
    source = (ROOT / "tests" / test_file).read_text()
    assert f"def {test_name}(" in source, f"{test_file} no longer has {test_name}"


def _config_runs_in_tests(config: str) -> None:
    assert (ROOT / config).is_file(), f"README names {config}, which does not exist"
    _covered_by("test_configs.py", "test_config_runs")  # every file in configs/, real CLI


def _pip_installs(command: str) -> list[str]:
    return [p.strip() for p in re.findall(r"pip install ([^&]+)", command)]


def check_elsewhere(command: str) -> bool:
    """True when ``command`` is one that a named test or CI runs (checked to still do so)."""
    if "python3 -m venv" in command or command.startswith("pip install"):
        for packages in _pip_installs(command):
            # CI installs the test extra, a superset of the plain package install
            packages = '-e ".[test]"' if packages == "-e ." else packages
            ci_form = f"python -m pip install --quiet --no-cache-dir {packages}"
            assert ci_form in CI, f"CI does not install {packages!r} as README does"
        if command.endswith("python -m pytest"):
            assert "python -m pytest -q -p no:cacheprovider --durations=15" in CI
        fit = re.search(r"acga fit --config (\S+)$", command)
        if fit:
            _config_runs_in_tests(fit.group(1))
        return True
    if command.startswith("PYTHONPATH=. acga fit"):  # the plug-in example, run verbatim there
        _covered_by("test_plugins.py", "test_readme_plugin_example_runs_exactly_as_printed")
        return True
    words = shlex.split(command)
    if words[:2] == ["acga", "convert-official"]:  # needs the official release's checkpoint
        _covered_by("test_convert.py", "test_cli_converts_and_reads_module_prefix")
        return True
    if words[:2] == ["acga", "cache-features"]:
        _config_runs_in_tests(words[words.index("--config") + 1])
        _covered_by("test_cli.py", "test_cache_features_builds_then_fit_reads_it")
        return True
    if words[:1] == ["acga"] and words[1] in ("fit", "validate", "test", "predict"):
        _config_runs_in_tests(words[words.index("--config") + 1])
        return True
    return False


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_a2d_root: Path) -> Path:
    """A working folder as README assumes: ``clip.mp4`` (a generated video), ``data/a2d``."""
    shutil.copytree(small_a2d_root, tmp_path / "data" / "a2d")
    video = sorted((small_a2d_root / "Release" / "clips320H").glob("*.mp4"))[0]
    shutil.copy(video, tmp_path / "clip.mp4")
    shutil.copytree(ROOT / "tests" / "assets", tmp_path / "tests" / "assets")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    return tmp_path


def test_every_readme_command_runs_here_or_in_a_named_test_or_ci(scratch: Path, capsys) -> None:
    commands = shell_commands()
    assert len(commands) >= 8, commands
    ran = []
    for command in commands:
        if check_elsewhere(command):
            continue
        words = shlex.split(command)
        assert words[0] == "acga", f"README command with no check: {command}"
        assert words[1] in ("plugins", "toy-data", "check-data", "segment"), command
        extra = ["--no-progress"] if words[1] in ("check-data", "segment") else []
        assert acga([*words[1:], *extra]) == 0, command
        ran.append(words[1])
    capsys.readouterr()
    assert {"check-data", "toy-data", "segment"} <= set(ran), ran
    assert (scratch / "segmented" / "overlay.mp4").is_file()
    assert any((scratch / "segmented" / "masks").glob("*.png"))


def test_the_python_snippet_segments_a_clip(scratch: Path) -> None:
    # the inference snippet (the plug-in's module is run by tests/test_plugins.py)
    (snippet,) = [code for code in code_blocks("python") if "load_from_checkpoint" in code]
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102 - README's own code
    mask, frames = namespace["mask"], namespace["frames"]
    assert mask.dtype.is_floating_point is False and tuple(mask.shape) == frames.shape[1:3]
    assert namespace["scores"].shape == (1,)


def test_readme_is_short_and_its_contents_list_every_section() -> None:
    assert len(README) <= 12_500, len(README)
    sections = re.findall(r"^## (.+)$", README, re.M)
    contents = README.split("## Contents", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^- \[(.+?)\]\(#(.+?)\)$", contents, re.M)
    assert [title for title, _ in listed] == [s for s in sections if s != "Contents"]
    for title, anchor in listed:
        assert anchor == re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")


def test_readme_links_and_pictures_exist() -> None:
    targets = re.findall(r"\]\(([^)#]+?)(?:#[^)]*)?\)", README)
    local = [t for t in targets if not t.startswith("http")]
    assert "docs/images/segmented_clip.png" in local
    for target in local:
        assert (ROOT / target).exists(), f"README links to missing {target}"
    picture = ROOT / "docs" / "images" / "segmented_clip.png"
    assert picture.stat().st_size < 200_000


def test_inline_python_commands_name_existing_scripts() -> None:
    scripts = re.findall(r"`python (\S+\.py)[^`]*`", README)
    assert "scripts/readme_picture.py" in scripts
    for script in scripts:
        assert (ROOT / script).is_file(), f"README names {script}, which does not exist"


def test_the_picture_command_redraws_the_picture(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "readme_picture", ROOT / "scripts/readme_picture.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = module.main(["--out", str(tmp_path / "picture.png")])
    drawn = np.asarray(Image.open(path))
    shipped = np.asarray(Image.open(ROOT / "docs" / "images" / "segmented_clip.png"))
    assert drawn.shape == shipped.shape and drawn.shape[0] >= 256
    assert path.stat().st_size < 200_000
