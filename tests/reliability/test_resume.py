"""Exact resume after SIGKILL mid-epoch, and 1- vs 2-process evaluation of one checkpoint.

Every run is a subprocess (``fit_job.py``) on tiny generated data with a cached feature encoder:
a run killed by SIGKILL and resumed with ``ckpt_path="last"`` must end with bit-identical weights
and validation metrics to an uninterrupted run of the same seed. On CPU with one thread every
kernel is deterministic, the batch order is a function of (seed, epoch) and the model has no
random layers, so equality is exact, not within a tolerance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

JOB = Path(__file__).with_name("fit_job.py")
EVERY_N, KILL_AFTER = 3, 7  # 5 batches per epoch: killed in epoch 1 after 2 of its batches


def job(out: Path, data: Path, cache: Path, mode: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled",
           "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}  # fmt: skip
    cmd = [sys.executable, str(JOB), str(out), "--data", str(data), "--cache", str(cache),
           "--mode", mode, *extra]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


def finish(proc: subprocess.Popen, expect: int = 0) -> str:
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == expect, output[-3000:]
    return output


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, Path]:
    """Toy data, frozen encoder weights and the feature cache the jobs read."""
    sys.path.insert(0, str(JOB.parent))
    try:
        import fit_job
    finally:
        sys.path.remove(str(JOB.parent))
    from acga_lightning.data.synthetic import write_a2d
    from acga_lightning.registry import VIDEO_ENCODERS

    base = tmp_path_factory.mktemp("resume")
    data, cache = base / "data", base / "cache"
    write_a2d(data, num_videos=4, seed=3, height=64, num_frames=(16, 24))
    cache.mkdir()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        encoder = VIDEO_ENCODERS.build("i3d", **fit_job.SIZE)
    torch.save(encoder.i3d.state_dict(), cache / "i3d.pt")
    fit_job.datamodule(type("Args", (), {"data": str(data), "cache": str(cache)})).prepare_data()
    return data, cache


def load(out: Path) -> tuple[dict, dict]:
    state = torch.load(out / "state_dict.pt", map_location="cpu", weights_only=True)
    return state, json.loads((out / "metrics.json").read_text())


class _Crash(Exception):
    pass


class CrashAfter(pytest.importorskip("pytorch_lightning").Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            raise _Crash(f"crash after step {trainer.global_step}")


# Lightning's pytree shim on current torch; pyproject only allows the DeprecationWarning form
@pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")
def test_crash_mid_epoch_then_resume_equals_uninterrupted_run_in_process(prepared, tmp_path):
    """The fast version (default run): same jobs in this process, a crash instead of SIGKILL."""
    import pytorch_lightning as pl

    sys.path.insert(0, str(JOB.parent))
    try:
        import fit_job
    finally:
        sys.path.remove(str(JOB.parent))
    data, cache = prepared
    args = type("Args", (), {"data": str(data), "cache": str(cache)})

    def fit(ckpt_dir: Path, crash: int | None = None, ckpt_path: str | None = None) -> dict:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            dm = fit_job.datamodule(args)
            model = fit_job.model(dm)
            callbacks = [fit_job.mid_epoch_checkpoint(ckpt_dir, every_n_train_steps=EVERY_N)]
            callbacks += [CrashAfter(crash)] if crash else []
            trainer = pl.Trainer(
                max_epochs=fit_job.MAX_EPOCHS, accelerator="cpu", devices=1, logger=False,
                callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False,
                num_sanity_val_steps=0, deterministic=True, default_root_dir=str(tmp_path),
            )  # fmt: skip
            trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
        return {k: v.clone() for k, v in model.state_dict().items()}

    full = fit(tmp_path / "a")
    with pytest.raises(_Crash):
        fit(tmp_path / "b", crash=KILL_AFTER)
    last = torch.load(tmp_path / "b" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["batches_served"] == 1
    resumed = fit(tmp_path / "b", ckpt_path="last")
    assert max((full[k] - resumed[k]).abs().max().item() for k in full) == 0.0


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(prepared, tmp_path):
    data, cache = prepared
    full, broken = tmp_path / "full", tmp_path / "broken"
    # The uninterrupted run and the run to be killed go side by side (2 cores, 1 thread each).
    procs = [
        job(full, data, cache, "full", "--ckpt-dir", str(full / "ckpt")),
        job(broken, data, cache, "kill", "--ckpt-dir", str(broken / "ckpt"),
            "--kill-after", str(KILL_AFTER)),
    ]  # fmt: skip
    finish(procs[0])
    finish(procs[1], expect=-9)  # SIGKILL: no cleanup, no final checkpoint
    assert not (broken / "metrics.json").exists()
    last = torch.load(broken / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == KILL_AFTER - KILL_AFTER % EVERY_N == 6
    loader_state = last["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert loader_state == {"epoch": 1, "batches_served": 1, "num_batches": 5}  # mid-epoch
    output = finish(job(broken, data, cache, "resume", "--ckpt-dir", str(broken / "ckpt")))
    assert "not resumable" not in output  # Lightning's warning for loaders without state
    (w_full, m_full), (w_resumed, m_resumed) = load(full), load(broken)
    assert m_full["global_step"] == m_resumed["global_step"] == 15
    assert w_full.keys() == w_resumed.keys()
    max_diff = max((w_full[k].float() - w_resumed[k].float()).abs().max().item() for k in w_full)
    print(f"max |dweight| = {max_diff}; metrics full {m_full}; resumed {m_resumed}")
    assert max_diff == 0.0
    assert m_full == m_resumed
    # and the runs did learn something: weights moved from their (seeded) initial values
    assert m_full["val/loss"] > 0 and any(k.startswith("val/mean_iou") for k in m_full)


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_test_metrics_equal_single_process_and_ddp_fit_completes(prepared, tmp_path):
    """Weights of a 2-process fit differ from a 1-process fit (the effective batch doubles), so
    the equality checked is of test metrics: one checkpoint scored by 1 and by 2 processes on
    an odd number of test samples (uneven shards, no padding duplicates)."""
    data, cache = prepared
    fitted = tmp_path / "ddp_fit"
    finish(job(fitted, data, cache, "full", "--devices", "2", "--ckpt-dir", str(fitted / "ckpt")))
    _, fit_metrics = load(fitted)
    assert fit_metrics["val/num_samples"] == 9  # every val sample once over the two ranks
    ckpt = fitted / "ckpt" / "last.ckpt"
    one, two = tmp_path / "one", tmp_path / "two"
    procs = [job(one, data, cache, "test", "--ckpt", str(ckpt)),
             job(two, data, cache, "test", "--ckpt", str(ckpt), "--devices", "2")]  # fmt: skip
    for proc in procs:
        finish(proc)
    (_, m_one), (_, m_two) = load(one), load(two)
    print(f"1 process {m_one}; 2 processes {m_two}")
    assert m_one["test/num_samples"] == m_two["test/num_samples"] == 9
    for key in m_one:
        if key != "test/loss":  # a mean of per-rank batch means: not a per-sample figure
            assert m_one[key] == pytest.approx(m_two[key], abs=1e-6), key
