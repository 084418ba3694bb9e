"""``acga segment``: a trained checkpoint on any video and sentence, one mask per frame.

For every output frame ``f`` (1-based, ``--start`` .. ``--end``, every ``--stride``-th) the clip is
the checkpoint's ``num_frames`` frames around ``f``, every ``frame_stride``-th as it was trained
(:func:`~acga_lightning.data.clip_indices`, clamped at the video's ends, ``f`` at index ``T // 2``),
resized with the checkpoint's ``resize_policy`` to ``frame_size``; the mask is predicted at the
frame's original size. Outputs: ``OUT/masks/%05d.png`` named by the 1-based frame number (8-bit PNG,
0 or 255, original size) and ``OUT/overlay.mp4`` (H.264, original size, the mask tinted cyan; with a
stride its frame rate is divided by the stride so it keeps the video's duration).

The video is decoded once, front to back, keeping only the frames the pending clips need.

Checkpoints trained on a Mixed_4e feature cache (``video_encoder: precomputed``, endpoint
``mixed_4e``) hold only ``Mixed_4f``: the frozen I3D prefix is rebuilt with the cache's own
:func:`~acga_lightning.data.caching.build.build_frozen_encoder` from the I3D weights file named in
the spec (or ``--i3d-weights``), so the features are those the cache held (up to the cache's
float16 storage rounding). A cache made from a randomly initialised prefix cannot be reproduced:
that is an error. Checkpoints on ``final`` cached features are not supported (the checkpoint
does not record which encoder made them).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from PIL import Image

from acga_lightning.data.io.resize import resize_frames
from acga_lightning.data.io.video import VideoReadError, clip_indices, iter_frames, probe_video
from acga_lightning.data.sample import frames_to_tensor
from acga_lightning.viz import PRED_COLOR, overlay_masks


class SegmentError(ValueError):
    """Bad input to ``acga segment``: the message names the argument or file."""


@dataclass
class SegmentSummary:
    """What :func:`segment` wrote."""

    frames: int
    height: int
    width: int
    fps: float
    mean_area: float  # mean share of the frame covered by the mask, in [0, 1]
    masks_dir: Path
    overlay: Path
    seconds: float

    def __str__(self) -> str:
        return (
            f"wrote {self.frames} masks ({self.height}x{self.width}) to {self.masks_dir} and "
            f"{self.overlay} ({self.fps:.2f} fps) in {self.seconds:.1f} s; mean mask area "
            f"{100 * self.mean_area:.2f}% of the frame "
            f"({self.mean_area * self.height * self.width:.0f} pixels)"
        )


# ------------------------------------------------------------------------------------ model
def _read_checkpoint(path: Path) -> dict[str, Any]:
    from acga_lightning.checkpointing import load_checkpoint_file

    try:
        checkpoint = load_checkpoint_file(path)
    except ValueError as err:  # missing, truncated or not a checkpoint at all
        raise SegmentError(f"--ckpt: {err}") from err
    if not isinstance(checkpoint, dict) or "hyper_parameters" not in checkpoint:
        raise SegmentError(
            f"--ckpt: {path} is not an ACGASegmenter checkpoint (no hyper_parameters)"
        )
    return checkpoint


def _encoder_plan(
    hparams: dict[str, Any], i3d_weights: str | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Overrides of the hyper-parameters for loading, and the frozen prefix spec (or None)."""
    from acga_lightning.registry import spec_to_dict

    spec = spec_to_dict(hparams.get("video_encoder", "i3d"))
    if spec.get("name") != "precomputed":
        weights = spec.get("weights")
        if weights is not None and not Path(weights).is_file():
            # Every encoder weight is in the checkpoint's state dict: skip the missing init file.
            return {"video_encoder": {**spec, "weights": None}}, None
        return {}, None
    if spec.get("endpoint", "mixed_4e") != "mixed_4e":
        raise SegmentError(
            "--ckpt: the model was trained on cached 'final' features; segment cannot rebuild "
            "the encoder that made them (train with a frames encoder or a mixed_4e cache)"
        )
    weights = i3d_weights or spec.get("weights")
    if weights is None:
        raise SegmentError(
            "--ckpt: the model was trained on Mixed_4e features cached from a randomly "
            "initialised I3D prefix, which cannot be rebuilt to compute features from frames; "
            "cache with I3D weights (cache.encoder.weights), or pass --i3d-weights if the "
            "cache was made with a weights file"
        )
    if not Path(weights).is_file():
        raise SegmentError(f"--i3d-weights: I3D weights file not found: {weights}")
    # The state dict restores Mixed_4f; the spec's weights file is only needed for the prefix.
    return {"video_encoder": {**spec, "weights": None}}, {"name": "i3d", "weights": str(weights)}


