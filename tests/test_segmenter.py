"""ACGASegmenter: every registered part through forward and backward, checkpoints, inference."""

import pytest
import torch

from acga_lightning import ACGASegmenter
from acga_lightning.registry import ATTENTION, DECODERS, LOSSES, TEXT_ENCODERS, VIDEO_ENCODERS

SMALL = {"num_frames": 8, "frame_size": 64}
# A cheap encoder for the cross product: cached final features (B, 16, G, G) used as they are.
FEATURES = {"name": "precomputed", "endpoint": "final", "in_channels": 16}


def make_batch(batch_size=2, frames=True, feature_shape=(16, 4, 4), num_words=5):
    torch.manual_seed(0)
    batch = {
        "words": torch.randn(batch_size, num_words, 300),
        "word_mask": torch.tensor(
            [[True] * (num_words - i) + [False] * i for i in range(batch_size)]
        ),
        "mask": (torch.rand(batch_size, 64, 64) > 0.7).float(),
    }
    if frames:
        batch["frames"] = torch.rand(batch_size, 3, 8, 64, 64) * 2 - 1
    else:
        batch["features"] = torch.randn(batch_size, *feature_shape)
    return batch


def run_step(model, batch):
    loss, _ = model.compute_loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    return loss


@pytest.mark.parametrize("name", VIDEO_ENCODERS.names())
def test_each_video_encoder_trains(name):
    # precomputed from cached Mixed_4e features (B, 528, T', G, G) runs a trainable Mixed_4f
    spec = {"name": "precomputed", "endpoint": "mixed_4e"} if name == "precomputed" else name
    model = ACGASegmenter(video_encoder=spec, **SMALL)
    batch = make_batch(frames=name != "precomputed", feature_shape=(528, 2, 4, 4))
    run_step(model, batch)
    trainable = [p for p in model.video_encoder.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for p in trainable)


@pytest.mark.parametrize("attention", ATTENTION.names())
@pytest.mark.parametrize("decoder", DECODERS.names())
@pytest.mark.parametrize("loss", LOSSES.names())
def test_every_head_combination(attention, decoder, loss):
    model = ACGASegmenter(
        video_encoder=FEATURES, attention=attention, decoder=decoder, loss=loss, **SMALL
    )
    out = model(**{k: v for k, v in make_batch(frames=False).items() if k != "mask"})
    assert out["logits"][-1].shape == (2, 1, 64, 64)
    run_step(model, make_batch(frames=False))
    for name, p in model.named_parameters():
        if decoder == "dynamic_filter" and name.startswith("attention.vgla"):
            continue  # dynamic filters read the sentence vector, never the per-pixel text map
        assert p.grad is not None, f"{name} got no gradient"


@pytest.mark.parametrize("name", TEXT_ENCODERS.names())
def test_text_encoders(name):
    model = ACGASegmenter(video_encoder=FEATURES, text_encoder=name, **SMALL)
    run_step(model, make_batch(frames=False))


def test_paper_defaults():
    model = ACGASegmenter()
    assert model.hparams.video_encoder == "i3d" and model.hparams.attention == "acga"
    assert model.hparams.frame_size == 512 and model.hparams.num_frames == 16
    assert type(model.decoder).registry_name == "multires"
    assert model.loss.pos_weight == 1.5
    optimizer = model.configure_optimizers()["optimizer"]
    assert optimizer.defaults["lr"] == 5e-4
    optimised = {id(p) for group in optimizer.param_groups for p in group["params"]}
    frozen = [p for n, p in model.named_parameters() if "Mixed_4e" in n or "Conv3d_1a" in n]
    assert frozen and not any(id(p) in optimised for p in frozen)
    assert all(p.requires_grad for p in model.video_encoder.parameters() if id(p) in optimised)


def test_gradients_reach_mixed_4f_and_never_the_frozen_prefix():
    model = ACGASegmenter(**SMALL)
    run_step(model, make_batch())
    grads = {n: p.grad for n, p in model.video_encoder.named_parameters()}
    assert any("Mixed_4f" in n and g is not None and g.abs().sum() > 0 for n, g in grads.items())
    assert all(g is None for n, g in grads.items() if "Mixed_4f" not in n)


