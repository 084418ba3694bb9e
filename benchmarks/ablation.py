"""The paper's ablation (Table 3) on generated data where only the sentence tells actors apart.

    python benchmarks/ablation.py            # 5 configurations x 3 seeds, ~30 min on 2 CPU cores
    python benchmarks/ablation.py --quick    # seconds: tiny data, 1 epoch, 1 seed (CI's check)

Data: ``write_a2d(sentence_only=True)`` (every clip has 2-4 actors, all visible in every
annotated frame, every actor queried once by colour / shape / motion / position words), written
once to ``--root`` and shared by every run; square frames, so the "cover" resize crops nothing.
Each run trains an ``ACGASegmenter`` from scratch (``small3d`` encoder, reduced widths) with a
lean loop over ``model.compute_loss`` on clips decoded once into memory; batches come in the
same order for a given seed in every configuration. Scores: ``ReferringSegmentationMetrics``
(ACGA protocol) on ``model.predict_masks`` at the frame's original size, over the test split.

Floors, from the h5 masks of the annotated frame: ``segment every actor`` (the union of all
instances) and ``segment a random actor`` (a seeded random instance). They use the true masks, so
a model with blurry masks can read the sentence and still score below them; the last column is
the direct control: each trained model asked with the query of a sample from another video.

Invariants (every run; exit status 1 when one fails): every figure is a fraction and P@K never
rises with K; asking each sample with its own query through the control's code path gives the
plain evaluation's figures exactly.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _checks import check_metrics, passed, require  # noqa: E402

from acga_lightning import ACGASegmenter  # noqa: E402
from acga_lightning.data.datamodules import A2DDataModule  # noqa: E402
from acga_lightning.data.datasets.a2d import MASKS, read_a2d_masks  # noqa: E402
from acga_lightning.metrics import ReferringSegmentationMetrics  # noqa: E402

COLUMNS = ("P@0.5", "P@0.6", "P@0.7", "P@0.8", "P@0.9", "mAP", "overall IoU", "mean IoU",
           "mean IoU, query of another clip")  # fmt: skip
KEYS = ("precision_50", "precision_60", "precision_70", "precision_80", "precision_90", "map",
        "overall_iou", "mean_iou",
        "foreign_mean_iou")  # fmt: skip
#: Paper Table 3 (A2D test, mAP 0.5:0.95) and Table 1 (Gavrilyuk RGB), for the ordering.
PAPER_MAP = {"Baseline": 20.6, "+MRF": 23.1, "+MRF+WBCE": 25.5, "ACGA (+ATT)": 27.4,
             "Gavrilyuk (dyn. filters)": 19.8}  # fmt: skip


def configurations(width: int) -> dict[str, dict[str, Any]]:
    """Table 3's rows and Gavrilyuk's dynamic filters as (attention, decoder, loss) specs."""
    multires = {"name": "multires", "up_channels": [width // 2, width // 4],
                "head_widths": [width, width // 2, width // 4],
                "up_activation": "relu"}  # fmt: skip
    wbce = {"name": "wbce", "pos_weight": 1.5}
    return {
        "Baseline": {
            "attention": "none",
            "decoder": {"name": "single", "width": width},
            "loss": "bce",
        },  # fmt: skip
        "+MRF": {"attention": "none", "decoder": multires, "loss": "bce"},
        "+MRF+WBCE": {"attention": "none", "decoder": multires, "loss": wbce},
        "ACGA (+ATT)": {"attention": "acga", "decoder": multires, "loss": wbce},
        "Gavrilyuk (dyn. filters)": {
            "attention": "none",
            "decoder": {"name": "dynamic_filter", "up_channels": [width // 2, width // 4]},
            "loss": wbce,
        },
    }


def build_model(parts: dict[str, Any], args: argparse.Namespace) -> ACGASegmenter:
    """A laptop-scale ACGASegmenter: small3d encoder, narrow text features, the given parts."""
    widths = [16, 32, args.width, args.width][: 3 if args.stride == 8 else 4]
    encoder = {"name": "small3d", "widths": widths, "stride": args.stride, "extra_blocks": 0}
    return ACGASegmenter(
        video_encoder=encoder,
        text_encoder={"name": "word_cnn", "out_channels": args.text_width},
        num_frames=args.frames, frame_size=args.size, lr=args.lr,
        lr_milestones=[int(args.epochs * 0.75)], compile=False, channels_last=False,
        mask_padding=True, **parts,
    )  # fmt: skip


def generate(args: argparse.Namespace) -> A2DDataModule:
    """Write the sentence-only toy data once (if absent) and return its datamodule."""
    toy = {"num_videos": args.videos, "seed": args.data_seed, "height": args.size,
           "width": args.size, "num_frames": (12, 16), "quirks": False,
           "sentence_only": True, "test_fraction": 0.3}  # fmt: skip
    dm = A2DDataModule(
        root=str(args.root), toy=toy, num_frames=args.frames, frame_size=args.size,
        max_words=args.max_words, index_cache=False,
    )  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    return dm


def materialise(dataset: Any) -> dict[str, Any]:
    """Every sample of ``dataset`` decoded once: stacked tensors plus per-sample lists."""
    samples = [dataset[i] for i in range(len(dataset))]
    frames = torch.stack([torch.as_tensor(s["frames"]) for s in samples])  # (N, 3, T, S, S)
    out: dict[str, Any] = {
        # uint8 pixels (the datamodule's default) stay uint8: exact, and the model normalises
        # them; float frames are kept in half precision to save memory.
        "frames": frames if frames.dtype == torch.uint8 else frames.half(),
        "words": torch.stack([torch.as_tensor(s["words"]) for s in samples]),
        "word_mask": torch.stack([torch.as_tensor(s["word_mask"]) for s in samples]),
        "mask": torch.stack([torch.as_tensor(s["mask"]) for s in samples]),
    }
    if "action" in samples[0]:  # A2D: the target's actor-action class
        out["action"] = torch.tensor([s["action"] for s in samples])
    for key in ("orig_mask", "orig_size", "video_id", "frame_idx", "instance_id", "sample_id"):
        out[key] = [s[key] for s in samples]
    return out


def batch_of(data: dict[str, Any], index: torch.Tensor) -> dict[str, torch.Tensor]:
    frames = data["frames"][index]
    frames = frames if frames.dtype == torch.uint8 else frames.float()
    batch = {"frames": frames, "words": data["words"][index],
             "word_mask": data["word_mask"][index], "mask": data["mask"][index]}  # fmt: skip
    if "action" in data:
        batch["action"] = data["action"][index]
    return batch


def train(
    model: ACGASegmenter,
    data: dict[str, Any],
    seed: int,
    args: argparse.Namespace,
    after_epoch: Callable[[int], None] | None = None,
) -> None:
    """Adam with ACGA's step schedule; epoch e's order is a function of (seed, e) alone.

    ``args.epochs`` epochs of ``args.batch`` samples; ``after_epoch(e)`` runs after each epoch
    (``benchmarks/demo_study.py`` scores the test split there).
    """
    opt = model.configure_optimizers()
    optimizer, scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
    n = len(data["orig_mask"])
    model.train()
    for epoch in range(args.epochs):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        for start in range(0, n - args.batch + 1, args.batch):  # drop the ragged last batch
            loss, _ = model.compute_loss(batch_of(data, order[start : start + args.batch]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scheduler.step()
        if after_epoch is not None:
            after_epoch(epoch)


def foreign_queries(data: dict[str, Any], seed: int = 0) -> torch.Tensor:
    """For each sample, the index of a sample of another video (whose query it will be given)."""
    rng = np.random.default_rng(seed)
    videos = np.asarray(data["video_id"])
    return torch.tensor([int(rng.choice(np.flatnonzero(videos != v))) for v in videos])


@torch.no_grad()
def evaluate(
    model: ACGASegmenter,
    data: dict[str, Any],
    batch: int = 32,
    queries_from: torch.Tensor | None = None,
) -> dict[str, float]:
    """The ACGA-protocol figures of ``model`` on ``data``, scored at the original frame size.

    ``queries_from`` (N,): sample i is asked with the query of sample ``queries_from[i]`` (the
    sentence-blind control); None asks each sample its own query.
    """
    model.eval()
    metrics = ReferringSegmentationMetrics(protocol="acga")
    n = len(data["orig_mask"])
    for start in range(0, n, batch):
        index = torch.arange(start, min(start + batch, n))
        inputs = batch_of(data, index)
        if queries_from is not None:
            inputs["words"] = data["words"][queries_from[index]]
            inputs["word_mask"] = data["word_mask"][queries_from[index]]
        logits = model(inputs["words"], inputs["word_mask"], frames=inputs["frames"])["logits"]
        sizes = [data["orig_size"][i] for i in index]
        preds, scores = model.predict_masks(logits[-1], sizes)
        targets = [torch.as_tensor(data["orig_mask"][i]).bool() for i in index]
        ids = [int(data["sample_id"][i]) >> 10 for i in index]
        metrics.update(preds, targets, scores=scores, sample_ids=ids)
    return {k: float(v) for k, v in metrics.compute().items()}


def floors(root: Path, data: dict[str, Any], seed: int = 0) -> dict[str, dict[str, float]]:
    """``segment every actor`` and ``segment a random actor`` from the annotated frame's h5."""
    rng = np.random.default_rng(seed)
    every = ReferringSegmentationMetrics(protocol="acga")
    random = ReferringSegmentationMetrics(protocol="acga")
    for i, target in enumerate(data["orig_mask"]):
        h5 = root / MASKS / data["video_id"][i] / f"{int(data['frame_idx'][i]):05d}.h5"
        masks = torch.from_numpy(read_a2d_masks(h5))  # (N, h, w)
        target = torch.as_tensor(target).bool()
        ids = [int(data["sample_id"][i]) >> 10]
        every.update([masks.any(dim=0)], [target], sample_ids=ids)
        random.update([masks[int(rng.integers(len(masks)))]], [target], sample_ids=ids)
    named = (("segment every actor", every), ("segment a random actor", random))
    return {name: {k: float(v) for k, v in m.compute().items()} for name, m in named}


