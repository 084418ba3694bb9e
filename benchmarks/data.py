"""A2D-Sentences sample throughput: our window decoding against whole-video decoding (MTTR).

Generates 320-pixel-high videos of 100 to 120 frames in the real layout (toy.write_a2d) into a
temporary folder, then reads every sample twice in one process:

- ``window`` (ours): :func:`~acga_lightning.data.video.read_window` seeks to the keyframe before
  the window and decodes forward only to its last frame;
- ``whole video`` (MTTR's ``read_video``): decode every frame of the video, then pick the window.

Both run the same rest of the pipeline (mask read, resize to S x S, normalisation, words), with
one torch thread, as in one DataLoader worker. Rows ``decode only`` time just the decoding.

    python benchmarks/data.py [--videos 8] [--num-frames 16] [--frame-size 512] [--repeats 2]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import av
import numpy as np
import torch

from acga_lightning.data import a2d as a2d_module
from acga_lightning.data.a2d import A2DSentences
from acga_lightning.data.toy import write_a2d
from acga_lightning.data.video import clip_indices, read_window


def read_whole_video(path: str | Path, frame_indices: Sequence[int]) -> np.ndarray:
    """MTTR's way: decode the whole video, then index the (clamped) window."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    n = len(frames)
    return np.stack([frames[min(max(i, 0), n - 1)] for i in frame_indices])


@contextlib.contextmanager
def decoder(fn: Callable[[str | Path, Sequence[int]], np.ndarray]) -> Iterator[None]:
    """Swap the A2D reader's window decoder for ``fn``."""
    original = a2d_module.read_window
    a2d_module.read_window = fn
    try:
        yield
    finally:
        a2d_module.read_window = original


def time_samples(ds: A2DSentences, repeats: int) -> float:
    """Best-of-``repeats`` samples per second over the whole dataset."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(len(ds)):
            ds[i]
        best = min(best, time.perf_counter() - start)
    return len(ds) / best


def time_decode(
    ds: A2DSentences, fn: Callable[[str | Path, Sequence[int]], np.ndarray], repeats: int
) -> float:
    best = float("inf")
    clips = ds.root / a2d_module.CLIPS
    for _ in range(repeats):
        start = time.perf_counter()
        for r in ds.records:
            fn(clips / f"{r['video_id']}.mp4", clip_indices(r["frame_idx"], ds.num_frames))
        best = min(best, time.perf_counter() - start)
    return len(ds) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--num-frames", type=int, default=16, help="clip length T")
    parser.add_argument("--frame-size", type=int, default=512, help="model input size S")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = one worker)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        root = write_a2d(Path(tmp) / "a2d", num_videos=args.videos, seed=0, height=320,
                         num_frames=(100, 120), test_fraction=0.0, quirks=False)  # fmt: skip
        ds = A2DSentences(
            root,
            "train",
            num_frames=args.num_frames,
            frame_size=args.frame_size,
            word_vectors=root / "word2vec.bin",
            index_cache=Path(tmp) / "cache",
        )
        lengths = [r["num_frames"] for r in ds.records]
        print(
            f"{len(ds)} samples from {args.videos} videos of {min(lengths)}-{max(lengths)} "
            f"frames, 320 px high, T={args.num_frames}, S={args.frame_size}, {args.threads} "
            f"torch thread(s); data written in {time.perf_counter() - start:.1f} s\n"
        )
        # Both decoders must return the same frames.
        r = ds.records[len(ds) // 2]
        path = root / a2d_module.CLIPS / f"{r['video_id']}.mp4"
        idx = clip_indices(r["frame_idx"], args.num_frames)
        assert np.array_equal(read_window(path, idx), read_whole_video(path, idx))

        rows = []
        for label, fn in (("window (ours)", read_window), ("whole video (MTTR)", read_whole_video)):
            with decoder(fn):
                full = time_samples(ds, args.repeats)
            rows.append((label, full, time_decode(ds, fn, args.repeats)))

    print(f"{'decoder':<20} {'samples/s':>10} {'ms/sample':>10} {'decode only/s':>14}")
    for label, full, dec in rows:
        print(f"{label:<20} {full:>10.1f} {1000 / full:>10.1f} {dec:>14.1f}")
    print(f"\nratio window / whole video: {rows[0][1] / rows[1][1]:.2f}x per sample, "
          f"{rows[0][2] / rows[1][2]:.2f}x decoding only (target >= 3x)")  # fmt: skip


if __name__ == "__main__":
    main()
