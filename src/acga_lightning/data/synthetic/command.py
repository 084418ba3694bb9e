"""``acga toy-data``: write a generated dataset in one of the real layouts."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from acga_lightning.data.synthetic.a2d import write_a2d
from acga_lightning.data.synthetic.jhmdb import write_jhmdb

DEFAULT_VIDEOS = {"a2d": 12, "jhmdb": 6, "ytvos": 6, "davis": 6}
DEFAULT_HEIGHT = {"a2d": 320, "jhmdb": 240, "ytvos": 96, "davis": 96}


def toy_data_main(argv: Sequence[str] | None = None) -> int:
    """``acga toy-data OUT --format a2d|jhmdb|ytvos|davis --videos N --seed S --height H``."""
    parser = argparse.ArgumentParser(
        prog="acga toy-data",
        description="Write a small generated dataset in a real layout (A2D-Sentences, "
        "J-HMDB-Sentences, Ref-YouTube-VOS, Ref-DAVIS17).",
    )
    parser.add_argument("out", help="folder to write (the dataset root)")
    parser.add_argument("--format", choices=tuple(DEFAULT_VIDEOS), default="a2d")
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
    videos = args.videos if args.videos is not None else DEFAULT_VIDEOS[args.format]
    height = args.height if args.height is not None else DEFAULT_HEIGHT[args.format]
    width = int(round(height * 4 / 3 / 2)) * 2  # 4:3, even (J-HMDB frames are 320x240)
    start = time.perf_counter()
    if args.format == "a2d":
        root = write_a2d(
            args.out, num_videos=videos, seed=args.seed, height=height,
            word2vec=not args.no_word2vec, progress=True,
        )  # fmt: skip
    elif args.format in ("ytvos", "davis"):
        from acga_lightning.data.synthetic.ref_vos import write_ref_vos

        root = write_ref_vos(
            args.out, args.format, num_videos=videos, seed=args.seed, height=height,
            width=width, word2vec=not args.no_word2vec,
        )  # fmt: skip
    else:
        root = write_jhmdb(
            args.out, num_videos=videos, seed=args.seed, height=height, width=width,
            word2vec=not args.no_word2vec,
        )  # fmt: skip
    elapsed = time.perf_counter() - start
    print(f"wrote {videos} {args.format} videos to {root} in {elapsed:.1f} s")
    return 0
