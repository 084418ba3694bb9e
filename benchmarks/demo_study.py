"""The lean training loop behind README's demo study: which model learns the demo data fastest.

Trains an :class:`~acga_lightning.ACGASegmenter` on generated sentence-only data with a plain
PyTorch loop (no Lightning, no validation, the clips decoded once and held in memory), then
scores the test split after every epoch. The numbers in README's demo section come from it:

    python benchmarks/demo_study.py --tag old-demo --diagnose     # the first demo: 4x4, acga
    python benchmarks/demo_study.py --tag demo --diagnose --epochs 12 --milestones 9 \
        --model '{"attention": "vgla", "video_encoder": {"name": "small3d", "stride": 8,
                  "widths": [32, 64, 128], "extra_blocks": 1, "temporal": "early"},
                  "decoder": {"name": "multires", "up_channels": [16, 8],
                              "head_widths": [32, 16, 8], "up_factors": [4, 2]}}'

With ``--diagnose`` (on the last epoch, and every third) it also reads every actor's mask from
the h5 files and reports how often the predicted mask lands on the named actor (it overlaps
the target at least as much as any other actor; a mask that touches no actor counts, with
IoU 0), the IoU when it lands, and the mean IoU per kind of
query (which attributes the query names, from ``toy_manifest.json``). One torch thread.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

#: The demo's model before and after this study (configs/demo.yaml has the current one).
OLD_DEMO = {
    "video_encoder": {"name": "small3d", "widths": [16, 32, 64, 128], "extra_blocks": 1,
                      "temporal": "early"},
    "text_encoder": "word_cnn",
    "attention": "acga",
    "decoder": {"name": "multires", "up_channels": [32, 16], "head_widths": [64, 32, 16]},
    "loss": {"name": "wbce", "pos_weight": 1.5},
}  # fmt: skip


def materialise(root: Path, args: argparse.Namespace) -> dict:
    """Every sample of train/val/test as tensors (cached next to the data)."""
    from acga_lightning.data.datamodule import ReferringVideoDataModule

    cache = root.with_suffix(f".f{args.frames}.pt")
    if cache.exists():
        return torch.load(cache, weights_only=False)
    toy = {"num_videos": args.videos, "height": args.size, "width": args.size, "seed": 0,
           "sentence_only": True}  # fmt: skip
    if args.video_frames:
        toy["num_frames"] = [int(x) for x in args.video_frames.split(",")]
    dm = ReferringVideoDataModule(
        dataset="toy", root=str(root), num_frames=args.frames, frame_size=args.size,
        val_fraction=0.15, toy=toy,
    )  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    out = {}
    for split in ("train", "val", "test"):
        samples = [dm.datasets[split][i] for i in range(len(dm.datasets[split]))]
        d = {
            k: torch.stack([torch.as_tensor(s[k]) for s in samples])
            for k in ("frames", "words", "word_mask", "mask")
        }
        d["orig_mask"] = [torch.as_tensor(s["orig_mask"]).bool() for s in samples]
        d["orig_size"] = [tuple(s["orig_size"]) for s in samples]
        d["meta"] = [(s["video_id"], s["frame_idx"], s["instance_id"]) for s in samples]
        out[split] = d
    torch.save(out, cache)
    return out


def evaluate(model, data: dict, root: Path, attributes: dict, diagnose: bool) -> dict:
    from acga_lightning.data.a2d import read_a2d_masks

    model.eval()
    ious, lands, per = [], [], {}
    with torch.no_grad():
        for i in range(0, len(data["frames"]), 64):
            out = model(
                words=data["words"][i : i + 64],
                word_mask=data["word_mask"][i : i + 64],
                frames=data["frames"][i : i + 64],
            )
            preds, _ = model.predict_masks(out["logits"][-1], data["orig_size"][i : i + 64])
            for j, pred in enumerate(preds):
                target = data["orig_mask"][i + j]
                inter, union = int((pred & target).sum()), int((pred | target).sum())
                ious.append(inter / union if union else 1.0)
                if not diagnose:
                    continue
                vid, fid, inst = data["meta"][i + j]
                h5 = root / "text_annotations/a2d_annotation_with_instances" / vid / f"{fid:05d}.h5"
                actors = torch.as_tensor(read_a2d_masks(h5))
                lands.append(inter >= max(int((pred & m).sum()) for m in actors))
                per.setdefault("+".join(attributes[(vid, inst)]), []).append(ious[-1])
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
    p.add_argument("--model", default="{}", help="JSON: ACGASegmenter arguments over OLD_DEMO")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--milestones", default="6", help="epochs where the lr drops 10x, e.g. 6")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--videos", type=int, default=600)
    p.add_argument("--video-frames", default="", help="toy clip lengths 'lo,hi' (default 40,64)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="data/demo_study", help="parent folder of generated data")
    p.add_argument("--tag", default="run")
    p.add_argument("--diagnose", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    from acga_lightning.segmenter import ACGASegmenter

    name = f"toy{args.videos}_{args.size}" + (f"_v{args.video_frames.replace(',', '-')}"
                                             if args.video_frames else "")  # fmt: skip
    root = Path(args.data) / name
    data = materialise(root, args)
    manifest = json.loads((root / "toy_manifest.json").read_text())
    attributes = {
        (vid, a["instance_id"]): tuple(a["attributes"])
        for vid, v in manifest["videos"].items()
        for a in v["actors"]
    }
    spec = {**OLD_DEMO, **json.loads(args.model)}
    model = ACGASegmenter(
        num_frames=args.frames, frame_size=args.size, lr=args.lr, compile=False,
        channels_last=False, lr_milestones=[int(x) for x in args.milestones.split(",") if x],
        **spec,
    )  # fmt: skip
    optim = model.configure_optimizers()
    optimizer, scheduler = optim["optimizer"], optim["lr_scheduler"]["scheduler"]
    train, n, bs = data["train"], len(data["train"]["frames"]), args.batch_size
    print(f"[{args.tag}] train {n} test {len(data['test']['frames'])} samples; model {spec}")
    generator, start = torch.Generator().manual_seed(args.seed), time.time()
    for epoch in range(args.epochs):
        order, losses = torch.randperm(n, generator=generator), []
        for i in range(0, n - bs + 1, bs):
            idx = order[i : i + bs]
            batch = {k: train[k][idx] for k in ("frames", "words", "word_mask", "mask")}
            loss, _ = model.compute_loss(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
        last = epoch == args.epochs - 1
        diagnose = args.diagnose and (last or epoch % 3 == 2)
        result = evaluate(model, data["test"], root, attributes, diagnose)
        print(f"[{args.tag}] epoch {epoch} loss {np.mean(losses):.4f} test {result} "
              f"{time.time() - start:.0f} s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
