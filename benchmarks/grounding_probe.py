"""Where reading a word breaks down: the demo's video encoder alone, and a bare grounding score.

The demo's model reads shape and position words but not motion words on single-contrast data
(docs/demo.md, "Reading the words"). Two probes, each trained from scratch with Adam (lr 2e-3,
batch 8, one torch thread) on generated single-contrast data, separate the video side from the
word side:

- ``classify``: the demo's encoder (``small3d``, early fusion, stride 8) and one linear layer,
  trained to name the target actor's attribute (``--attribute motion``, ``colour``, ``shape``
  or ``code``, A2D's actor-action class, from ``toy_manifest.json``) from its features
  averaged over the target's mask. Scored as accuracy on the test split against the most
  frequent class.
- ``ground``: the same encoder and a bilinear score per grid cell, ``<F_V(x), W t(s)>``, where
  ``t(s)`` is the sentence: the mean of its word vectors (``--text mean``) or their sum
  (``sum``), ACGA's word CNN (tanh) pooled by max (``cnn-max``, the model's sentence feature)
  or by mean (``cnn-mean``), or an oracle one-hot of the target's attribute (``oracle``);
  ``--norm bn`` standardises it over the batch first (BatchNorm1d). ``--side`` adds a second,
  sentence-blind head (two 1x1 convolutions) that can learn where actors are: from F_V alone
  (``objectness``), or also from the grid's coordinates, the tiled sentence, or both
  (``objectness+coords``, ``objectness+sentence``, ``objectness+coords+sentence``, what
  ACGA's heads see). ``--aux W`` adds ``classify``'s loss on ``--attribute``, weighted ``W``,
  to train the encoder beside the score. Scored as the landing rate: over every annotated
  frame, how often the query's own actor gets the highest mean score of the actors of that
  frame (chance: about 1 over the actors per frame), overall and, at the end, by what the
  query names.

Each run prints its figure after steps 300 and 700 and at the end of each epoch, with the
chance level of the test split. For example (docs/demo.md has the table):

    python benchmarks/grounding_probe.py --probe classify --attribute motion
    python benchmarks/grounding_probe.py --probe ground --text mean --norm bn

The data is ``benchmarks/demo_study.py``'s (``--data``, ``--videos``, ``--toy``; by default
2,000 motion-only single-contrast videos of 16-24 frames at 64 x 64), decoded once and cached
beside it. ``--quick`` (CI's check) runs both probes on 8 tiny videos for one epoch in a
temporary folder and checks that every figure is a fraction, that the chance levels are
fractions too (the landing rates by kind as well), and that scoring twice gives the same
result; the ``ground`` check trains with ``--aux 1`` and every side input.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import json
import os
import shutil
import tempfile
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from _checks import passed, require  # noqa: E402
from demo_study import data_root, load_splits, target_actors  # noqa: E402

from acga_lightning.data.io.resize import normalise_frames  # noqa: E402
from acga_lightning.models.small_encoders import Small3DEncoder  # noqa: E402
from acga_lightning.segmenter import ACTION_LOGIT_SCALE, mask_average  # noqa: E402

TEXTS = ("mean", "sum", "cnn-max", "cnn-mean", "oracle")
SIDES = (
    "none",
    "objectness",
    "objectness+coords",
    "objectness+sentence",
    "objectness+coords+sentence",
)


def attribute_labels(data: dict[str, Any], manifest: dict, attribute: str) -> list[str]:
    """The target actor's ``attribute`` for every sample, from the generator's manifest."""
    return [str(actor[attribute]) for actor in target_actors(data, manifest)]


def query_kinds(data: dict[str, Any], manifest: dict) -> list[str]:
    """What each sample's query names besides the shape (``motion``, ...; ``shape`` alone)."""
    return ["+".join(actor["attributes"]) or "shape" for actor in target_actors(data, manifest)]


def target_masks(data: dict[str, Any], index: torch.Tensor) -> torch.Tensor:
    """The samples' target masks ``(B, S, S)`` float."""
    mask = torch.as_tensor(data["mask"][index]).float()
    return mask[:, 0] if mask.ndim == 4 else mask


