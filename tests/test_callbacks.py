"""ValidationImageLogger: PNGs on disk in a real 1-epoch fit without a logger; wandb images through
the logger's log_image when a WandbLogger is attached."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from pytorch_lightning.loggers import WandbLogger

from acga_lightning import ACGASegmenter
from acga_lightning.callbacks import ValidationImageLogger
from acga_lightning.data import A2DDataModule

SMALL = {"num_frames": 4, "frame_size": 32}
HEAD = {"decoder": {"name": "multires", "up_channels": [16, 8], "head_widths": [16, 8, 8]}}
FAST = {"name": "small3d", "widths": [8, 8, 16, 16]}  # a cheap frames encoder
NAMES = ("overlay", "word_attention", "pixel_context")
# Lightning's pytree use on torch 2.14 (pyproject's allow-list has it as a DeprecationWarning only)
LEAFSPEC = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


@LEAFSPEC
def test_fit_writes_pictures_to_disk_without_a_logger(tmp_path):
    dm = A2DDataModule(
        str(tmp_path / "toy"),
        toy={"num_videos": 4, "seed": 2, "height": 64, "num_frames": (12, 16), "quirks": False},
        batch_size=3,
        index_cache=False,
        **SMALL,
    )
    model = ACGASegmenter(video_encoder=FAST, **HEAD, **SMALL)
    every_epoch = ValidationImageLogger(num_samples=2)
    elsewhere = tmp_path / "elsewhere"
    not_yet = ValidationImageLogger(num_samples=2, every_n_epochs=2, out_dir=str(elsewhere))
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=1,
        num_sanity_val_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[every_epoch, not_yet],
    )
    trainer.fit(model, dm)
    folder = tmp_path / "pictures" / "epoch_000"
    expected = {f"sample{i}_{name}.png" for i in range(2) for name in NAMES}
    assert {p.name for p in folder.iterdir()} == expected  # the sanity check drew nothing more
    assert sorted(every_epoch.written) == sorted(folder / name for name in expected)
    overlay = np.asarray(Image.open(folder / "sample0_overlay.png"))
    # the 32-pixel frame enlarged 8x (nearest) under its caption, over its legend
    assert overlay.shape == (256 + 64, 256, 3)
    words = np.asarray(Image.open(folder / "sample0_word_attention.png"))
    assert words.ndim == 3 and words.shape[0] > 32 and words.std() > 0
    assert not elsewhere.exists() and not_yet.written == []  # every_n_epochs=2: not due


class RecordingWandbLogger(WandbLogger):
    """A WandbLogger that records log_image calls instead of starting a run."""

    def __init__(self) -> None:
        super().__init__(offline=True)
        self.calls: list[tuple[str, int, list[str], int]] = []
        self.shapes: dict[str, set[tuple[int, ...]]] = {}

    def log_image(self, key, images, step=None, **kwargs):
        self.calls.append((key, len(images), kwargs.get("caption"), step))
        self.shapes[key] = {tuple(image.shape) for image in images}


def test_images_go_to_wandb_and_not_to_disk(tmp_path):
    features = {"name": "precomputed", "endpoint": "final", "in_channels": 16}
    model = ACGASegmenter(video_encoder=features, **HEAD, **SMALL).eval()
    torch.manual_seed(0)
    batch = {
        "features": torch.randn(3, 16, 2, 2),
        "words": torch.randn(3, 5, 300),
        "word_mask": torch.arange(5) < torch.tensor([2, 3, 5])[:, None],  # 2, 3 and 5 words
        "mask": (torch.rand(3, 32, 32) > 0.5).float(),
        "query": ["a dog", "the red ball", "one two three four five"],
    }
    logger = RecordingWandbLogger()
    trainer = SimpleNamespace(
        loggers=[logger],
        sanity_checking=False,
        current_epoch=0,
        is_global_zero=True,
        global_step=7,
        log_dir=str(tmp_path),
        default_root_dir=str(tmp_path),
    )
    callback = ValidationImageLogger(num_samples=2)
    callback.on_validation_batch_end(trainer, model, None, batch, batch_idx=0)  # recomputes
    callback.on_validation_epoch_end(trainer, model)
    keys = sorted(call[0] for call in logger.calls)
    assert keys == [
        "val/overlay", "val/pixel_context", "val/word_attention/0", "val/word_attention/1"
    ]  # fmt: skip
    assert all(step == 7 for *_, step in logger.calls)
    assert {k: n for k, n, _, _ in logger.calls}["val/overlay"] == 2
    overlay_captions = next(c for k, _, c, _ in logger.calls if k == "val/overlay")
    assert overlay_captions[1].startswith("the red ball (IoU ")
    # Strips hold pictures of one size (wandb warns otherwise); word maps of 2 and 3 words are
    # as wide as their words, one per key, with no blank padding.
    assert all(len(shapes) == 1 for shapes in logger.shapes.values()), logger.shapes
    (two_words,) = logger.shapes["val/word_attention/0"]
    (three_words,) = logger.shapes["val/word_attention/1"]
    assert two_words[0] == three_words[0] and 2 * three_words[1] == 3 * two_words[1]
    assert not (tmp_path / "pictures").exists() and callback.written == []


def test_argument_errors():
    with pytest.raises(ValueError, match="num_samples"):
        ValidationImageLogger(num_samples=0)
    with pytest.raises(ValueError, match="every_n_epochs"):
        ValidationImageLogger(every_n_epochs=0)
