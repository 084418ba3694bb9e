"""``acga segment``: masks and overlay video of the right count and size, predictions equal to the
model's on the same clip, the Mixed_4e-cache path, and clear errors."""

from __future__ import annotations

import json
import re
from fractions import Fraction

import av
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from acga_lightning import ACGASegmenter
from acga_lightning.cli import main as acga
from acga_lightning.data import (
    clip_indices,
    encode_query,
    frames_to_tensor,
    load_word_vectors,
    probe_video,
    read_window,
    resize_frames,
)
from acga_lightning.segment import OverlayWriter, segment, segment_main

SMALL = {"num_frames": 4, "frame_size": 32}
HEAD = {"decoder": {"name": "multires", "up_channels": [16, 8], "head_widths": [16, 8, 8]}}


def sharpened(model):
    """An untrained model whose masks are not the whole frame: a flat probability map would make
    every comparison below pass trivially, so the decoder's weights are scaled up."""
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(3.0)
    return model


def save_checkpoint(model, path, data_hparams=None):
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)
    if data_hparams is not None:  # what a fit with the datamodule stores
        checkpoint = torch.load(path, weights_only=False)
        checkpoint["datamodule_hyper_parameters"] = data_hparams
        torch.save(checkpoint, path)
    return str(path)


@pytest.fixture(scope="module")
def toy(tmp_path_factory, toy_a2d):
    """A generated video (64 pixels high), a query for it, and an untrained tiny checkpoint."""
    tmp = tmp_path_factory.mktemp("segment")
    root = toy_a2d(num_videos=2, seed=4, height=64, num_frames=(12, 14))
    manifest = json.loads((root / "toy_manifest.json").read_text())
    video_id, described = sorted(manifest["videos"].items())[0]
    torch.manual_seed(0)
    model = sharpened(ACGASegmenter(**HEAD, **SMALL))  # i3d: seed 0 gives partial masks
    ckpt = save_checkpoint(model, tmp / "tiny.ckpt", {"root": str(root), "max_words": 20})
    return {
        "tmp": tmp,
        "root": root,
        "video": str(root / "Release" / "clips320H" / f"{video_id}.mp4"),
        "query": described["actors"][0]["query"],
        "ckpt": ckpt,
        "model": model,
    }


def decoded(path):
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return frames


def read_mask(path):
    values = np.asarray(Image.open(path))
    assert set(np.unique(values)) <= {0, 255}
    return values == 255


