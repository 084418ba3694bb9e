"""``acga toy-data``: write generated data in the layout of any format a datamodule knows."""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path


def generators() -> dict[str, type]:
    """The datamodule of every format that has a generator, by format name."""
    from acga_lightning.data.datamodules import DATAMODULES

    return {name: cls for name, cls in sorted(DATAMODULES.items()) if cls.synthetic is not None}


def toy_data_main(argv: Sequence[str] | None = None) -> int:
    """``acga toy-data OUT --format a2d|jhmdb|ytvos|davis --videos N --seed S --height H``.

    Defaults are the format's generator settings (its datamodule's ``synthetic`` dataclass); a
    ``--height`` without a width gives 4:3 frames where the format has one width for all videos.
    """
    known = generators()
    names = ", ".join(cls.title for cls in known.values())
    parser = argparse.ArgumentParser(
        prog="acga toy-data",
        description=f"Write a small generated dataset in a real layout ({names}).",
    )
    parser.add_argument("out", help="folder to write (the dataset root)")
    parser.add_argument("--format", choices=tuple(known), default="a2d")
    parser.add_argument("--videos", type=int, default=None, help="number of videos")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--height", type=int, default=None, help="frame height in pixels")
    parser.add_argument("--no-word2vec", action="store_true", help="skip word2vec.bin")
    parser.add_argument(
        "--overwrite", action="store_true", help="write into OUT even if it is not empty"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
        raise FileExistsError(
            f"{out} is not an empty folder: the generated files would replace or mix with what "
            "is there (a real dataset's videoset.csv, for one); choose a new folder or pass "
            "--overwrite"
        )
    datamodule = known[args.format]
    settings = datamodule.synthetic(seed=args.seed, word2vec=not args.no_word2vec)
    if args.videos is not None:
        settings = dataclasses.replace(settings, num_videos=args.videos)
    if args.height is not None:
        settings = dataclasses.replace(settings, height=args.height)
        if getattr(settings, "width", None) is not None:
            width = int(round(args.height * 4 / 3 / 2)) * 2  # 4:3, even (J-HMDB: 320x240)
            settings = dataclasses.replace(settings, width=width)
    start = time.perf_counter()
    root = datamodule.write_synthetic(out, settings, progress=True)
    elapsed = time.perf_counter() - start
    print(f"wrote {settings.num_videos} {args.format} videos to {root} in {elapsed:.1f} s")
    return 0