def format_table(rows: dict[str, list[dict[str, float]]]) -> str:
    """One markdown table: mean ± std over seeds (in %) of each column."""
    head = "| configuration | seeds | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for name, runs in rows.items():
        cells = []
        for key in KEYS:
            if key not in runs[0]:
                cells.append("-")
                continue
            values = [100 * r[key] for r in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.1f} ± {spread:.1f}" if len(values) > 1
                         else f"{values[0]:.1f}")  # fmt: skip
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="seconds, numbers not meaningful")
    p.add_argument(
        "--root",
        type=Path,
        default=None,
        help="data folder (default: data/ablation_<videos>v_<size>px_s<seed>)",
    )
    p.add_argument("--videos", type=int, default=300)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--only", nargs="+", default=None, help="configuration names to run")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--size", type=int, default=64, help="frame height = width = model input")
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--stride", type=int, default=8, choices=(8, 16), help="encoder stride")
    p.add_argument("--width", type=int, default=32, help="encoder output / decoder width")
    p.add_argument("--text-width", type=int, default=32)
    p.add_argument("--max-words", type=int, default=12)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if args.quick:
        args.videos, args.epochs, args.seeds = min(args.videos, 8), 1, args.seeds[:1]
        args.size, args.width, args.text_width = 32, 16, 16
        if args.root is None:  # tiny throw-away data: nothing left behind in data/
            scratch = tempfile.mkdtemp(prefix="acga-ablation-quick-")
            atexit.register(shutil.rmtree, scratch, ignore_errors=True)
            args.root = Path(scratch) / "toy"
    if args.root is None:  # one folder per data setting: a stale dataset is never reused
        args.root = Path(f"data/ablation_{args.videos}v_{args.size}px_s{args.data_seed}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    dm = generate(args)
    train_data, test_data = materialise(dm.datasets["train"]), materialise(dm.datasets["test"])
    sizes = f"{len(train_data['orig_mask'])} train / {len(test_data['orig_mask'])} test samples"
    print(f"data: {sizes}, {args.size}px, ready in {time.perf_counter() - start:.0f} s", flush=True)
    foreign = foreign_queries(test_data)
    rows: dict[str, list[dict[str, float]]] = {}
    for name, parts in configurations(args.width).items():
        if args.only and name not in args.only:
            continue
        for seed in args.seeds:
            t0 = time.perf_counter()
            torch.manual_seed(seed)
            model = build_model(parts, args)
            train(model, train_data, seed, args)
            result = evaluate(model, test_data)
            blind = evaluate(model, test_data, queries_from=foreign)
            check_metrics(name, result)
            check_metrics(f"{name}, queries of other clips", blind)
            if args.quick:  # the control's code path, asked with each sample's own query
                own = evaluate(model, test_data, queries_from=torch.arange(len(foreign)))
                require(own == result, f"{name}: own queries through the control path differ")
            result["foreign_mean_iou"] = blind["mean_iou"]
            rows.setdefault(name, []).append(result)
            print(f"{name} seed {seed}: mAP {100 * result['map']:.1f} mean IoU "
                  f"{100 * result['mean_iou']:.1f} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)  # fmt: skip
    for name, result in floors(args.root, test_data).items():
        check_metrics(name, result)
        rows[name] = [result]
    print()
    print(format_table(rows))
    print("\npaper mAP (A2D): " + ", ".join(f"{k} {v}" for k, v in PAPER_MAP.items()))
    print(f"total {time.perf_counter() - start:.0f} s")
    passed("ablation", time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
