"""Floors for referring segmentation on an A2D-format test split: answers that ignore the sentence.

- ``every actor``: the union of every annotated instance mask of the frame.
- ``largest actor``: the largest annotated instance mask of the frame.
- ``no actor`` (empty prediction) is 0 everywhere and not printed.

A model that reads the sentence must beat both. Scored with
:class:`~acga_lightning.metrics.ReferringSegmentationMetrics` at the frames' original size, on
exactly the samples the datamodule tests on (the :class:`A2DSentences` test index).

    python benchmarks/floors.py --config configs/demo.yaml   # data.root / data.toy of a config
    python benchmarks/floors.py --root data/a2d --word-vectors <word2vec.bin>
    python benchmarks/floors.py --quick   # 6 generated videos in a temporary folder: seconds

Invariants (every run; exit status 1 when one fails): figures are fractions, P@K never rises
with K, both floors score the same samples, and ``every actor`` covers every target, so its
mean IoU is above 0.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402
from _checks import check_metrics, passed, require  # noqa: E402


def score_floors(root: Path, word_vectors: Path) -> dict[str, dict[str, float]]:
    """Metrics of each floor on the test split of the A2D-format dataset at ``root``."""
    from acga_lightning.data.datasets.a2d import MASKS, A2DSentences, read_a2d_mask, read_a2d_masks
    from acga_lightning.metrics import ReferringSegmentationMetrics

    reader = A2DSentences(root, "test", num_frames=1, frame_size=32, word_vectors=word_vectors)
    floors = {name: ReferringSegmentationMetrics() for name in ("every actor", "largest actor")}
    for record in reader.records:
        path = root / MASKS / record["video_id"] / f"{record['frame_idx']:05d}.h5"
        target = torch.from_numpy(read_a2d_mask(path, record["mask_index"]))[None]  # (1, h, w)
        masks = read_a2d_masks(path)  # (N, h, w)
        largest = masks[int(masks.reshape(len(masks), -1).sum(1).argmax())]
        floors["every actor"].update(torch.from_numpy(masks.any(0))[None], target)
        floors["largest actor"].update(torch.from_numpy(largest)[None], target)
    return {name: {k: float(v) for k, v in m.compute().items()} for name, m in floors.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny generated data: CI's check")
    parser.add_argument("--config", help="a config whose data.root (and data.toy) to use")
    parser.add_argument("--root", help="dataset root (overrides the config)")
    parser.add_argument("--word-vectors", help="word2vec file (default <root>/word2vec.bin)")
    args = parser.parse_args()
    began = time.perf_counter()
    if args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            toy = {"num_videos": 6, "seed": 0, "height": 32, "width": 32, "num_frames": (8, 12),
                   "sentence_only": True, "test_fraction": 0.5}  # fmt: skip
            report(Path(tmp) / "toy", None, toy)
        passed("floors", time.perf_counter() - began)
        return
    toy: dict | None = None
    root = args.root
    if args.config:
        from acga_lightning.cli import load_config
        from acga_lightning.data.compat import migrate_data_config

        data, _ = migrate_data_config(load_config(args.config).get("data", {}))
        if not str(data.get("class_path", "")).endswith("A2DDataModule"):
            parser.error(f"{args.config}: the floors are of A2D-format data (A2DDataModule)")
        options = data.get("init_args") or {}
        root = root or options.get("root")
        toy = options.get("toy")
    if not root:
        parser.error("give --root or --config")
    report(Path(root), args.word_vectors, toy)


def report(root: Path, word_vectors: str | None, toy: dict | None) -> None:
    """Write the toy data if a config asks for it and is absent; print and check the floors."""
    if toy is not None and not (root / "Release/videoset.csv").is_file():
        from acga_lightning.data.synthetic import write_a2d

        write_a2d(root, **toy)
    vectors = Path(word_vectors) if word_vectors else root / "word2vec.bin"
    results = score_floors(root, vectors)
    keys = ["mean_iou", "overall_iou", "precision_50", "precision_70", "precision_90", "map",
            "num_samples"]  # fmt: skip
    print(f"floors on the test split of {root}")
    print(f"{'floor':<15}" + "".join(f"{k:>14}" for k in keys))
    for name, metrics in results.items():
        print(f"{name:<15}" + "".join(f"{metrics.get(k, float('nan')):>14.4f}" for k in keys))
    for name, metrics in results.items():
        check_metrics(name, metrics)
    every, largest = results["every actor"], results["largest actor"]
    require(every["num_samples"] == largest["num_samples"], "the floors scored other samples")
    require(every["mean_iou"] > 0, "'every actor' misses every target")


if __name__ == "__main__":
    main()