def test_every_stride_th_frame_through_the_cli(toy, tmp_path, capsys):
    info = probe_video(toy["video"])
    out = tmp_path / "out"
    code = acga(
        ["segment", "--ckpt", toy["ckpt"], "--video", toy["video"], "--query", toy["query"],
         "--out", str(out), "--stride", "3", "--device", "cpu", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    expected = list(range(1, info.num_frames + 1, 3))
    assert sorted(p.name for p in (out / "masks").iterdir()) == [f"{f:05d}.png" for f in expected]
    for path in (out / "masks").iterdir():
        assert read_mask(path).shape == (info.height, info.width)
    frames = decoded(out / "overlay.mp4")
    assert len(frames) == len(expected) and frames[0].shape == (info.height, info.width, 3)
    with av.open(str(out / "overlay.mp4")) as container:
        assert container.streams.video[0].average_rate == Fraction(24, 3)  # duration kept
    printed = capsys.readouterr().out
    assert f"wrote {len(expected)} masks" in printed and "mean mask area" in printed


def predicted_mask(toy, model, frames, size):
    """The model's mask for ``toy``'s query on ``frames`` (T, h, w, 3), at ``size``."""
    words, word_mask, _ = encode_query(
        toy["query"], load_word_vectors(toy["root"] / "word2vec.bin")
    )
    clip = frames_to_tensor(resize_frames(frames, SMALL["frame_size"], "cover"))
    with torch.no_grad():
        logits = model(
            words=torch.from_numpy(words)[None],
            word_mask=torch.from_numpy(word_mask)[None],
            frames=clip[None],
        )["logits"][-1]
    return model.predict_masks(logits, [size])[0][0].numpy()


def test_masks_are_the_models_prediction_on_the_same_clip(toy, tmp_path):
    info = probe_video(toy["video"])
    last = info.num_frames
    summary = segment(
        toy["ckpt"], toy["video"], toy["query"], tmp_path, start=last - 2, end=last,
        device="cpu", batch_size=2, progress=False,
    )  # fmt: skip
    assert summary.frames == 3 and len(decoded(tmp_path / "overlay.mp4")) == 3
    model = toy["model"].eval()
    areas = []
    for f in (last - 2, last):  # the last clip runs past the end: edge frames repeat
        frames = read_window(toy["video"], clip_indices(f, SMALL["num_frames"]))
        expected = predicted_mask(toy, model, frames, (info.height, info.width))
        written = read_mask(tmp_path / "masks" / f"{f:05d}.png")
        np.testing.assert_array_equal(written, expected)
        areas.append(expected.mean())
    assert min(areas) > 0.0 and max(areas) < 0.5  # neither empty nor the whole frame
    assert 0.0 < summary.mean_area < 0.5 and summary.height == info.height


def test_a_model_trained_on_strided_clips_reads_strided_clips(toy, tmp_path):
    """A checkpoint with ``frame_stride: 3`` is run on every third frame around each frame."""
    info = probe_video(toy["video"])
    model = ACGASegmenter(**HEAD, **SMALL, frame_stride=3)
    model.load_state_dict(toy["model"].state_dict())
    ckpt = save_checkpoint(model, tmp_path / "strided.ckpt", {"root": str(toy["root"])})
    model.eval()
    picked = (1, 6, info.num_frames)  # both ends clamp: edge frames repeat
    for f in picked:
        segment(ckpt, toy["video"], toy["query"], tmp_path / f"f{f}", start=f, end=f,
                device="cpu", progress=False)  # fmt: skip
    differs = 0
    for f in picked:
        indices = clip_indices(f, SMALL["num_frames"], 3)
        assert indices[SMALL["num_frames"] // 2] == f - 1 and indices[1] - indices[0] == 3
        frames = read_window(toy["video"], indices)
        consecutive = read_window(toy["video"], clip_indices(f, SMALL["num_frames"]))
        differs += int(not np.array_equal(frames, consecutive))
        expected = predicted_mask(toy, model, frames, (info.height, info.width))
        np.testing.assert_array_equal(read_mask(tmp_path / f"f{f}" / "masks" / f"{f:05d}.png"),
                                      expected)  # fmt: skip
    assert differs == len(picked)  # the strided clips are not the consecutive ones


def test_a_model_trained_on_cached_mixed_4e_features(toy, tmp_path):
    """Features from the cache's frozen prefix + the checkpoint's Mixed_4f = the frames model."""
    from acga_lightning.models.video_encoders import I3DEncoder

    weights = tmp_path / "rgb_imagenet.pt"
    torch.manual_seed(1)
    torch.save(I3DEncoder(**SMALL).i3d.state_dict(), weights)
    frames_model = sharpened(
        ACGASegmenter(video_encoder={"name": "i3d", "weights": str(weights)}, **HEAD, **SMALL)
    )
    cached_spec = {"name": "precomputed", "endpoint": "mixed_4e", "weights": str(weights)}
    cached_model = ACGASegmenter(video_encoder=cached_spec, **HEAD, **SMALL)
    missing = cached_model.load_state_dict(frames_model.state_dict(), strict=False)
    assert not missing.missing_keys  # the head and Mixed_4f carry over; the prefix is dropped
    data = {"root": str(toy["root"])}
    paths = {
        "frames": save_checkpoint(frames_model, tmp_path / "frames.ckpt", data),
        "cached": save_checkpoint(cached_model, tmp_path / "cached.ckpt", data),
    }
    for name, ckpt in paths.items():
        segment(ckpt, toy["video"], toy["query"], tmp_path / name, start=5, end=6, progress=False)
    for f in (5, 6):
        a = read_mask(tmp_path / "frames" / "masks" / f"{f:05d}.png")
        b = read_mask(tmp_path / "cached" / "masks" / f"{f:05d}.png")
        assert 0 < a.sum() < a.shape[0] ** 2  # not the whole square the model sees ("cover")
        assert (a != b).mean() < 0.01  # equal up to float rounding at the threshold
    random_prefix = {**cached_spec, "weights": None}
    ckpt = save_checkpoint(
        ACGASegmenter(video_encoder=random_prefix, **HEAD, **SMALL), tmp_path / "random.ckpt", data
    )
    with pytest.raises(ValueError, match="randomly initialised"):
        segment(ckpt, toy["video"], toy["query"], tmp_path / "random", start=1, end=1)


def test_overlay_writer_handles_odd_sizes(tmp_path):
    writer = OverlayWriter(tmp_path / "odd.mp4", 33, 47, Fraction(10))
    for k in range(3):
        writer.write(np.full((33, 47, 3), 40 * k, np.uint8))
    writer.close()
    frames = decoded(tmp_path / "odd.mp4")
    assert len(frames) == 3 and frames[0].shape == (33, 47, 3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--ckpt": "missing.ckpt"}, "--ckpt: checkpoint not found"),
        ({"--video": "missing.mp4"}, "--video: video file not found"),
        ({"--query": "   "}, "--query: the query is empty"),
        ({"--query": "?!"}, "--query: no words"),
        ({"--query": "zebra xylophone"}, "out of the vocabulary .*: xylophone, zebra"),
        ({"--word-vectors": "missing.bin"}, "--word-vectors: file not found"),
        ({"--start": "0"}, "--start"),
        ({"--end": "999"}, "--end"),
        ({"--stride": "0"}, "--stride"),
    ],
)
def test_errors_are_clear(toy, tmp_path, capsys, change, message):
    args = {"--ckpt": toy["ckpt"], "--video": toy["video"], "--query": toy["query"]}
    args.update({k: str(tmp_path / v) if "missing" in v else v for k, v in change.items()})
    argv = [x for kv in args.items() for x in kv] + ["--out", str(tmp_path / "out")]
    assert segment_main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("acga segment: error: ")
    assert re.search(message, error), error
    assert not (tmp_path / "out").exists()  # every check runs before anything is written


def test_word_vectors_are_required_when_the_checkpoint_does_not_name_them(toy, tmp_path):
    ckpt = save_checkpoint(toy["model"], tmp_path / "no_data.ckpt")
    with pytest.raises(ValueError, match="--word-vectors: required"):
        segment(ckpt, toy["video"], toy["query"], tmp_path / "out", progress=False)


def test_an_earlier_run_is_not_overwritten_unless_asked(toy, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--ckpt", toy["ckpt"], "--video", toy["video"], "--query", toy["query"], "--out",
            str(out), "--start", "1", "--end", "1", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert segment_main(argv) == 0
    (out / "masks" / "00001.png").write_bytes(b"mine")
    capsys.readouterr()
    assert segment_main(argv) == 2
    error = capsys.readouterr().err
    assert "already holds overlay.mp4 and masks" in error and "--overwrite" in error
    assert (out / "masks" / "00001.png").read_bytes() == b"mine"  # checked before any work
    assert segment_main([*argv, "--overwrite"]) == 0
    assert read_mask(out / "masks" / "00001.png").ndim == 2
