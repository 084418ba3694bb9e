"""Ctrl-C, then ``acga fit --ckpt_path last`` with the shipped demo config (wandb logger included).

The logger names each run's checkpoint folder after a fresh wandb run id, so ``last`` has to
find the interrupted run's folder: the resumed run must end with the same weights as an
uninterrupted one, in the interrupted run's folder and wandb run. Every run is the real ``acga``
console script in a subprocess, interrupted by a real SIGINT (``interrupt.SigintAt``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ACGA = str(Path(sys.executable).with_name("acga"))
REPO = Path(__file__).resolve().parents[2]
TOY = ("{num_videos: 8, height: 64, width: 64, num_frames: [8, 8], test_fraction: 0.25, seed: 0,"
       " sentence_only: true}")  # fmt: skip


def acga_fit(tmp: Path, run: str, *extra: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "WANDB_MODE": "offline",
        "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    # fmt: skip
    cmd = [ACGA, "fit", "--config", str(REPO / "configs" / "demo.yaml"),
           "--data.root", str(tmp / run / "toy"), "--data.toy", TOY, "--data.batch_size", "4",
           "--data.num_frames", "2", "--trainer.max_epochs", "3", "--time_budget_minutes", "null",
           "--test_after_fit", "false", "--torch_threads", "1",
           "--trainer.logger.init_args.save_dir", str(tmp / run / "outputs"),
           "--trainer.enable_model_summary", "false", *extra]  # fmt: skip
    return subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def finish(proc: subprocess.Popen, expect: int = 0) -> str:
    output, _ = proc.communicate(timeout=400)
    assert proc.returncode == expect, output[-3000:]
    return output


def last_checkpoints(outputs: Path) -> list[Path]:
    return sorted(outputs.glob("acga-lightning/*/checkpoints/last.ckpt"))


@pytest.mark.slow
def test_ctrl_c_then_ckpt_path_last_with_the_demo_config_equals_an_uninterrupted_run(tmp_path):
    # side by side (2 cores): the uninterrupted run, and the one Ctrl-C stops in epoch 1
    full = acga_fit(tmp_path, "full")
    sigint = "--trainer.callbacks+=tests.reliability.interrupt.SigintAt"
    interrupted = acga_fit(tmp_path, "broken", sigint, "--trainer.callbacks.epoch", "1")
    finish(full)
    output = finish(interrupted, expect=1)
    assert "Detected KeyboardInterrupt" in output
    (stopped,) = last_checkpoints(tmp_path / "broken" / "outputs")
    assert torch.load(stopped, map_location="cpu", weights_only=False)["epoch"] == 0
    run_id = stopped.parent.parent.name

    output = finish(acga_fit(tmp_path, "broken", "--ckpt_path", "last"))
    assert f"--ckpt_path last: resuming from {stopped}, continuing logger run {run_id}" in output
    assert "starts from scratch" not in output
    # the same folder and the same wandb run id: no second run folder
    assert last_checkpoints(tmp_path / "broken" / "outputs") == [stopped]
    offline_runs = sorted((tmp_path / "broken" / "outputs" / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 2 and all(p.name.endswith(run_id) for p in offline_runs)

    (done,) = last_checkpoints(tmp_path / "full" / "outputs")
    want = torch.load(done, map_location="cpu", weights_only=False)
    got = torch.load(stopped, map_location="cpu", weights_only=False)
    assert want["epoch"] == got["epoch"] == 2
    assert want["global_step"] == got["global_step"] > 0
    assert want["state_dict"].keys() == got["state_dict"].keys()
    for key, value in want["state_dict"].items():
        assert torch.equal(value, got["state_dict"][key]), key


def test_ckpt_path_last_with_nothing_to_resume_says_so_in_one_line(tmp_path):
    output = finish(acga_fit(tmp_path, "fresh", "--trainer.max_epochs", "1", "--ckpt_path", "last"))
    lines = [line for line in output.splitlines() if "--ckpt_path last" in line]
    assert len(lines) == 1 and "nothing to resume" in lines[0], output[-2000:]
    assert "starts from scratch" in lines[0]
