"""Floors for referring segmentation on an A2D-format test split: answers that ignore the sentence.

- ``every actor``: the union of every annotated instance mask of the frame.
- ``largest actor``: the largest annotated instance mask of the frame.
- ``random actor``: one of the frame's annotated actors drawn at random; its mean IoU is the
  exact expectation (each sample's IoU averaged over its actors), so no draw is printed.
- ``no actor`` (empty prediction) is 0 everywhere and not printed.

A model that reads the sentence must beat them. On generated data (``toy_manifest.json``
records which attributes each query names besides the shape's noun) the samples are also split
by what the query names: ``colour``, ``motion``, ``position``, their combinations (``colour +
motion``) and ``shape only``; each group gets its own random-actor floor and, with
``--predictions DIR`` (the folder ``acga predict`` wrote), the model's mean IoU on it. Scored with
:class:`~acga_lightning.metrics.ReferringSegmentationMetrics` at the frames' original size, on
exactly the samples the datamodule tests on (the :class:`A2DSentences` test index).

    python benchmarks/floors.py --config configs/demo.yaml   # data.root / data.toy of a config
    python benchmarks/floors.py --root data/a2d --word-vectors <word2vec.bin>
    python benchmarks/floors.py --config configs/demo.yaml --predictions P   # + the model by kind
    python benchmarks/floors.py --quick   # 6 generated videos in a temporary folder: seconds

Invariants (every run; exit status 1 when one fails): figures are fractions, P@K never rises
with K, both floors score the same samples, and ``every actor`` covers every target, so its
mean IoU is above 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _checks import check_metrics, passed, require  # noqa: E402

ATTRIBUTES = ("colour", "motion", "position")


def iou(pred: np.ndarray, target: np.ndarray) -> float:
    union = np.logical_or(pred, target).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, target).sum() / union)


def query_kinds(root: Path) -> dict[tuple[str, int], str] | None:
    """(video, instance) -> what its query names besides the shape (``colour + motion``, ...),
    from ``toy_manifest.json`` (None: no manifest)."""
    path = root / "toy_manifest.json"
    if not path.is_file():
        return None
    kinds = {}
    for vid, video in json.loads(path.read_text())["videos"].items():
        for actor in video["actors"]:
            named = [a for a in ATTRIBUTES if a in actor["attributes"]]
            kinds[vid, int(actor["instance_id"])] = " + ".join(named) or "shape only"
    return kinds


def score_floors(
    root: Path, word_vectors: Path, predictions: Path | None = None
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]] | None]:
    """Each floor's metrics on the test split of the A2D-format dataset at ``root``, and the
    per-kind table (samples, random-actor floor, the model's mean IoU from ``predictions``)."""
    from acga_lightning.data.datasets.a2d import MASKS, A2DSentences, read_a2d_mask, read_a2d_masks
    from acga_lightning.metrics import ReferringSegmentationMetrics
    from acga_lightning.prediction import read_mask

    reader = A2DSentences(root, "test", num_frames=1, frame_size=32, word_vectors=word_vectors)
    floors = {name: ReferringSegmentationMetrics() for name in ("every actor", "largest actor")}
    predicted = {}
    if predictions is not None:
        with open(predictions / "scores.csv", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                key = (
                    row["video_id"],
                    int(row["frame_idx"]),
                    int(row["instance_id"]),
                    row["query"],
                )
                predicted[key] = predictions / row["mask"]
    kinds = query_kinds(root)
    groups: dict[str, list[tuple[float, float]]] = {"all": []}
    random_ious = []
    for record in reader.records:
        path = root / MASKS / record["video_id"] / f"{record['frame_idx']:05d}.h5"
        target_np = read_a2d_mask(path, record["mask_index"])
        target = torch.from_numpy(target_np)[None]  # (1, h, w)
        masks = read_a2d_masks(path)  # (N, h, w)
        largest = masks[int(masks.reshape(len(masks), -1).sum(1).argmax())]
        floors["every actor"].update(torch.from_numpy(masks.any(0))[None], target)
        floors["largest actor"].update(torch.from_numpy(largest)[None], target)
        random_iou = float(np.mean([iou(m, target_np) for m in masks]))
        random_ious.append(random_iou)
        model_iou = float("nan")
        if predictions is not None:
            key = (record["video_id"], record["frame_idx"], record["instance_id"], record["query"])
            require(key in predicted, f"{predictions}: no prediction for {key}")
            model_iou = iou(read_mask(predicted[key]), target_np)
        named = ["all"]
        if kinds is not None:
            named.append(kinds[record["video_id"], record["instance_id"]])
        for kind in named:
            groups.setdefault(kind, []).append((random_iou, model_iou))
    results = {name: {k: float(v) for k, v in m.compute().items()} for name, m in floors.items()}
    results["random actor"] = {"mean_iou": float(np.mean(random_ious)),
                               "num_samples": float(len(random_ious))}  # fmt: skip
    if kinds is None and predictions is None:
        return results, None
    by_kind = {
        kind: {"num_samples": float(len(pairs)),
               "random_actor": float(np.mean([r for r, _ in pairs])) if pairs else float("nan"),
               "model": float(np.mean([m for _, m in pairs])) if pairs else float("nan")}
        for kind, pairs in sorted(groups.items(), key=lambda item: (item[0] != "all", item[0]))
    }  # fmt: skip
    return results, by_kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny generated data: CI's check")
    parser.add_argument("--config", help="a config whose data.root (and data.toy) to use")
    parser.add_argument("--root", help="dataset root (overrides the config)")
    parser.add_argument("--word-vectors", help="word2vec file (default <root>/word2vec.bin)")
    parser.add_argument(
        "--predictions", help="the folder `acga predict` wrote (masks/, scores.csv)"
    )
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
    report(Path(root), args.word_vectors, toy, Path(args.predictions) if args.predictions else None)


def report(
    root: Path, word_vectors: str | None, toy: dict | None, predictions: Path | None = None
) -> None:
    """Write the toy data if a config asks for it and is absent; print and check the floors."""
    if toy is not None and not (root / "Release/videoset.csv").is_file():
        from acga_lightning.data.synthetic import write_a2d

        write_a2d(root, **toy)
    vectors = Path(word_vectors) if word_vectors else root / "word2vec.bin"
    results, by_kind = score_floors(root, vectors, predictions)
    keys = ["mean_iou", "overall_iou", "precision_50", "precision_70", "precision_90", "map",
            "num_samples"]  # fmt: skip
    print(f"floors on the test split of {root}")
    print(f"{'floor':<15}" + "".join(f"{k:>14}" for k in keys))
    for name, metrics in results.items():
        print(f"{name:<15}" + "".join(f"{metrics.get(k, float('nan')):>14.4f}" for k in keys))
    if by_kind is not None:
        model = f" (model: {predictions})" if predictions else ""
        print(f"\nby what the query names{model}")
        width = max(len(kind) for kind in by_kind) + 2
        print(f"{'kind':<{width}}{'samples':>9}{'random actor':>14}{'model':>9}{'margin':>9}")
        for kind, row in by_kind.items():
            margin = row["model"] - row["random_actor"]
            print(f"{kind:<{width}}{row['num_samples']:>9.0f}{row['random_actor']:>14.4f}"
                  f"{row['model']:>9.4f}{margin:>9.4f}")  # fmt: skip
    for name, metrics in results.items():
        if name != "random actor":
            check_metrics(name, metrics)
    every, largest = results["every actor"], results["largest actor"]
    random = results["random actor"]
    require(every["num_samples"] == largest["num_samples"] == random["num_samples"],
            "the floors scored other samples")  # fmt: skip
    require(every["mean_iou"] > 0, "'every actor' misses every target")
    require(0 < random["mean_iou"] <= 1, "'random actor' mean IoU is not a fraction in (0, 1]")
    if by_kind is not None:
        total = by_kind["all"]["num_samples"]
        require(total == random["num_samples"], "the kind table scored other samples")
        split = sum(row["num_samples"] for kind, row in by_kind.items() if kind != "all")
        has_kinds = (root / "toy_manifest.json").is_file()
        require(not has_kinds or split == total, "the kinds do not split the samples")


if __name__ == "__main__":
    main()
