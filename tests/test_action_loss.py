"""ACGASegmenter's actor-action loss: off by default, what it adds, what it leaves out."""

import pytest
import torch

from acga_lightning import ACGASegmenter
from acga_lightning.segmenter import ACTION_LOGIT_SCALE

SMALL = {"num_frames": 8, "frame_size": 64}
FEATURES = {"name": "precomputed", "endpoint": "final", "in_channels": 16}  # (B, 16, 4, 4)


def make_batch(action=(11, 79)):
    torch.manual_seed(0)
    batch = {
        "features": torch.randn(2, 16, 4, 4),
        "words": torch.randn(2, 5, 300),
        "word_mask": torch.ones(2, 5, dtype=torch.bool),
        "mask": torch.zeros(2, 64, 64),
    }
    batch["mask"][0, :16, :32] = 1  # cells (0, 0) and (0, 1) of the 4 x 4 grid, whole
    batch["mask"][1, 40:48, 48:64] = 1  # half of cell (2, 3)
    if action is not None:
        batch["action"] = torch.tensor(action)
    return batch


def model_with(weight, **kwargs):
    torch.manual_seed(1)
    return ACGASegmenter(video_encoder=FEATURES, action_loss_weight=weight, **SMALL, **kwargs)


def expected_action_loss(model, batch, out):
    """The head on each sample's features averaged over the grid cells its mask covers."""
    visual = out["visual"]  # (2, 16, 4, 4)
    pooled = torch.stack([visual[0, :, 0, :2].mean(-1), visual[1, :, 2, 3]])  # (2, 16)
    logits = model.action_head(pooled) * ACTION_LOGIT_SCALE
    known = batch["action"] >= 0
    return torch.nn.functional.cross_entropy(logits[known], batch["action"][known])


def test_off_by_default_and_the_action_key_changes_nothing():
    model = model_with(0.0)
    assert model.action_head is None and model.hparams.action_loss_weight == 0.0
    with_key, out = model.compute_loss(make_batch())
    without, _ = model.compute_loss(make_batch(action=None))
    assert "action_loss" not in out
    torch.testing.assert_close(with_key, without, rtol=0, atol=0)


def test_the_loss_adds_the_weighted_cross_entropy_of_the_mask_averaged_features():
    model = model_with(0.25)
    batch = make_batch()
    loss, out = model.compute_loss(batch)
    plain, _ = model_with(0.0).compute_loss(batch)  # same seed: the same weights but the head
    expected = expected_action_loss(model, batch, out)
    torch.testing.assert_close(out["action_loss"], expected)
    torch.testing.assert_close(loss, plain + 0.25 * expected)
    assert model.action_head.out_features == 80  # A2D's codes, actor * 10 + action, < 80


def test_samples_without_a_class_are_left_out():
    model = model_with(1.0)
    batch = make_batch(action=(11, -1))
    _, out = model.compute_loss(batch)
    torch.testing.assert_close(out["action_loss"], expected_action_loss(model, batch, out))
    loss, out = model.compute_loss(make_batch(action=(-1, -1)))
    assert float(out["action_loss"].detach()) == 0.0 and torch.isfinite(loss)
    loss.backward()  # still one graph


def test_a_class_outside_the_head_is_an_error_naming_it():
    model = model_with(1.0, action_classes=12)
    with pytest.raises(ValueError, match=r"classes \[11, 79\].*action_classes 12"):
        model.compute_loss(make_batch())
    with pytest.raises(ValueError, match="action_loss_weight"):
        model_with(-0.1)


def test_training_needs_the_class_evaluation_does_not():
    model = model_with(0.5)
    with pytest.raises(ValueError, match="action_loss_weight 0.5.*'action'"):
        model.training_step(make_batch(action=None), 0)
    loss, out = model.compute_loss(make_batch(action=None))  # J-HMDB's test, say
    assert "action_loss" not in out and torch.isfinite(loss)


def test_the_action_loss_trains_the_video_encoder():
    # The point of the loss: its gradient reaches the encoder (not only the head).
    spec = {"name": "small3d", "widths": [8, 8, 8], "stride": 8}
    grads = []
    for weight in (0.0, 1.0):
        torch.manual_seed(1)
        model = ACGASegmenter(video_encoder=spec, action_loss_weight=weight, **SMALL)
        batch = {k: v for k, v in make_batch().items() if k != "features"}
        batch["frames"] = torch.rand(2, 3, 8, 64, 64) * 2 - 1
        model.compute_loss(batch)[0].backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.video_encoder.parameters()]))
    assert not torch.allclose(grads[0], grads[1])


def test_the_head_survives_a_checkpoint(tmp_path):
    import pytorch_lightning as pl

    model = model_with(0.1, action_classes=20)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    loaded = ACGASegmenter.load_from_checkpoint(tmp_path / "model.ckpt")
    assert loaded.hparams.action_loss_weight == 0.1
    torch.testing.assert_close(loaded.action_head.weight, model.action_head.weight)
    assert loaded.action_head.out_features == 20
