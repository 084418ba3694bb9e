"""A tiny training run for the reliability tests, run in its own process.

``python fit_job.py OUT --data ROOT --cache DIR --mode full|kill|resume|test [--devices N]``

- ``full``: fit from scratch; ``kill``: the same, but SIGKILL itself after ``--kill-after`` steps
  (mid-epoch, after a checkpoint was saved); ``resume``: fit with ``ckpt_path="last"``;
  ``test``: test the checkpoint ``--ckpt`` on ``--devices`` CPU processes (gloo DDP when > 1).

Writes ``OUT/state_dict.pt`` (final weights) and ``OUT/metrics.json`` (logged metrics).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402

from acga_lightning import ACGASegmenter  # noqa: E402
from acga_lightning.checkpointing import mid_epoch_checkpoint  # noqa: E402
from acga_lightning.data.datamodules import A2DDataModule  # noqa: E402

SIZE = {"num_frames": 8, "frame_size": 64}
EVERY_N_STEPS = 3
MAX_EPOCHS = 3


class KillAfter(pl.Callback):
    """SIGKILL this process at the end of training step ``step`` (no cleanup of any kind)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)


def datamodule(args: argparse.Namespace) -> A2DDataModule:
    return A2DDataModule(
        args.data, toy={}, batch_size=4, **SIZE, seed=0, index_cache=False,
        cache={"mode": "final", "dir": args.cache, "device": "cpu",
               "encoder": {"name": "i3d", "weights": str(Path(args.cache) / "i3d.pt")}},
    )  # fmt: skip


def model(dm: A2DDataModule) -> ACGASegmenter:
    return ACGASegmenter(
        video_encoder=dm.feature_spec,
        decoder={"name": "multires", "up_channels": [16, 8], "head_widths": [16, 8, 4]},
        lr=1e-4, lr_milestones=(2,), compile=False, channels_last=False, **SIZE,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--data", required=True)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--mode", choices=("full", "kill", "resume", "test"), required=True)
    parser.add_argument("--kill-after", type=int, default=7)
    parser.add_argument("--ckpt-dir", default=None)
    parser.add_argument("--ckpt", default=None)
    parser.add_argument("--devices", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(0, workers=True, verbose=False)
    dm = datamodule(args)
    net = model(dm)
    callbacks: list[pl.Callback] = []
    if args.mode != "test":
        callbacks.append(mid_epoch_checkpoint(args.ckpt_dir, every_n_train_steps=EVERY_N_STEPS))
    if args.mode == "kill":
        callbacks.append(KillAfter(args.kill_after))
    trainer = pl.Trainer(
        max_epochs=MAX_EPOCHS, accelerator="cpu", devices=args.devices,
        strategy="ddp" if args.devices > 1 else "auto", logger=False, callbacks=callbacks,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        deterministic=True, default_root_dir=str(out),
    )  # fmt: skip
    if args.mode == "test":
        results = trainer.test(net, datamodule=dm, ckpt_path=args.ckpt, verbose=False)[0]
    else:
        ckpt = "last" if args.mode == "resume" else None
        trainer.fit(net, datamodule=dm, ckpt_path=ckpt)
        results = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    if trainer.is_global_zero:
        torch.save(net.state_dict(), out / "state_dict.pt")
        metrics = {k: float(v) for k, v in results.items()}
        metrics["global_step"] = trainer.global_step
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
