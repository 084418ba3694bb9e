"""Feature cache benchmark: epoch time uncached vs cached, MiB per entry, RSS while iterating.

Runs on CPU at reduced sizes on generated A2D data (a few minutes on 2 cores)::

    python benchmarks/cache.py [--videos 8] [--frame-size 64] [--num-frames 8]
    python benchmarks/cache.py --quick   # tiny sizes; checks the invariants below

The data module gives uint8 frames; the uncached epoch normalises them as the segmenter does
(:func:`~acga_lightning.data.io.resize.normalise_frames`) before I3D, so both rows time the work
of a training step's video encoder. Invariants (checked on every run, exit status 1 when one
fails): for one sample, I3D on its frames and ``precomputed`` on its cached features give the
same F_V (up to the cache's float16), every entry of the build is a file, and reading many
more entries leaves peak RSS within half of the extra bytes read (entries are memory-mapped).

"Epoch" = every training sample through the data loader and the video encoder (the part the
cache replaces): uncached reads and decodes clips and runs I3D through Mixed_4f; cached reads
Mixed_4e features and runs Mixed_4f only (``precomputed``). Baseline: the uncached epoch in the
same run. Targets: cached >= 5x faster; peak RSS flat between 200 and 2,000 entries read.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _checks import passed, require  # noqa: E402


def epoch_time(dm, encoder) -> tuple[float, int]:
    """Seconds for one pass over the train loader through ``encoder``; samples seen."""
    start, n = time.perf_counter(), 0
    with torch.no_grad():
        for batch in dm.train_dataloader():
            encoder(frames=model_frames(batch.get("frames")), features=batch.get("features"))
            n += batch["words"].shape[0]
    return time.perf_counter() - start, n


def model_frames(frames: torch.Tensor | None) -> torch.Tensor | None:
    """uint8 pixels as the segmenter's forward turns them into the encoder's [-1, 1] input."""
    from acga_lightning.data.io.resize import normalise_frames

    if frames is not None and frames.dtype == torch.uint8:
        return normalise_frames(frames)  # (B, 3, T, S, S)
    return frames


def same_features(plain_dataset, cached_dataset, i3d, precomputed) -> float:
    """Max |F_V difference| / max |F_V| for sample 0: frames through I3D vs cached features."""
    require(len(plain_dataset) > 0, "the train split is empty: generate more videos")
    plain, cached = plain_dataset[0], cached_dataset[0]
    require(
        plain["sample_id"] == cached["sample_id"],
        f"sample 0 differs between the datasets: {plain['sample_id']} vs {cached['sample_id']}",
    )
    with torch.no_grad():
        want = i3d(frames=model_frames(torch.as_tensor(plain["frames"])[None]))
        got = precomputed(features=torch.as_tensor(cached["features"])[None])
    return float((want - got).abs().max() / want.abs().max())


def rss_child(num_entries: int, directory: str) -> None:
    """Read ``num_entries`` entries of the synthetic cache in ``directory``; print peak RSS MiB."""
    from acga_lightning.data.caching.features import FeatureCache, entry_key

    cache = FeatureCache(directory, {"benchmark": 1}, RSS_SHAPE, "float16")
    total = 0.0
    for i in range(num_entries):
        total += float(cache.read(entry_key("v", i % RSS_POOL + 1))[0, 0, 0, 0])
    print(peak_rss_mib())


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM; ``ru_maxrss`` would carry the parent's peak over exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


RSS_SHAPE = (528, 4, 16, 16)  # 1 MiB per entry in float16
RSS_POOL = 2000


def rss_table(tmp: Path, counts: tuple[int, int, int]) -> list[tuple[int, float]]:
    """Peak RSS of a fresh process reading each count of 1 MiB entries (``counts[-1]`` written)."""
    from acga_lightning.data.caching.features import FeatureCache, entry_key

    cache = FeatureCache(tmp / "rss", {"benchmark": 1}, RSS_SHAPE, "float16")
    cache.prepare()
    rng = np.random.default_rng(0)
    block = rng.standard_normal(RSS_SHAPE).astype(np.float16)
    for i in range(counts[-1]):
        cache.write(entry_key("v", i + 1), block)
    rows = []
    for n in counts:
        out = subprocess.run(
            [sys.executable, __file__, "--rss-child", str(n), str(tmp / "rss")],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        rows.append((n, float(out.stdout.strip().splitlines()[-1])))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds: CI's check")
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--frame-size", type=int, default=64)
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--rss-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(int(args.rss_child[0]), args.rss_child[1])
        return
    began = time.perf_counter()
    counts = (0, 200, 2000)
    if args.quick:
        args.videos, args.height, args.frame_size, args.num_frames = 4, 64, 32, 4
        counts = (0, 20, 200)
    logging.disable(logging.WARNING)
    from acga_lightning.data.base import build_cache
    from acga_lightning.data.datamodules import A2DDataModule
    from acga_lightning.registry import VIDEO_ENCODERS

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        common = dict(
            root=str(tmp / "toy"), batch_size=4, num_workers=args.workers,
            num_frames=args.num_frames, frame_size=args.frame_size,
            toy={"num_videos": args.videos, "height": args.height, "seed": 0}, index_cache=False,
        )  # fmt: skip
        plain = A2DDataModule(**common)
        plain.prepare_data()
        plain.setup("fit")
        cached = A2DDataModule(**common, cache={"mode": "mixed_4e", "dir": str(tmp / "c")})
        start = time.perf_counter()
        report = build_cache(cached, ("train", "val"), progress=False)
        build_s = time.perf_counter() - start
        cached.setup("fit")
        i3d = cached._encoder
        precomputed = VIDEO_ENCODERS.build(cached.feature_spec).eval()
        precomputed.i3d.Mixed_4f.load_state_dict(i3d.i3d.Mixed_4f.state_dict())
        difference = same_features(plain.datasets["train"], cached.datasets["train"],
                                   i3d, precomputed)  # fmt: skip
        epoch_time(cached, precomputed)  # warm-up (page cache, allocator)
        uncached_s, n = epoch_time(plain, i3d)
        cached_s, _ = epoch_time(cached, precomputed)
        cache = cached.feature_cache()
        files = list(cache.root.rglob("*.npy"))
        entry_mib = np.mean([f.stat().st_size for f in files]) / 2**20
        per_sample = sum(f.stat().st_size for f in files) / 2**20 / n
        rss = rss_table(tmp, counts)
    print(
        f"toy A2D: {args.videos} videos, height {args.height}, {n} train samples, "
        f"{report.total} entries (clip {args.num_frames}x{args.frame_size}x{args.frame_size}, CPU)"
    )
    print(f"{'measure':<44}{'value':>12}")
    print(f"{'cache build (one-off), s':<44}{build_s:>12.2f}")
    print(f"{'epoch uncached (decode + I3D), s  [baseline]':<44}{uncached_s:>12.2f}")
    print(f"{'epoch cached (read + Mixed_4f), s':<44}{cached_s:>12.2f}")
    speedup = uncached_s / cached_s
    print(f"{'speed-up (target >= 5x)':<44}{speedup:>11.1f}x")
    print(f"{'MiB per entry (float16)':<44}{entry_mib:>12.3f}")
    print(f"{'MiB per cached sample (entries shared)':<44}{per_sample:>12.3f}")
    for count, mib in rss:
        print(f"{f'peak RSS reading {count} x 1 MiB entries, MiB':<44}{mib:>12.1f}")
    growth = rss[2][1] - rss[1][1]
    label = f"RSS growth {counts[1]} -> {counts[2]} entries, MiB (flat)"
    print(f"{label:<44}{growth:>12.1f}")
    print(f"{'F_V max relative difference, cached vs I3D':<44}{difference:>12.2e}")
    require(difference < 1e-2, f"cached features give another F_V than I3D ({difference:.2e})")
    require(len(files) == report.total, f"{report.total} entries built, {len(files)} files")
    extra_mib = counts[2] - counts[1]
    require(growth < extra_mib / 2, f"peak RSS grew {growth:.0f} MiB reading {extra_mib} MiB more")
    passed("cache", time.perf_counter() - began)


if __name__ == "__main__":
    main()