def load_model(
    ckpt: str | Path, device: str = "cpu", i3d_weights: str | None = None
) -> tuple[Any, torch.nn.Module | None, dict[str, Any]]:
    """The segmenter of a checkpoint (eval mode, on ``device``), the frozen I3D prefix when it
    was trained on cached Mixed_4e features (else None), and the datamodule's hyper-parameters."""
    from acga_lightning.segmenter import ACGASegmenter

    path = Path(ckpt)
    if not path.is_file():
        raise SegmentError(f"--ckpt: checkpoint not found: {path}")
    checkpoint = _read_checkpoint(path)
    hparams = dict(checkpoint["hyper_parameters"])
    overrides, prefix_spec = _encoder_plan(hparams, i3d_weights)
    model = ACGASegmenter.load_from_checkpoint(path, map_location="cpu", **overrides)
    model.eval().to(device)
    extractor = None
    if prefix_spec is not None:
        from acga_lightning.registry import VIDEO_ENCODERS

        # The frozen I3D prefix the cache was made with; no cache is read or written here.
        hp = model.hparams
        encoder = VIDEO_ENCODERS.build(
            prefix_spec, num_frames=int(hp.num_frames), frame_size=int(hp.frame_size)
        )
        extractor = encoder.eval().requires_grad_(False).to(device)
    return model, extractor, dict(checkpoint.get("datamodule_hyper_parameters") or {})


def _word_vectors_path(given: str | None, data_hparams: dict[str, Any]) -> Path:
    if given is not None:
        return Path(given)
    if data_hparams.get("word_vectors"):
        return Path(data_hparams["word_vectors"])
    if data_hparams.get("root"):
        return Path(data_hparams["root"]) / "word2vec.bin"
    raise SegmentError(
        "--word-vectors: required (the checkpoint does not record the data's word vectors)"
    )