def frames_of(data: dict[str, Any], index: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> ``(B, 3, T, S, S)`` in [-1, 1], as the segmenter normalises them."""
    return normalise_frames(data["frames"][index])


class Probe(nn.Module):
    """The demo's encoder plus a classifier or a bilinear grounding score (module docstring)."""

    def __init__(self, args: argparse.Namespace, num_classes: int) -> None:
        super().__init__()
        self.args = args
        self.encoder = Small3DEncoder(
            widths=(32, 64, 128), stride=8, extra_blocks=1, temporal="early",
            num_frames=args.frames, frame_size=args.size,
        )  # fmt: skip
        channels, words = self.encoder.out_channels, 300
        self.classifier = nn.Linear(channels, num_classes)
        self.word_cnn = nn.Conv1d(words, words, 3, padding=1)
        text_in = num_classes if args.text == "oracle" else words
        self.norm = nn.BatchNorm1d(text_in) if args.norm == "bn" else nn.Identity()
        self.project = nn.Linear(text_in, channels)
        extra = 2 * ("coords" in args.side) + text_in * ("sentence" in args.side)
        self.side = nn.Sequential(
            nn.Conv2d(channels + extra, 32, 1), nn.ReLU(), nn.Conv2d(32, 1, 1)
        )

    def sentence(self, data: dict[str, Any], index: torch.Tensor) -> torch.Tensor:
        if self.args.text == "oracle":
            return self.norm(data["oracle"][index])
        words = data["words"][index].float()
        mask = data["word_mask"][index].float()[..., None]
        if self.args.text.startswith("cnn"):
            words = torch.tanh(self.word_cnn(words.transpose(1, 2))).transpose(1, 2) * mask
        if self.args.text == "cnn-max":
            pooled = words.masked_fill(mask == 0, -2.0).max(dim=1).values
        elif self.args.text == "sum":
            pooled = (words * mask).sum(1)
        else:
            pooled = words.sum(1) / mask.sum(1).clamp_min(1.0)
        return self.norm(pooled)

    def classify(self, data: dict[str, Any], index: torch.Tensor) -> torch.Tensor:
        features = self.encoder(frames_of(data, index))  # (B, C, G, G)
        return self.classifier(mask_average(features, target_masks(data, index)[:, None]))

    def ground(self, data: dict[str, Any], index: torch.Tensor) -> torch.Tensor:
        features = self.encoder(frames_of(data, index))  # (B, C, G, G)
        sentence = self.sentence(data, index)  # (B, D)
        score = torch.einsum("bchw,bc->bhw", features, self.project(sentence))[:, None]
        if self.args.side != "none":
            parts = [features]
            b, _, g, _ = features.shape
            if "coords" in self.args.side:
                axis = torch.linspace(-1.0, 1.0, g)
                yy, xx = torch.meshgrid(axis, axis, indexing="ij")
                parts.append(torch.stack([xx, yy])[None].expand(b, -1, -1, -1))
            if "sentence" in self.args.side:
                parts.append(sentence[:, :, None, None].expand(-1, -1, g, g))
            score = score + self.side(torch.cat(parts, dim=1))
        return F.interpolate(score, size=self.args.size, mode="bilinear", align_corners=False)[:, 0]


def frame_groups(data: dict[str, Any]) -> list[list[int]]:
    """The samples of each annotated frame that has two actors or more (one query each)."""
    groups: dict[tuple[str, int], list[int]] = collections.defaultdict(list)
    for i, (video, frame) in enumerate(zip(data["video_id"], data["frame_idx"], strict=True)):
        groups[(video, int(frame))].append(i)
    return [g for g in groups.values() if len(g) > 1]


@torch.no_grad()
def score(probe: Probe, data: dict[str, Any], labels: torch.Tensor) -> float:
    """Test accuracy (``classify``) or landing rate (``ground``)."""
    probe.eval()
    hits: list[bool] = []
    if probe.args.probe == "classify":
        for start in range(0, len(labels), 64):
            index = torch.arange(start, min(start + 64, len(labels)))
            hits += (probe.classify(data, index).argmax(1) == labels[index]).tolist()
    else:
        by_kind: dict[str, list[bool]] = collections.defaultdict(list)
        for group in frame_groups(data):
            index = torch.tensor(group)
            scores, masks = probe.ground(data, index), target_masks(data, index)
            # mean score of query q over actor a's mask, (Q, A); the query's own actor is a = q
            per_actor = (scores[:, None] * masks[None]).sum((2, 3)) / masks[None].sum(
                (2, 3)
            ).clamp_min(1.0)
            landed = (per_actor.argmax(1) == torch.arange(len(group))).tolist()
            for i, hit in zip(group, landed, strict=True):
                by_kind[data["kind"][i]].append(hit)
            hits += landed
        probe.landed_by_kind = {k: sum(v) / len(v) for k, v in sorted(by_kind.items())}
    probe.train()
    return sum(hits) / max(len(hits), 1)


def chance(data: dict[str, Any], labels: torch.Tensor, probe: str) -> float:
    """The most frequent class's share, or the mean of 1 / actors over the landing samples."""
    if probe == "classify":
        return float(torch.bincount(labels).max()) / max(len(labels), 1)
    sizes = [len(g) for g in frame_groups(data) for _ in g]
    return sum(1.0 / n for n in sizes) / max(len(sizes), 1)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    torch.manual_seed(args.seed)
    root = data_root(args)
    data = load_splits(root, args)
    manifest = json.loads((root / "toy_manifest.json").read_text())
    named = {s: attribute_labels(data[s], manifest, args.attribute) for s in ("train", "test")}
    classes = sorted(set(named["train"]) | set(named["test"]))
    labels = {s: torch.tensor([classes.index(c) for c in named[s]]) for s in named}
    for split in ("train", "test"):
        data[split]["oracle"] = F.one_hot(labels[split], len(classes)).float()
    data["test"]["kind"] = query_kinds(data["test"], manifest)  # only the test split is scored
    probe = Probe(args, len(classes))
    optimizer = torch.optim.Adam(probe.parameters(), lr=2e-3)
    train, n = data["train"], len(labels["train"])
    rows = [{"step": 0, "figure": score(probe, data["test"], labels["test"])}]
    start, step = time.perf_counter(), 0
    for epoch in range(args.epochs):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed * 1000 + epoch))
        for first in range(0, n - args.batch + 1, args.batch):
            index = order[first : first + args.batch]
            if args.probe == "classify":
                loss = F.cross_entropy(probe.classify(train, index) * 10, labels["train"][index])
            else:
                loss = F.binary_cross_entropy_with_logits(
                    probe.ground(train, index), target_masks(train, index),
                    pos_weight=torch.tensor(1.5),
                )  # fmt: skip
                if args.aux:  # the classify probe's loss on the same encoder, beside the score
                    logits = probe.classify(train, index) * ACTION_LOGIT_SCALE
                    loss = loss + args.aux * F.cross_entropy(logits, labels["train"][index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step in (300, 700):
                rows.append({"step": step, "figure": score(probe, data["test"], labels["test"])})
        rows.append({"step": step, "figure": score(probe, data["test"], labels["test"])})
    base = chance(data["test"], labels["test"], args.probe)
    what = "accuracy" if args.probe == "classify" else "lands"
    print(f"[{args.tag}] {args.probe} {args.attribute} text={args.text} norm={args.norm} "
          f"side={args.side}: {n} train samples, chance {base:.3f}")  # fmt: skip
    print(f"| step | {what} |\n|---:|---:|")
    for row in rows:
        print(f"| {row['step']} | {row['figure']:.3f} |")
    if args.probe == "ground":
        kinds = ", ".join(f"{k} {v:.3f}" for k, v in probe.landed_by_kind.items())
        print(f"lands by what the query names, at the end: {kinds}")
    print(f"({time.perf_counter() - start:.0f} s)", flush=True)
    if args.quick:
        require(0.0 < base <= 1.0, f"chance level {base} is not a fraction")
        for row in rows:
            require(0.0 <= row["figure"] <= 1.0, f"{what} {row['figure']} is not a fraction")
        again = score(probe, data["test"], labels["test"])
        require(again == rows[-1]["figure"], f"scoring twice differs: {rows[-1]} vs {again}")
        if args.probe == "ground":
            by_kind = probe.landed_by_kind
            require(bool(by_kind), "no landing figure by kind")
            require(all(0.0 <= v <= 1.0 for v in by_kind.values()), f"by kind: {by_kind}")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="8 tiny videos, 1 epoch: CI's check")
    p.add_argument("--probe", choices=("classify", "ground"), default="ground")
    p.add_argument(
        "--attribute", choices=("motion", "colour", "shape", "code"), default="motion",
        help="what classify (and --aux) names; code: A2D's actor-action class of the actor",
    )  # fmt: skip
    p.add_argument("--text", choices=TEXTS, default="mean")
    p.add_argument("--norm", choices=("bn", "none"), default="bn")
    p.add_argument("--side", choices=SIDES, default="none")
    p.add_argument(
        "--aux",
        type=float,
        default=0.0,
        help="ground: also train the encoder to name the target's --attribute (classify's "
        "loss), with this weight",
    )
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--videos", type=int, default=2000)
    p.add_argument("--video-frames", default="16,24")
    p.add_argument("--toy", default='{"single_contrast": true, "max_actors": 3, '
                   '"contrasts": ["motion"]}')  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="data/demo_study", help="parent folder of generated data")
    p.add_argument("--tag", default="probe")
    args = p.parse_args()
    # demo_study's data settings (data_root names the data by them)
    args.size, args.frames, args.frame_stride = 64, 4, 1
    args.test_fraction, args.val_fraction = 0.15, 0.1
    began = time.perf_counter()
    if args.quick:
        args.videos, args.video_frames, args.size, args.epochs = 8, "8,12", 32, 1
        args.data = tempfile.mkdtemp(prefix="acga-grounding-probe-quick-")
        atexit.register(shutil.rmtree, args.data, ignore_errors=True)
    torch.set_num_threads(1)
    if not args.quick:
        run(args)
        return
    for probe, side, aux in (
        ("classify", "none", 0.0),
        ("ground", "objectness+coords+sentence", 1.0),
    ):
        run(argparse.Namespace(**{**vars(args), "probe": probe, "side": side, "aux": aux}))
    passed("grounding_probe", time.perf_counter() - began)


if __name__ == "__main__":
    main()
