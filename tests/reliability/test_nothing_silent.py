"""Bad input met through the real ``acga`` command: an error naming it, never a silent result.

Empty splits, commands that would overwrite data they did not write, unusable checkpoints, word
vectors and configs. ``main(args)`` lets the error propagate (checked by type and message);
``main()`` as the console script runs it ends with one line and exit code 1 (data) or 2 (usage).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

from acga_lightning.cli import main
from acga_lightning.data.synthetic import write_a2d
from acga_lightning.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "--config", str(REPO / "configs/demo.yaml"), "--data.frame_size", "32",
    "--data.num_frames", "2", "--data.batch_size", "2", "--trainer.logger", "false",
    "--model.video_encoder", "{name: small3d, widths: [4, 4, 4, 8], temporal: early}",
    "--model.decoder", "{name: multires, up_channels: [4, 4], head_widths: [4, 4, 4]}",
    "--time_budget_minutes", "null", "--test_after_fit", "false",
]  # fmt: skip


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return write_a2d(tmp_path_factory.mktemp("silent") / "toy", num_videos=6, height=32, seed=2)


@pytest.fixture
def toy(clean, tmp_path) -> Path:
    return Path(shutil.copytree(clean, tmp_path / "toy"))


@pytest.fixture(autouse=True)
def _quiet(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setattr(sys, "argv", ["acga"])
    monkeypatch.chdir(tmp_path)


def console(monkeypatch, capsys, *argv: str) -> tuple[int, str]:
    """``acga ARGV`` as the console script runs it: the exit code and the error line."""
    monkeypatch.setattr(sys, "argv", ["acga", *argv])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err.strip()
    return exit_.value.code, err


def fit_args(root: Path, *extra: str) -> list[str]:
    return ["fit", *TINY, "--data.root", str(root), *extra]


def test_fit_without_training_samples_fails_naming_the_split(toy, monkeypatch, capsys):
    (toy / "Release/videoset.csv").write_text("")  # every query's video is now unknown
    with pytest.raises(DataError, match=r"a2d train split of .*toy is empty: every sample was "
                       r"skipped \(\{'unknown_video': \d+\}\)"):  # fmt: skip
        main(fit_args(toy))
    (toy / "text_annotations/a2d_annotation.txt").write_text("video_id,instance_id,query\n")
    with pytest.raises(DataError, match=r"a2d train split of .*toy is empty: the data lists none"):
        main(fit_args(toy))
    code, err = console(monkeypatch, capsys, *fit_args(toy))
    assert code == 1 and err.startswith("acga fit: error: a2d train split") and "\n" not in err


def test_a_val_fraction_that_holds_out_every_training_video_fails(toy):
    with pytest.raises(DataError, match=r"train split .* empty: data.val_fraction 0.99 holds out"):
        main(fit_args(toy, "--data.val_fraction", "0.99"))


def test_test_split_emptied_by_the_data_fails_in_test(toy):
    rows = (toy / "Release/videoset.csv").read_text().splitlines()
    (toy / "Release/videoset.csv").write_text("".join(r + "\n" for r in rows if r[-1] == "0"))
    with pytest.raises(DataError, match="a2d test split .* is empty"):
        main(["test", *TINY, "--data.root", str(toy)])


def test_toy_data_refuses_an_existing_dataset(toy, monkeypatch, capsys):
    before = {p: p.read_bytes() for p in toy.rglob("*") if p.is_file()}
    code, err = console(monkeypatch, capsys, "toy-data", str(toy), "--videos", "2", "--seed", "9")
    assert code == 2 and f"{toy} is not an empty folder" in err and "--overwrite" in err
    assert {p: p.read_bytes() for p in toy.rglob("*") if p.is_file()} == before
    assert main(["toy-data", str(toy), "--videos", "2", "--height", "32", "--overwrite"]) == 0


def test_cache_features_refuses_a_folder_it_did_not_make(toy, tmp_path, monkeypatch, capsys):
    encoder = "{name: small3d, widths: [4, 4, 4, 8]}"
    cache = f"{{mode: final, dir: {tmp_path / 'cache'}, encoder: {encoder}}}"
    args = ["cache-features", *TINY, "--data.root", str(toy), "--data.cache", cache]
    assert main(args) == 0
    (fingerprint,) = (tmp_path / "cache").glob("*/fingerprint.json")
    fingerprint.unlink()  # now a folder of someone else's files
    entries = {p: p.read_bytes() for p in fingerprint.parent.rglob("*.npy")}
    code, err = console(monkeypatch, capsys, *args)
    assert code == 2 and "holds files but no fingerprint.json" in err
    assert {p: p.read_bytes() for p in fingerprint.parent.rglob("*.npy")} == entries


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "checkpoint file not found"),
        (b"epoch: 3\n", "not a readable PyTorch checkpoint"),
        ("truncated", "not a readable PyTorch checkpoint"),
        ("a list", "not a readable checkpoint: AttributeError"),
        ("an object", "not a readable checkpoint: UnpicklingError"),
    ],
)
def test_unusable_ckpt_path_fails_before_the_model_is_built(
    toy, tmp_path, monkeypatch, capsys, content, message
):
    path = tmp_path / "model.ckpt"
    if content == "a list":
        torch.save([1, 2], path)
    elif content == "an object":
        torch.save({"hyper_parameters": {"when": __import__("datetime").date(2026, 1, 1)}}, path)
    elif content == "truncated":
        torch.save({"state_dict": {"w": torch.zeros(1000)}}, path)
        path.write_bytes(path.read_bytes()[:2000])
    elif content is not None:
        path.write_bytes(content)

    def too_late(*args, **kwargs):
        raise AssertionError("the model was built before the checkpoint was checked")

    monkeypatch.setattr(
        "acga_lightning.lightning_cli.ACGALightningCLI.instantiate_classes", too_late
    )
    with pytest.raises(ConfigError, match=f"ckpt_path: .*{message}"):
        main(fit_args(toy, "--ckpt_path", str(path)))
    code, err = console(monkeypatch, capsys, *fit_args(toy, "--ckpt_path", str(path)))
    assert code == 2 and str(path) in err and "\n" not in err


def test_word_vectors_of_the_wrong_size_fail_before_training_naming_the_file(toy, tmp_path):
    from gensim.models import KeyedVectors

    small = KeyedVectors(100)
    small.add_vectors(["dog", "left"], torch.ones(2, 100).numpy())
    path = tmp_path / "vectors100.bin"
    small.save_word2vec_format(str(path), binary=True)
    with pytest.raises(ConfigError, match=rf"{path} holds 100-d word vectors.*word_dim is 300"):
        main(fit_args(toy, "--data.word_vectors", str(path)))


def test_a_yaml_syntax_error_names_the_config_file_and_line(toy, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"__base__: {REPO / 'configs/demo.yaml'}\ntrainer:\n  max_epochs: [1\n")
    code, err = console(monkeypatch, capsys, "fit", "--config", str(bad))
    assert code == 2 and f"{bad}, line 4: not valid YAML" in err and "\n" not in err
    plain = tmp_path / "plain.yaml"  # no __base__: LightningCLI would read it itself
    plain.write_text("trainer: {max_epochs: 1\n")
    with pytest.raises(ConfigError, match=rf"{plain}, line \d: not valid YAML"):
        main(["fit", "--config", str(plain)])


def test_a_video_that_fails_to_decode_mid_run_is_one_line_and_exit_code_1(toy, monkeypatch, capsys):
    from acga_lightning.data.io.video import VideoReadError

    def truncated(path, indices):
        raise VideoReadError(f"{path}: truncated stream at frame {indices[0]}")

    monkeypatch.setattr("acga_lightning.data.datasets.a2d.read_window", truncated)
    code, err = console(monkeypatch, capsys, *fit_args(toy, "--trainer.fast_dev_run", "true"))
    assert code == 1 and err.startswith("acga fit: error: ") and ".mp4: truncated" in err
    assert "\n" not in err


def test_a_data_loader_workers_error_is_shown_as_its_own_message():
    from acga_lightning.cli import error_line

    wrapped = DataError(
        "Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
        'last):\n  File "x.py", line 1, in f\nacga_lightning.errors.DataError: v.mp4: truncated'
    )
    assert error_line(wrapped) == "v.mp4: truncated"
    assert error_line(DataError("a.csv:3: bad row")) == "a.csv:3: bad row"