def encode_sentence(
    query: str, word_vectors: Path, max_words: int
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``words (1, N, D)``, ``word_mask (1, N)`` and the out-of-vocabulary words of ``query``."""
    from acga_lightning.data.io.words import encode_query, load_word_vectors, tokenize

    if not query.strip() or not tokenize(query):
        raise SegmentError(f"--query: no words in {query!r}")
    if not word_vectors.is_file():
        raise SegmentError(f"--word-vectors: file not found: {word_vectors}")
    try:
        kv = load_word_vectors(word_vectors)
    except ValueError as err:
        raise SegmentError(f"--word-vectors: {err}") from err
    words, word_mask, stats = encode_query(query, kv, max_words)
    oov = sorted(stats.oov_words)
    if stats.oov == stats.words:
        raise SegmentError(
            f"--query: every word is out of the vocabulary of {word_vectors}: {', '.join(oov)}"
        )
    return torch.from_numpy(words)[None], torch.from_numpy(word_mask)[None], oov


# ------------------------------------------------------------------------------------ video
def video_rate(path: Path) -> Fraction:
    """The average frame rate of a video (25 when the container does not say)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
    return Fraction(rate) if rate else Fraction(25)


class OverlayWriter:
    """H.264 writer of ``(H, W, 3)`` frames at their own size (yuv444p when H or W is odd)."""

    def __init__(self, path: Path, height: int, width: int, rate: Fraction) -> None:
        self.container = av.open(str(path), mode="w")
        self.stream = self.container.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"
        self.stream.options = {"crf": "20", "preset": "veryfast"}

    def write(self, rgb: np.ndarray) -> None:
        for packet in self.stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


# ---------------------------------------------------------------------------------- segment
@dataclass
class _Run:
    model: Any
    extractor: torch.nn.Module | None
    words: torch.Tensor
    word_mask: torch.Tensor
    device: str
    out: Path
    writer: OverlayWriter
    areas: list[float]


def _predict(run: _Run, clips: list[torch.Tensor], size: tuple[int, int]) -> list[np.ndarray]:
    """Masks at the original ``size`` for a list of clips ``(3, T, S, S)``."""
    b = len(clips)
    frames = torch.stack(clips).to(run.device)  # (B, 3, T, S, S)
    words = run.words.to(run.device).expand(b, -1, -1)  # (B, N, D)
    word_mask = run.word_mask.to(run.device).expand(b, -1)  # (B, N)
    with torch.inference_mode():
        if run.extractor is not None:
            features = run.extractor.extract_frozen(frames)  # (B, 528, T', G, G)
            out = run.model(words=words, word_mask=word_mask, features=features)
        else:
            out = run.model(words=words, word_mask=word_mask, frames=frames)
        masks, _ = run.model.predict_masks(out["logits"][-1], [size] * b)
    return [m.cpu().numpy() for m in masks]


def _flush(run: _Run, batch: list[int], resized: dict, originals: dict, last: int) -> None:
    clips = []
    hp = run.model.hparams
    for t in batch:
        indices = clip_indices(t + 1, hp.num_frames, hp.frame_stride)
        window = [min(max(i, 0), last) for i in indices]
        missing = [i for i in window if i not in resized]
        if missing:
            raise VideoReadError(f"frames {missing} around frame {t + 1} could not be decoded")
        clips.append(frames_to_tensor(torch.stack([resized[i] for i in window])))
    size = originals[batch[0]].shape[:2]
    for t, mask in zip(batch, _predict(run, clips, size), strict=True):
        Image.fromarray(mask.astype(np.uint8) * 255).save(run.out / "masks" / f"{t + 1:05d}.png")
        run.writer.write(overlay_masks(originals.pop(t), mask, pred_color=PRED_COLOR))
        run.areas.append(float(mask.mean()))


def _check_range(start: int | None, end: int | None, stride: int, n: int) -> list[int]:
    first = 1 if start is None else start
    last = n if end is None else end
    if stride < 1:
        raise SegmentError(f"--stride: expected >= 1, got {stride}")
    if not 1 <= first <= n:
        raise SegmentError(f"--start: expected a frame number in 1..{n}, got {first}")
    if not first <= last <= n:
        raise SegmentError(f"--end: expected a frame number in {first}..{n}, got {last}")
    return list(range(first - 1, last, stride))  # 0-based


def _check_destination(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SegmentError(f"--out: {out} is a file, not a folder")
    earlier = [p for p in (out / "overlay.mp4", out / "masks") if p.exists()]
    if earlier and not overwrite:
        raise SegmentError(
            f"--out: {out} already holds {' and '.join(p.name for p in earlier)} of an earlier "
            "run; choose another folder or pass --overwrite"
        )


def segment(
    ckpt: str | Path,
    video: str | Path,
    query: str,
    out: str | Path,
    *,
    start: int | None = None,
    end: int | None = None,
    stride: int = 1,
    word_vectors: str | Path | None = None,
    device: str | None = None,
    batch_size: int = 4,
    i3d_weights: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> SegmentSummary:
    """Segment the actor ``query`` refers to in frames ``start..end`` (1-based, inclusive) of
    ``video`` with the checkpoint ``ckpt``.

    Writes ``out/masks/%05d.png`` and ``out/overlay.mp4``, refusing (before any work) to replace
    earlier ones unless ``overwrite``; raises :class:`SegmentError` for bad arguments and
    :class:`~acga_lightning.data.VideoReadError` for an unreadable video.
    """
    began = time.perf_counter()
    video, out = Path(video), Path(out)
    if not Path(ckpt).is_file():
        raise SegmentError(f"--ckpt: checkpoint not found: {ckpt}")
    if not video.is_file():
        raise SegmentError(f"--video: video file not found: {video}")
    if not query.strip():
        raise SegmentError("--query: the query is empty")
    if batch_size < 1:
        raise SegmentError(f"--batch-size: expected >= 1, got {batch_size}")
    _check_destination(out, overwrite)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SegmentError("--device: cuda asked for but no CUDA device is available")
    info = probe_video(video)
    targets = _check_range(start, end, stride, info.num_frames)
    model, extractor, data_hparams = load_model(ckpt, device, i3d_weights)
    vectors = _word_vectors_path(None if word_vectors is None else str(word_vectors), data_hparams)
    words, word_mask, oov = encode_sentence(query, vectors, int(data_hparams.get("max_words", 20)))
    if oov:
        print(f"acga segment: out-of-vocabulary words (zero vectors): {', '.join(oov)}")
    (out / "masks").mkdir(parents=True, exist_ok=True)
    rate = video_rate(video) / stride
    writer = OverlayWriter(out / "overlay.mp4", info.height, info.width, rate)
    run = _Run(model, extractor, words, word_mask, device, out, writer, [])
    try:
        _segment_frames(run, video, targets, info.num_frames, batch_size, progress)
    finally:
        writer.close()
    return SegmentSummary(
        frames=len(run.areas), height=info.height, width=info.width, fps=float(rate),
        mean_area=float(np.mean(run.areas)) if run.areas else 0.0,
        masks_dir=out / "masks", overlay=out / "overlay.mp4",
        seconds=time.perf_counter() - began,
    )  # fmt: skip


def _segment_frames(
    run: _Run, video: Path, targets: list[int], n: int, batch_size: int, progress: bool
) -> None:
    """Decode once; predict each target as soon as the last frame of its clip is decoded."""
    from tqdm import tqdm

    hp = run.model.hparams
    stride = hp.frame_stride
    t_before, t_after = (hp.num_frames // 2) * stride, ((hp.num_frames + 1) // 2 - 1) * stride
    wanted = set(targets)
    pending, batch = list(reversed(targets)), []
    resized: dict[int, torch.Tensor] = {}
    originals: dict[int, np.ndarray] = {}
    last = -1
    # disable=None: tqdm shows the bar only on a terminal.
    bar = tqdm(
        total=len(targets), desc="acga segment", unit="frame", disable=None if progress else True
    )
    first, final = max(0, targets[0] - t_before), min(n - 1, targets[-1] + t_after)
    for index, rgb in iter_frames(video, first, final):
        last = index
        resized[index] = resize_frames(rgb, hp.frame_size, hp.resize_policy)  # (S, S, 3)
        if index in wanted:
            originals[index] = rgb
        while pending and min(pending[-1] + t_after, n - 1) <= index:
            batch.append(pending.pop())
            if len(batch) == batch_size:
                _flush(run, batch, resized, originals, n - 1)
                bar.update(len(batch))
                batch = []
        keep_from = (batch or pending[-1:] or [index + 1])[0] - t_before
        for i in [i for i in resized if i < keep_from]:
            del resized[i]
    # A header that promised more frames than the stream holds: clamp to the last decoded one.
    batch += reversed(pending)
    undecoded = [t + 1 for t in batch if t not in originals]
    if undecoded:
        raise VideoReadError(
            f"{video}: frames {undecoded[0]}..{undecoded[-1]} could not be decoded"
        )
    for k in range(0, len(batch), batch_size):
        _flush(run, batch[k : k + batch_size], resized, originals, last)
        bar.update(len(batch[k : k + batch_size]))
    bar.close()


def segment_main(argv: Sequence[str] | None = None) -> int:
    """``acga segment --ckpt C --video V --query Q --out DIR``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="acga segment",
        description="Segment the actor a sentence refers to in every frame of a video.",
    )
    parser.add_argument("--ckpt", required=True, help="an ACGASegmenter checkpoint (.ckpt)")
    parser.add_argument("--video", required=True, help="the video (any format PyAV reads)")
    parser.add_argument("--query", required=True, help='the sentence, e.g. "dog on the left"')
    parser.add_argument("--out", required=True, help="output folder (masks/, overlay.mp4)")
    parser.add_argument("--start", type=int, default=None, help="first frame, 1-based (1)")
    parser.add_argument("--end", type=int, default=None, help="last frame, inclusive (last)")
    parser.add_argument("--stride", type=int, default=1, help="segment every K-th frame")
    parser.add_argument(
        "--word-vectors", default=None,
        help="word2vec file (default: the one the checkpoint's data used, e.g. ROOT/word2vec.bin)",
    )  # fmt: skip
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--batch-size", type=int, default=4, help="clips per forward pass")
    parser.add_argument(
        "--i3d-weights", default=None,
        help="I3D weights for models trained on a Mixed_4e cache (default: the cache's file)",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace masks/ and overlay.mp4 already in --out"
    )
    args = parser.parse_args(argv)
    try:
        summary = segment(
            args.ckpt, args.video, args.query, args.out, start=args.start, end=args.end,
            stride=args.stride, word_vectors=args.word_vectors, device=args.device,
            batch_size=args.batch_size, i3d_weights=args.i3d_weights,
            progress=not args.no_progress, overwrite=args.overwrite,
        )  # fmt: skip
    except (SegmentError, VideoReadError) as err:
        print(f"acga segment: error: {err}", file=sys.stderr)
        return 2
    print(summary)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(segment_main())