def test_checkpoint_round_trip(tmp_path):
    import pytorch_lightning as pl

    model = ACGASegmenter(
        video_encoder=FEATURES,
        attention="acga",
        decoder={"name": "multires", "head_widths": [32, 16, 8]},
        loss={"name": "wbce", "pos_weight": 2.0},
        **SMALL,
    )
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    loaded = ACGASegmenter.load_from_checkpoint(path)
    batch = make_batch(frames=False)
    inputs = {k: v for k, v in batch.items() if k != "mask"}
    model.eval(), loaded.eval()
    for a, b in zip(model(**inputs)["logits"], loaded(**inputs)["logits"], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert loaded.loss.pos_weight == 2.0 and loaded.decoder.large.conv2.out_channels == 8


def test_predict_foreground_rule():
    from acga_lightning.segmenter import predict_foreground

    probs = torch.tensor([[[0.2, 0.5], [0.3, 0.09]], [[0.01, 0.02], [0.004, 0.006]]])
    masks = predict_foreground(probs)
    # per-sample thresholds 0.25 and 0.01: strictly greater than half the maximum
    assert masks.tolist() == [[[False, True], [True, False]], [[False, True], [False, False]]]


def test_forward_needs_video_input():
    model = ACGASegmenter(video_encoder=FEATURES, **SMALL)
    with pytest.raises(ValueError, match="frames"):
        model(words=torch.randn(1, 3, 300), word_mask=torch.ones(1, 3, dtype=torch.bool))


def test_uint8_frames_give_the_same_logits_and_loss_as_float_frames():
    torch.manual_seed(0)
    model = ACGASegmenter(video_encoder={"name": "small3d", "widths": [4, 4, 8, 8]}, **SMALL)
    model.eval()
    batch = make_batch()
    pixels = torch.randint(0, 256, batch["frames"].shape, dtype=torch.uint8)
    floats = {**batch, "frames": pixels.float() / 127.5 - 1}  # what a float32 reader returns
    with torch.no_grad():
        loss_uint8, out_uint8 = model.compute_loss({**batch, "frames": pixels})
        loss_float, out_float = model.compute_loss(floats)
    assert torch.equal(out_uint8["logits"][-1], out_float["logits"][-1])
    assert torch.equal(loss_uint8, loss_float)
    predicted = model.predict_step({**batch, "frames": pixels}, 0)
    assert [m.shape for m in predicted["masks"]] == [(64, 64), (64, 64)]


@pytest.mark.parametrize("on_cpu", [False, True])
def test_channels_last_on_cpu_is_opt_in_and_equivalent(on_cpu):
    """channels_last_on_cpu: the weights go channels-last when a run starts on the CPU (the
    CUDA-only ``channels_last``/``compile`` do not), and the logits stay the same."""
    spec = {"name": "small3d", "widths": [4, 8, 8], "stride": 8, "temporal": "early"}
    model = ACGASegmenter(video_encoder=spec, channels_last_on_cpu=on_cpu, **SMALL).eval()
    batch = make_batch()
    with torch.no_grad():
        reference = model.compute_loss(batch)[1]["logits"][-1]
        model.on_fit_start()
        out = model.compute_loss(batch)[1]["logits"][-1]
    weight = model.video_encoder.blocks[0][0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last) is on_cpu
    assert model.channels_last_inputs is on_cpu and not model.compiled
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-5)


def test_single_decoder_is_trained_on_its_one_map():
    # The Baseline: the loss sees R_S only, not the prediction upsampled from it.
    model = ACGASegmenter(
        video_encoder=FEATURES, attention="none", decoder="single",
        loss={"name": "bce", "weights": [1.0]}, **SMALL,
    )  # fmt: skip
    batch = make_batch(frames=False)
    loss, out = model.compute_loss(batch)
    assert len(out["logits"]) == 2 and out["num_decoder_logits"] == 1
    small = out["logits"][0]
    target = torch.nn.functional.interpolate(batch["mask"][:, None], size=small.shape[-2:],
                                             mode="bilinear", align_corners=False)  # fmt: skip
    expected = torch.nn.functional.binary_cross_entropy_with_logits(small, target)
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("mask_padding", [False, True])
def test_padded_words_as_the_official_model_by_default(mask_padding):
    model = ACGASegmenter(video_encoder=FEATURES, mask_padding=mask_padding, **SMALL).eval()
    batch = make_batch(frames=False, num_words=6)
    batch["words"][~batch["word_mask"]] = 0  # padding rows are zero vectors
    inputs = {k: batch[k] for k in ("words", "features")}
    with torch.no_grad():
        given = model(word_mask=batch["word_mask"], **inputs)["logits"][-1]
        all_words = model(word_mask=torch.ones_like(batch["word_mask"]), **inputs)["logits"][-1]
    # official: every position is a word (the mask is not used); ours: padding is left out
    assert torch.equal(given, all_words) != mask_padding
    assert torch.equal(given[0], all_words[0])  # sample 0 has no padding: the same either way


