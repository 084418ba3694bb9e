"""The lean training loop behind the demo study (docs/demo.md): which model learns fastest.

Trains an :class:`~acga_lightning.ACGASegmenter` on generated sentence-only data with a plain
PyTorch loop (no Lightning, no validation, the clips decoded once and held in memory), then
scores the test split after every epoch. The numbers in docs/demo.md come from it:

    python benchmarks/demo_study.py --tag old-demo --diagnose     # the first demo: 4x4, acga
    python benchmarks/demo_study.py --tag demo --diagnose --epochs 12 --milestones 9 \
        --model '{"attention": "vgla", "video_encoder": {"name": "small3d", "stride": 8,
                  "widths": [32, 64, 128], "extra_blocks": 1, "temporal": "early"},
                  "decoder": {"name": "multires", "up_channels": [16, 8],
                              "head_widths": [32, 16, 8], "up_factors": [4, 2]}}'

The data-size rows (the demo's data: clips of 16-24 frames, test_fraction 0.15, val_fraction
0.1; the model of ``configs/demo.yaml``), e.g. 2,000 videos for 4 epochs:

    python benchmarks/demo_study.py --tag v2000 --model demo --videos 2000 \
        --video-frames 16,24 --test-fraction 0.15 --val-fraction 0.1 --epochs 4 --milestones 3

With ``--diagnose`` (on the last epoch, and every third) it also reads every actor's mask from
the h5 files and reports how often the predicted mask lands on the named actor (it overlaps
the target at least as much as any other actor; a mask that touches no actor counts, with
IoU 0), the IoU when it lands, and the mean IoU per kind of
query (which attributes the query names, from ``toy_manifest.json``). One torch thread.

``--aux-action W`` sets the model's ``action_loss_weight`` to ``W``: a second loss beside
ACGA's, where the video encoder's features averaged over the target's mask name the target's
actor-action class (docs/model.md; docs/demo.md, "Why motion is not read"). Without it the
model has ``configs/demo.yaml``'s weight with ``--model demo``, and none otherwise.

``--quick`` (CI's check, seconds) runs the same code with ``--diagnose`` on 8 tiny videos for
one epoch in a temporary folder, and checks the scores: every IoU figure and the landing rate
are fractions, the per-kind counts add up to the test split, and scoring twice gives the same
result (exit status 1 otherwise).

The loop is ``benchmarks/ablation.py``'s (``materialise``, ``train``). The table there came from
an earlier copy of it whose batch order was seeded once rather than per epoch, so a rerun
differs from the table by run-to-run noise, not by method.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

# The ablation benchmark's lean loop: clips decoded once, its batches and its training loop.
from _checks import passed, require  # noqa: E402
from ablation import batch_of, materialise, train  # noqa: E402

from acga_lightning.data.datamodules import A2DDataModule  # noqa: E402
from acga_lightning.data.datasets.a2d import MASKS, read_a2d_masks  # noqa: E402

#: The demo's model before and after this study (configs/demo.yaml has the current one).
OLD_DEMO = {
    "video_encoder": {"name": "small3d", "widths": [16, 32, 64, 128], "extra_blocks": 1,
                      "temporal": "early"},
    "text_encoder": "word_cnn",
    "attention": "acga",
    "decoder": {"name": "multires", "up_channels": [32, 16], "head_widths": [64, 32, 16],
                "up_activation": "relu"},
    "loss": {"name": "wbce", "pos_weight": 1.5},
    "mask_padding": True,
}  # fmt: skip


def data_root(args: argparse.Namespace) -> Path:
    """The folder of the generated data these settings describe, named by them, in ``--data``."""
    name = f"toy{args.videos}_{args.size}" + (f"_v{args.video_frames.replace(',', '-')}"
                                             if args.video_frames else "")  # fmt: skip
    if args.test_fraction is not None:
        name += f"_t{args.test_fraction}"
    for key, value in sorted(json.loads(args.toy).items()):
        name += f"_{key}-{value}"
    return Path(args.data) / name


def load_splits(root: Path, args: argparse.Namespace) -> dict[str, dict]:
    """Every sample of train/test decoded once (``ablation.materialise``), cached by the data."""
    stride = f".s{args.frame_stride}" if args.frame_stride != 1 else ""
    # .m2: the samples carry their actor-action class
    cache = root.parent / f"{root.name}.f{args.frames}{stride}.v{args.val_fraction}.m2.pt"
    if cache.exists():
        return torch.load(cache, weights_only=False)
    toy = {"num_videos": args.videos, "height": args.size, "width": args.size, "seed": 0,
           "sentence_only": True}  # fmt: skip
    if args.video_frames:
        toy["num_frames"] = [int(x) for x in args.video_frames.split(",")]
    if args.test_fraction is not None:
        toy["test_fraction"] = args.test_fraction
    toy.update(json.loads(args.toy))
    dm = A2DDataModule(
        root=str(root), num_frames=args.frames, frame_size=args.size,
        val_fraction=args.val_fraction, toy=toy, frame_stride=args.frame_stride,
    )  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    out = {split: materialise(dm.datasets[split]) for split in ("train", "test")}
    torch.save(out, cache)
    return out


def target_actors(data: dict, manifest: dict) -> list[dict]:
    """Each sample's target actor as the generator's ``toy_manifest.json`` describes it."""
    videos = manifest["videos"]
    return [
        videos[v]["actors"][int(i)]
        for v, i in zip(data["video_id"], data["instance_id"], strict=True)
    ]


def evaluate(model, data: dict, root: Path, attributes: dict, diagnose: bool) -> dict:
    model.eval()
    ious, lands, per = [], [], {}
    n = len(data["orig_mask"])
    with torch.no_grad():
        for start in range(0, n, 64):
            index = torch.arange(start, min(start + 64, n))
            inputs = batch_of(data, index)
            out = model(inputs["words"], inputs["word_mask"], frames=inputs["frames"])
            sizes = [data["orig_size"][i] for i in index]
            preds, _ = model.predict_masks(out["logits"][-1], sizes)
            for i, pred in zip(index.tolist(), preds, strict=True):
                target = torch.as_tensor(data["orig_mask"][i]).bool()
                inter, union = int((pred & target).sum()), int((pred | target).sum())
                ious.append(inter / union if union else 1.0)
                if not diagnose:
                    continue
                vid, fid = data["video_id"][i], int(data["frame_idx"][i])
                actors = torch.as_tensor(read_a2d_masks(root / MASKS / vid / f"{fid:05d}.h5"))
                lands.append(inter >= max(int((pred & m).sum()) for m in actors))
                kind = attributes[(vid, int(data["instance_id"][i]))]
                per.setdefault("+".join(kind), []).append(ious[-1])
    model.train()
    result = {"mean_iou": round(float(np.mean(ious)), 4)}
    if diagnose:
        landed, iou = np.array(lands), np.array(ious)
        result["lands"] = round(float(landed.mean()), 3)
        result["iou_if_landed"] = round(float(iou[landed].mean()), 3) if landed.any() else 0.0
        result["per_query_kind"] = {
            k: (len(v), round(float(np.mean(v)), 3)) for k, v in sorted(per.items())
        }
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="8 tiny videos, 1 epoch: CI's check")
    p.add_argument(
        "--model",
        default="{}",
        help="JSON: ACGASegmenter arguments over OLD_DEMO; 'demo': configs/demo.yaml's",
    )
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--milestones", default="6", help="epochs where the lr drops 10x, e.g. 6")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--videos", type=int, default=600)
    p.add_argument("--video-frames", default="", help="toy clip lengths 'lo,hi' (default 40,64)")
    p.add_argument(
        "--test-fraction",
        type=float,
        default=None,
        help="toy test_fraction (default write_a2d's 0.25; the demo's is 0.15)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.15,
        help="train videos held out, unused here (the demo's is 0.1)",
    )
    p.add_argument("--toy", default="{}", help='JSON: more toy settings, e.g. {"max_actors": 3}')
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--frame-stride", type=int, default=1, help="every n-th frame in a clip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="data/demo_study", help="parent folder of generated data")
    p.add_argument("--tag", default="run")
    p.add_argument("--diagnose", action="store_true")
    p.add_argument(
        "--aux-action",
        type=float,
        default=None,
        help="the model's action_loss_weight (default: the demo's with --model demo, else 0)",
    )
    args = p.parse_args()
    began = time.perf_counter()
    if args.quick:
        args.videos, args.video_frames, args.size, args.epochs = 8, "8,12", 32, 1
        args.milestones, args.diagnose = "", True
        args.aux_action = args.aux_action or 0.1  # the auxiliary loss's code runs too
        args.data = tempfile.mkdtemp(prefix="acga-demo-study-quick-")
        atexit.register(shutil.rmtree, args.data, ignore_errors=True)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    from acga_lightning.segmenter import ACGASegmenter

    root = data_root(args)
    data = load_splits(root, args)
    manifest = json.loads((root / "toy_manifest.json").read_text())
    attributes = {
        (vid, a["instance_id"]): tuple(a["attributes"])
        for vid, v in manifest["videos"].items()
        for a in v["actors"]
    }
    if args.model == "demo" or args.model.startswith("demo+"):
        # the model of configs/demo.yaml as it is now; 'demo+{...}' changes some arguments
        from acga_lightning.cli import load_config

        demo = load_config(Path(__file__).resolve().parents[1] / "configs/demo.yaml")["model"]
        spec = {k: demo[k] for k in OLD_DEMO}
        spec["action_loss_weight"] = demo.get("action_loss_weight", 0.0)
        for key, value in json.loads(args.model[5:] or "{}").items():
            spec[key] = {**spec[key], **value} if isinstance(spec[key], dict) else value
    else:
        spec = {**OLD_DEMO, **json.loads(args.model)}
    if args.aux_action is not None:
        spec["action_loss_weight"] = args.aux_action
    model = ACGASegmenter(
        num_frames=args.frames, frame_stride=args.frame_stride, frame_size=args.size, lr=args.lr,
        compile=False, channels_last=False,
        lr_milestones=[int(x) for x in args.milestones.split(",") if x],
        **spec,
    )  # fmt: skip
    if args.quick:  # the actor-action loss runs on the classes the reader gave the samples
        require(model.action_head is not None, "--aux-action built no actor-action head")
        codes = data["train"].get("action", torch.tensor([-1]))
        require(bool((codes >= 0).all()), f"samples without an actor-action class: {codes}")
    n = len(data["train"]["orig_mask"])
    print(f"[{args.tag}] train {n} test {len(data['test']['orig_mask'])} samples; model {spec}")
    start = time.time()

    def score(epoch: int) -> None:
        diagnose = args.diagnose and (epoch == args.epochs - 1 or epoch % 3 == 2)
        result = evaluate(model, data["test"], root, attributes, diagnose)
        print(f"[{args.tag}] epoch {epoch} test {result} {time.time() - start:.0f} s", flush=True)
        if args.quick:
            check_scores(result, len(data["test"]["orig_mask"]))
            again = evaluate(model, data["test"], root, attributes, diagnose)
            require(again == result, f"scoring twice differs: {result} vs {again}")

    train(model, data["train"], args.seed, args, after_epoch=score)
    if args.quick:
        passed("demo_study", time.perf_counter() - began)


def check_scores(result: dict, num_test: int) -> None:
    """The figures of :func:`evaluate` with ``diagnose``: fractions, counts that add up."""
    for key in ("mean_iou", "lands", "iou_if_landed"):
        require(0.0 <= result[key] <= 1.0, f"{key} = {result[key]} is not a fraction")
    counted = sum(n for n, _ in result["per_query_kind"].values())
    require(counted == num_test, f"query kinds count {counted} of {num_test} test samples")


if __name__ == "__main__":
    main()
