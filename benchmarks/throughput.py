"""Training and inference throughput of ACGA, optimised vs the plain reference, in one process.

    python benchmarks/throughput.py                       # paper settings on a GPU
    python benchmarks/throughput.py --device cpu --size 64 --frames 8 --batch 2 --steps 2
    python benchmarks/throughput.py --quick   # CPU, 1 x 8 x 32 x 32, fp32 vs optimised eager

Rows: ``plain fp32`` (the model as the paper's code runs it: fp32, eager, no TF32, none of our
switches), ``plain bf16`` (the same under bf16 autocast) and ``optimised`` (every switch on:
space-to-depth stem, LGVA through SDPA, factorised text branch, channels_last, bf16 autocast,
torch.compile). Modes: ``cached`` (a training step from cached Mixed_4e features), ``full`` (a
training step from frames, frozen prefix) and ``inference`` (frames to masks).

TFLOP/s counts the *plain* model's FLOPs (torch.utils.flop_counter) per clip, so every row is
credited with the same useful work; the optimised path executes fewer. ``share`` is that rate
over the card's dense bf16 peak (``--peak-tflops``, default 790 as measured for an H200 / H100
matrix product here).

Invariant (every run; exit status 1 when it fails): with both in fp32, the optimised switches
give the plain model's logits (max difference under 1e-3).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import time
from collections import defaultdict
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402
from _checks import passed, require  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from acga_lightning import ACGASegmenter  # noqa: E402
from acga_lightning.perf import optimise_for_speed, segmenter_specs  # noqa: E402
from acga_lightning.segmenter import predict_foreground  # noqa: E402

MODES = ("cached", "full", "inference")


def build_model(args: argparse.Namespace, fast: bool) -> ACGASegmenter:
    torch.manual_seed(0)
    model = ACGASegmenter(**segmenter_specs(fast), num_frames=args.frames, frame_size=args.size)
    return model.to(args.device)


def make_inputs(args: argparse.Namespace, mode: str) -> dict[str, torch.Tensor]:
    g, t = args.size // 16, -(-args.frames // 4)
    gen = torch.Generator().manual_seed(0)
    batch = {
        "words": torch.randn(args.batch, 20, 300, generator=gen),
        "word_mask": torch.arange(20)[None].expand(args.batch, -1) < 8,
        "mask": (torch.rand(args.batch, args.size, args.size, generator=gen) > 0.8).float(),
    }
    if mode == "cached":
        batch["features"] = torch.randn(args.batch, 528, t, g, g, generator=gen)
    else:
        batch["frames"] = (
            torch.rand(args.batch, 3, args.frames, args.size, args.size, generator=gen) * 2 - 1
        )
    return {k: v.to(args.device) for k, v in batch.items()}


def step_function(model: Any, mode: str, bf16: bool, device: str):
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-4)
    autocast = (
        torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
        if bf16
        else contextlib.nullcontext()
    )

    def step(batch: dict[str, torch.Tensor]) -> None:
        inputs = {k: v for k, v in batch.items() if k != "mask"}
        if mode == "inference":
            with torch.no_grad(), autocast:
                logits = model(**inputs)["logits"][-1]
                predict_foreground(torch.sigmoid(logits.float())[:, 0])
            return
        with autocast:
            out = model(**inputs)
            loss = model.loss(out["logits"][: out["num_decoder_logits"]], batch["mask"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_steps(step, batch, args: argparse.Namespace) -> float:
    for _ in range(args.warmup):
        step(batch)
    synchronize(args.device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step(batch)
    synchronize(args.device)
    return (time.perf_counter() - start) / args.steps


def count_flops(model: ACGASegmenter, mode: str, batch, device: str) -> float:
    step = step_function(model, mode, bf16=False, device=device)
    with FlopCounterMode(display=False) as counter:
        step(batch)
    return counter.get_total_flops() / batch["words"].shape[0]


def part_breakdown(model: ACGASegmenter, batch, args: argparse.Namespace, bf16: bool) -> dict:
    """Forward time per part (eager), from hooks around each part."""
    parts = {
        "video encoder": model.video_encoder,
        "text encoder": model.text_encoder,
        "attention": model.attention,
        "decoder": model.decoder,
    }
    totals: dict[str, float] = defaultdict(float)
    starts: dict[str, float] = {}
    handles = []

    def make_hooks(name: str):
        def before(module, inputs, kwargs=None) -> None:
            synchronize(args.device)
            starts[name] = time.perf_counter()

        def after(module, inputs, output) -> None:
            synchronize(args.device)
            totals[name] += time.perf_counter() - starts[name]

        return before, after

    for name, module in parts.items():
        before, after = make_hooks(name)
        handles.append(module.register_forward_pre_hook(before))
        handles.append(module.register_forward_hook(after))
    step = step_function(model, "inference", bf16, args.device)
    step(batch)
    totals.clear()
    for _ in range(args.steps):
        step(batch)
    for handle in handles:
        handle.remove()
    return {k: v / args.steps for k, v in totals.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="CPU, tiny clip, one step, no compile: CI's check"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument(
        "--rows",
        nargs="+",
        default=["plain fp32", "plain bf16", "optimised eager", "optimised"],
        choices=["plain fp32", "plain bf16", "optimised eager", "optimised"],
    )
    parser.add_argument(
        "--no-compile", action="store_true", help="optimised row without torch.compile"
    )
    parser.add_argument("--peak-tflops", type=float, default=790.0)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    if args.quick:
        args.device, args.batch, args.frames, args.size = "cpu", 1, 8, 32
        args.steps, args.warmup, args.no_compile = 1, 0, True
        # the two rows the invariant compares (without compile "optimised" repeats "optimised
        # eager"; bf16 autocast still runs in the per-part timing below)
        args.rows = ["plain fp32", "optimised eager"]
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False  # the plain fp32 reference: no TF32
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"# device {device_name}; batch {args.batch}, {args.frames} x {args.size} x {args.size}")

    plain = build_model(args, fast=False)
    results: dict[tuple[str, str], dict[str, float]] = {}
    flops = {
        mode: count_flops(plain, mode, make_inputs(args, mode), args.device) for mode in args.modes
    }
    for row in args.rows:
        if row.startswith("optimised"):
            model = build_model(args, fast=True)
            model.load_state_dict(plain.state_dict())
            compile_ = row == "optimised" and not args.no_compile
            model = optimise_for_speed(model, compile=compile_, channels_last=True)
        else:
            model = copy.deepcopy(plain)
        bf16 = row != "plain fp32"
        for mode in args.modes:
            batch = make_inputs(args, mode)
            if args.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            seconds = time_steps(step_function(model, mode, bf16, args.device), batch, args)
            memory = (
                torch.cuda.max_memory_allocated() / 2**30
                if args.device.startswith("cuda")
                else float("nan")
            )
            clips = args.batch / seconds
            tflops = flops[mode] * clips / 1e12
            results[(row, mode)] = {"clips/s": clips, "TFLOP/s": tflops, "GiB": memory}
            print(f"  measured {row:11s} {mode:9s} {clips:8.2f} clips/s", flush=True)
        del model
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()

    print()
    peak = f"share of {args.peak_tflops:.0f}"
    print(f"| mode | row | clips/s | x plain fp32 | TFLOP/s | {peak} | peak GiB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for mode in args.modes:
        base = results.get(("plain fp32", mode), {}).get("clips/s")
        for row in args.rows:
            r = results[(row, mode)]
            ratio = f"{r['clips/s'] / base:.2f}" if base else "-"
            share = 100 * r["TFLOP/s"] / args.peak_tflops
            print(
                f"| {mode} | {row} | {r['clips/s']:.2f} | {ratio} | {r['TFLOP/s']:.1f} | "
                f"{share:.1f}% | {r['GiB']:.1f} |"
            )
    print()
    print("| mode | plain-model GFLOP per clip |")
    print("|---|---:|")
    for mode in args.modes:
        print(f"| {mode} | {flops[mode] / 1e9:.0f} |")

    print()
    fast_eager = build_model(args, fast=True)
    fast_eager.load_state_dict(plain.state_dict())
    fast_eager = optimise_for_speed(fast_eager, compile=False, channels_last=True)
    batch = make_inputs(args, "full")
    plain_parts = part_breakdown(plain, batch, args, bf16=False)
    fast_parts = part_breakdown(fast_eager, batch, args, bf16=True)
    print("| part (inference forward, ms per batch) | plain fp32 | optimised eager bf16 |")
    print("|---|---:|---:|")
    for part in plain_parts:
        print(f"| {part} | {1e3 * plain_parts[part]:.1f} | {1e3 * fast_parts[part]:.1f} |")

    with torch.no_grad():
        plain.eval(), fast_eager.eval()
        inputs = {k: v for k, v in make_inputs(args, "full").items() if k != "mask"}
        fast_fp32 = fast_eager.float()
        diff = (
            (plain(**inputs)["logits"][-1] - fast_fp32(**inputs)["logits"][-1]).abs().max().item()
        )
    print(f"\nmax |logit difference| plain vs optimised switches, both fp32: {diff:.2e}")
    require(diff < 1e-3, f"the optimised switches change the logits by {diff:.2e}")
    passed("throughput", time.perf_counter() - began)


if __name__ == "__main__":
    main()