def test_evaluation_choices_are_checked():
    with pytest.raises(ValueError, match="evaluation"):
        ACGASegmenter(video_encoder=FEATURES, evaluation="paper", **SMALL)
    with pytest.raises(ValueError, match="mttr"):
        ACGASegmenter(
            video_encoder=FEATURES, evaluation="official_release", metrics_protocol="mttr", **SMALL
        )


def test_checkpoints_from_before_the_official_defaults_load_as_they_were_trained(tmp_path):
    """No mask_padding in the hyper-parameters: rebuilt with masked padding and ReLU up-blocks."""
    import pytorch_lightning as pl

    parts = {
        "video_encoder": {"name": "small3d", "widths": [4, 4, 4, 8], "temporal": "early"},
        "decoder": {"name": "multires", "up_channels": [4, 4], "head_widths": [4, 4, 4]},
        "num_frames": 2,
        "frame_size": 32,
    }
    trained = ACGASegmenter(
        **{**parts, "decoder": {**parts["decoder"], "up_activation": "relu"}}, mask_padding=True
    )
    old = {k: v for k, v in dict(trained.hparams).items() if k != "mask_padding"}
    old["decoder"] = parts["decoder"]  # as an older release saved it: no up_activation
    path = tmp_path / "old.ckpt"
    checkpoint = {"state_dict": trained.state_dict(), "hyper_parameters": old,
                  "pytorch-lightning_version": pl.__version__}  # fmt: skip
    torch.save(checkpoint, path)
    with pytest.warns(UserWarning, match="before the official-model defaults"):
        loaded = ACGASegmenter.load_from_checkpoint(path, map_location="cpu")
    assert loaded.hparams.mask_padding is True
    assert loaded.decoder.up_medium.activation == "relu"
    words = torch.randn(2, 20, 300)
    word_mask = torch.zeros(2, 20, dtype=torch.bool)
    word_mask[:, :4] = True
    frames = torch.rand(2, 3, 2, 32, 32) * 2 - 1
    with torch.no_grad():
        want = trained.eval()(words, word_mask, frames)["logits"][-1]
        got = loaded.eval()(words, word_mask, frames)["logits"][-1]
    torch.testing.assert_close(got, want)
    # a current checkpoint is loaded as saved, without the warning
    checkpoint["hyper_parameters"] = dict(trained.hparams)
    torch.save(checkpoint, path)
    current = ACGASegmenter.load_from_checkpoint(path, map_location="cpu")
    assert current.hparams.mask_padding is True and current.decoder.up_medium.activation == "relu"


def test_a_gate_that_reads_words_gets_the_mean_of_the_real_word_vectors():
    """gate_source 'words': the decoder's sentence is the mean over real words; padding rows
    (word_mask False) do not count, even in a model that does not mask padding elsewhere."""
    decoder = {"name": "multires", "sentence_gate": True, "gate_source": "words"}
    batch = make_batch(frames=False)
    inputs = {k: v for k, v in batch.items() if k != "mask"}
    for mask_padding in (True, False):
        model = ACGASegmenter(
            video_encoder=FEATURES, decoder=decoder, mask_padding=mask_padding, **SMALL
        )
        seen: dict[str, torch.Tensor] = {}
        model.decoder.register_forward_pre_hook(lambda m, args, seen=seen: seen.update(s=args[2]))
        model(**inputs)
        real = batch["word_mask"][..., None].float()
        expected = (batch["words"] * real).sum(1) / real.sum(1)
        torch.testing.assert_close(seen["s"], expected)
    run_step(model, batch)
    with pytest.raises(ValueError, match="gate_source 'words'"):
        ACGASegmenter(
            video_encoder=FEATURES, text_encoder={"name": "word_cnn", "out_channels": 64},
            decoder=decoder, **SMALL,
        )  # fmt: skip
