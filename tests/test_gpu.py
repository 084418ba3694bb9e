"""Checks that need a CUDA device (run with ``-m gpu``)."""

import pytest
import torch

from acga_lightning import ACGASegmenter
from acga_lightning.perf import optimise_for_speed, segmenter_specs

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

SMALL = {"num_frames": 8, "frame_size": 128}


def batch(device="cuda"):
    torch.manual_seed(0)
    return {
        "frames": (torch.rand(2, 3, 8, 128, 128) * 2 - 1).to(device),
        "words": torch.randn(2, 6, 300).to(device),
        "word_mask": torch.tensor([[True] * 6, [True] * 3 + [False] * 3]).to(device),
    }


def test_optimised_bf16_matches_plain_fp32_on_cuda():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    plain = ACGASegmenter(**segmenter_specs(fast=False), **SMALL).cuda().eval()
    fast = ACGASegmenter(**SMALL).cuda().eval()
    fast.load_state_dict(plain.state_dict())
    optimise_for_speed(fast, compile=False, channels_last=True)
    with torch.no_grad():
        reference = torch.sigmoid(plain(**batch())["logits"][-1])
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = torch.sigmoid(fast(**batch())["logits"][-1].float())
    assert (out - reference).abs().max() < 2e-2


def test_fit_steps_bf16_on_cuda(tmp_path):
    import pytorch_lightning as pl

    data = [dict(batch("cpu"), mask=(torch.rand(2, 128, 128) > 0.8).float()) for _ in range(3)]
    model = ACGASegmenter(**SMALL)
    trainer = pl.Trainer(
        accelerator="gpu",
        devices=1,
        precision="bf16-mixed",
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, train_dataloaders=torch.utils.data.DataLoader(data, batch_size=None))
    assert model.compiled and trainer.global_step == 3
