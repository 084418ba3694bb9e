"""A2D-Sentences sample throughput: our data path against MTTR's (whole-video decoding).

Generates 320-pixel-high videos of 100 to 120 frames in the real layout (toy.write_a2d) into a
temporary folder, then reads every sample of the train split through four pipelines, one torch
thread (as one DataLoader worker), all in one process; each row is its best of ``--repeats``
passes, and the rows take turns pass by pass so that other load on the machine hits them alike:

- (a) ``window + uint8`` (ours, the datamodule's default): :func:`read_window` seeks to the
  keyframe before the window and decodes forward only to its last frame, converting with one
  swscale thread (:func:`to_rgb`); the queries of one frame share its decode (the reader keeps
  its last window, and the index lists a frame's queries together); frames stay uint8 (the
  model normalises them on its device, which this benchmark does not time);
- (a') ``(a), no shared decode``: every sample decodes its own window;
- (b) ``whole + uint8``: the same pipeline with a whole-video decoder (decode every frame of the
  video, then pick the window): only the decoder differs from (a);
- (c) ``whole + float32`` (MTTR's full pipeline): every sample decodes its whole video with
  PyAV's ``to_ndarray`` (swscale's default threads), then float conversion / normalisation in
  the worker, as MTTR does on the CPU;
- (d) ``window + float32``: our decoder with float frames in the worker (the readers' default,
  for reference).

Every row runs the same rest of the pipeline (mask read, resize to S x S, words). ``decode
only`` times just the decoders, one window per sample. Ratios printed: (a)/(c) ours against
MTTR's pipeline, (a)/(a') the shared decodes, (a)/(b) the decoder alone inside the same
pipeline, and decode only.

    python benchmarks/data.py [--videos 8] [--num-frames 16] [--frame-size 512] [--repeats 3]
    python benchmarks/data.py --quick   # 64-pixel videos of 30-40 frames, one pass: seconds

Invariants (every run; exit status 1 when one fails): the window decoder and both whole-video
decoders return the same frames, and uint8 frames normalise to the float32 reader's frames
exactly.
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
from _checks import passed, require

from acga_lightning.data.datasets import a2d as a2d_module
from acga_lightning.data.datasets.a2d import A2DSentences
from acga_lightning.data.io.resize import normalise_frames
from acga_lightning.data.io.video import clip_indices, read_window, to_rgb
from acga_lightning.data.synthetic import write_a2d


def read_whole_video(
    path: str | Path, frame_indices: Sequence[int], convert: Callable = to_rgb
) -> np.ndarray:
    """Decode the whole video, then index the (clamped) window (MTTR's way)."""
    with av.open(str(path)) as container:
        frames = [convert(f) for f in container.decode(video=0)]
    n = len(frames)
    return np.stack([frames[min(max(i, 0), n - 1)] for i in frame_indices])


def read_whole_video_mttr(path: str | Path, frame_indices: Sequence[int]) -> np.ndarray:
    """MTTR's decoder as it is: the whole video, converted by PyAV's ``to_ndarray``."""
    return read_whole_video(path, frame_indices, lambda f: f.to_ndarray(format="rgb24"))


@contextlib.contextmanager
def decoder(fn: Callable[[str | Path, Sequence[int]], np.ndarray]) -> Iterator[None]:
    """Swap the A2D reader's window decoder for ``fn``."""
    original = a2d_module.read_window
    a2d_module.read_window = fn
    try:
        yield
    finally:
        a2d_module.read_window = original


def time_samples(ds: A2DSentences, repeats: int, share: bool = True) -> float:
    """Best-of-``repeats`` samples per second over the whole dataset, in index order.

    ``share=False`` forgets the reader's last decoded window before each sample.
    """
    best = float("inf")
    for _ in range(repeats):
        ds._last_window = None
        start = time.perf_counter()
        for i in range(len(ds)):
            if not share:
                ds._last_window = None
            ds[i]
        best = min(best, time.perf_counter() - start)
    return len(ds) / best


def time_decode(
    ds: A2DSentences, fn: Callable[[str | Path, Sequence[int]], np.ndarray], repeats: int
) -> float:
    """Best-of-``repeats`` windows per second decoded by ``fn`` alone (no mask, resize, words)."""
    best = float("inf")
    clips = ds.root / a2d_module.CLIPS
    for _ in range(repeats):
        start = time.perf_counter()
        for r in ds.records:
            fn(clips / f"{r['video_id']}.mp4", clip_indices(r["frame_idx"], ds.num_frames))
        best = min(best, time.perf_counter() - start)
    return len(ds) / best


PIPELINES = (
    ("(a) window + uint8 (ours)", "window", "uint8", True),
    ("(a') (a), no shared decode", "window", "uint8", False),
    ("(b) whole + uint8", "whole", "uint8", True),
    ("(c) whole + float32 (MTTR)", "mttr", "float32", False),
    ("(d) window + float32", "window", "float32", True),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny videos, one pass: CI's check")
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--num-frames", type=int, default=16, help="clip length T")
    parser.add_argument("--frame-size", type=int, default=512, help="model input size S")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = one worker)")
    args = parser.parse_args()
    began = time.perf_counter()
    height, lengths = 320, (100, 120)
    if args.quick:
        args.videos, args.num_frames, args.frame_size, args.repeats = 2, 8, 64, 1
        height, lengths = 64, (30, 40)
    torch.set_num_threads(args.threads)
    decoders = {"window": read_window, "whole": read_whole_video, "mttr": read_whole_video_mttr}

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        root = write_a2d(Path(tmp) / "a2d", num_videos=args.videos, seed=0, height=height,
                         num_frames=lengths, test_fraction=0.0, quirks=False)  # fmt: skip
        readers = {
            dtype: A2DSentences(
                root,
                "train",
                num_frames=args.num_frames,
                frame_size=args.frame_size,
                word_vectors=root / "word2vec.bin",
                index_cache=Path(tmp) / "cache",
                frames_dtype=dtype,
            )
            for dtype in ("uint8", "float32")
        }
        ds = readers["uint8"]
        lengths = [r["num_frames"] for r in ds.records]
        print(
            f"{len(ds)} samples from {args.videos} videos of {min(lengths)}-{max(lengths)} "
            f"frames, {height} px high, T={args.num_frames}, S={args.frame_size}, {args.threads} "
            f"torch thread(s); data written in {time.perf_counter() - start:.1f} s\n"
        )
        # Both decoders must return the same frames, and both dtypes the same pixels.
        r = ds.records[len(ds) // 2]
        path = root / a2d_module.CLIPS / f"{r['video_id']}.mp4"
        idx = clip_indices(r["frame_idx"], args.num_frames)
        window = read_window(path, idx)
        require(np.array_equal(window, read_whole_video(path, idx)), "whole-video decoder differs")
        require(np.array_equal(window, read_whole_video_mttr(path, idx)), "MTTR's decoder differs")
        i = len(ds) // 2
        require(
            torch.equal(normalise_frames(ds[i]["frames"]), readers["float32"][i]["frames"]),
            "uint8 frames do not normalise to the float32 reader's frames",
        )

        # Rows take turns, pass by pass: load from other processes then hits every row alike.
        rows = {label: 0.0 for label, _, _, _ in PIPELINES}
        decode = {name: 0.0 for name in decoders}
        for _ in range(args.repeats):
            for label, name, dtype, share in PIPELINES:
                with decoder(decoders[name]):
                    rows[label] = max(rows[label], time_samples(readers[dtype], 1, share))
            for name, fn in decoders.items():
                decode[name] = max(decode[name], time_decode(ds, fn, 1))

    print(f"{'pipeline':<28} {'samples/s':>10} {'ms/sample':>10}")
    for label, rate in rows.items():
        print(f"{label:<28} {rate:>10.1f} {1000 / rate:>10.1f}")
    for name, rate in decode.items():
        print(f"{'decode only, ' + name:<28} {rate:>10.1f} {1000 / rate:>10.1f}")
    (a, a_alone, b, c, _) = rows.values()
    print(
        f"\nours (a) / MTTR's pipeline (c): {a / c:.2f}x per sample (target >= 3x)\n"
        f"ours (a) / the same without shared decodes (a'): {a / a_alone:.2f}x per sample\n"
        f"ours (a) / same pipeline, whole-video decoder (b): {a / b:.2f}x per sample\n"
        f"decode only, window / whole video: {decode['window'] / decode['whole']:.2f}x "
        f"(/ MTTR's: {decode['window'] / decode['mttr']:.2f}x)\n"
        "(uint8 rows leave the normalisation to the model's device: not timed here)"
    )
    passed("data", time.perf_counter() - began)


if __name__ == "__main__":
    main()
