"""Train the small ACGA checkpoint shipped in tests/assets/ (used by tests/test_reads_sentence.py).

    python scripts/train_sentence_checkpoint.py            # ~8 min on 2 idle CPU cores

Deterministic: the data (``write_a2d(sentence_only=True)``, seed 0), the weights' init (seed 0)
and the batch order (seed 0) are all fixed, and training runs on CPU. It trains the ACGA
configuration of ``benchmarks/ablation.py`` (same data folder, sizes and loop; seed 0, 25
epochs instead of the benchmark's 8) and writes:

- ``tests/assets/sentence_acga.ckpt``: ``{"state_dict", "hyper_parameters",
  "pytorch-lightning_version"}``, loadable by ``ACGASegmenter.load_from_checkpoint``;
- ``tests/assets/sentence_word2vec.bin``: the word vectors the model was trained with (the toy
  word2vec is trained on the dataset's queries too, so it is shipped rather than regenerated).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import ablation  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "tests" / "assets")
    p.add_argument("--root", type=Path, default=REPO / "data" / "ablation_300v_64px_s0")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--videos", type=int, default=300)
    args = p.parse_args(argv)
    bench = ablation.parse_args(
        ["--root", str(args.root), "--videos", str(args.videos), "--epochs", str(args.epochs)]
    )
    torch.set_num_threads(bench.threads)
    dm = ablation.generate(bench)
    train_data, test_data = (ablation.materialise(dm.datasets[s]) for s in ("train", "test"))
    torch.manual_seed(0)
    model = ablation.build_model(ablation.configurations(bench.width)["ACGA (+ATT)"], bench)
    ablation.train(model, train_data, seed=0, args=bench)
    result = ablation.evaluate(model, test_data)
    print({k: round(100 * v, 1) for k, v in result.items() if k != "num_samples"})
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": pl.__version__,
    }
    torch.save(checkpoint, args.out / "sentence_acga.ckpt")
    shutil.copyfile(args.root / "word2vec.bin", args.out / "sentence_word2vec.bin")
    print(f"wrote {args.out / 'sentence_acga.ckpt'} and {args.out / 'sentence_word2vec.bin'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
