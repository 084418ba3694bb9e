"""README's picture: the shipped small checkpoint on a generated two-actor clip, with its word maps.

    python scripts/readme_picture.py [--out docs/images/segmented_clip.png] [--seed 7]

Loads ``tests/assets/sentence_acga.ckpt`` (CPU), writes a few fresh two-actor clips with the
generator the checkpoint was trained on (``write_a2d(sentence_only=True)``) into a temporary
folder, and draws, for the sample whose prediction best matches its actor (among queries of at
least four words), the overlay and VGLA's attention per word (``viz.render_sample``).
Seconds on a CPU; the same picture for the same seed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402

from acga_lightning import ACGASegmenter, viz  # noqa: E402
from acga_lightning.data.collate import collate_samples  # noqa: E402
from acga_lightning.data.datasets.a2d import A2DSentences  # noqa: E402
from acga_lightning.data.io.words import load_word_vectors  # noqa: E402
from acga_lightning.data.synthetic import write_a2d  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "tests" / "assets"


@torch.no_grad()
def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs/images/segmented_clip.png")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ckpt", type=Path, default=ASSETS / "sentence_acga.ckpt")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = ACGASegmenter.load_from_checkpoint(args.ckpt, map_location="cpu").eval()
    hp = model.hparams
    vectors = load_word_vectors(ASSETS / "sentence_word2vec.bin")
    with tempfile.TemporaryDirectory() as tmp:
        root = write_a2d(
            Path(tmp) / "clips", num_videos=8, seed=args.seed, height=hp.frame_size,
            width=hp.frame_size, num_frames=(12, 16), test_fraction=0.5, quirks=False,
            word2vec=False, min_actors=2, max_actors=2, sentence_only=True,
        )  # fmt: skip
        data = A2DSentences(root, "test", num_frames=hp.num_frames, frame_size=hp.frame_size,
                            word_vectors=vectors, max_words=12, index_cache=False)  # fmt: skip
        samples = [data[i] for i in range(len(data))]
    batch = collate_samples(samples)
    out = model(batch["words"], batch["word_mask"], frames=batch["frames"])
    masks, _ = model.predict_masks(out["logits"][-1])
    words = out["attention"].word_attention  # (B, G*G, N)
    best, best_iou = None, -1.0
    for i, sample in enumerate(samples):
        iou = viz.mask_iou(masks[i].numpy(), sample["mask"].numpy() > 0.5)
        if int(sample["word_mask"].sum()) >= 4 and iou > best_iou:
            best, best_iou = i, iou
    if best is None:
        raise SystemExit("no sample with a query of four words or more: try another --seed")
    sample, word_mask = samples[best], batch["word_mask"][best].bool().numpy()
    labels = viz.word_labels(sample["query"], int(word_mask.sum()), vectors)
    picture = viz.render_sample(
        viz.clip_frame(sample["frames"]), masks[best].numpy(), sample["mask"].numpy() > 0.5,
        sample["query"], words[best].numpy(), labels, word_mask=word_mask,
    )  # fmt: skip
    path = viz.save_png(picture, args.out)
    print(f"{path}: {picture.shape[1]} x {picture.shape[0]}, {path.stat().st_size} bytes, "
          f"query {sample['query']!r}, IoU {best_iou:.2f}")  # fmt: skip
    return path


if __name__ == "__main__":
    main()
