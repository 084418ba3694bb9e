"""The shipped small ACGA checkpoint reads the sentence: the query, not the clip, picks the actor.

Fresh two-actor clips (generated here, seeded, by the same generator as the checkpoint's training
data: ``write_a2d(sentence_only=True)``) are queried once per actor. The predicted mask must land
on the actor named (higher IoU with it than with the other actor) in most clips, and a query
borrowed from another clip must do clearly worse, so a model that ignores the sentence (or the
wrong checkpoint) fails. The checkpoint and its word vectors come from
``scripts/train_sentence_checkpoint.py`` (see ``tests/assets/README.md``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from acga_lightning import ACGASegmenter
from acga_lightning.data.collate import collate_samples
from acga_lightning.data.datasets.a2d import MASKS, A2DSentences, read_a2d_mask
from acga_lightning.data.io.words import encode_query, load_word_vectors

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

ASSETS = Path(__file__).parent / "assets"
CHECKPOINT = ASSETS / "sentence_acga.ckpt"
WORD2VEC = ASSETS / "sentence_word2vec.bin"


@pytest.fixture(scope="module")
def model() -> ACGASegmenter:
    model = ACGASegmenter.load_from_checkpoint(CHECKPOINT, map_location="cpu")
    return model.eval()


@pytest.fixture(scope="module")
def clips(toy_a2d, model: ACGASegmenter) -> dict:
    """Per (video, frame) with both actors: the two samples and both actors' masks."""
    hp = model.hparams
    root = toy_a2d(
        num_videos=16, seed=1234, height=hp.frame_size,
        width=hp.frame_size, num_frames=(12, 16), annotated_per_video=2, test_fraction=0.5,
        quirks=False, word2vec=False, min_actors=2, max_actors=2, sentence_only=True,
    )  # fmt: skip
    vectors = load_word_vectors(WORD2VEC)
    pairs: dict[tuple[str, int], dict] = {}
    for split in ("train", "test"):
        data = A2DSentences(
            root, split, num_frames=hp.num_frames, frame_size=hp.frame_size,
            word_vectors=vectors, max_words=12, index_cache=False,
        )  # fmt: skip
        assert data.word_stats.oov == 0  # the shipped vectors cover the generator's vocabulary
        for i in range(len(data)):
            sample = data[i]
            pairs.setdefault((sample["video_id"], sample["frame_idx"]), {})[
                sample["instance_id"]
            ] = sample
    pairs = {k: v for k, v in pairs.items() if len(v) == 2}
    masks = {
        k: [read_a2d_mask(root / MASKS / k[0] / f"{k[1]:05d}.h5", j) for j in range(2)]
        for k in pairs
    }
    return {"pairs": pairs, "masks": masks, "vectors": vectors}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@torch.no_grad()
def predict(model: ACGASegmenter, samples: list[dict]) -> list[np.ndarray]:
    batch = collate_samples(samples)
    logits = model(batch["words"], batch["word_mask"], frames=batch["frames"])["logits"][-1]
    masks, _ = model.predict_masks(logits, batch["orig_size"])
    return [m.numpy() for m in masks]


def named_actor_hits(model: ACGASegmenter, clips: dict, queries: dict) -> tuple[float, float]:
    """Share of queries whose mask overlaps the actor named more than the other actor, and the
    mean IoU margin (named minus other) over all queries."""
    hits, margins = [], []
    for key, pair in clips["pairs"].items():
        samples = []
        for k in (0, 1):
            words, word_mask, _ = encode_query(queries[key][k], clips["vectors"], max_words=12)
            samples.append({**pair[k], "words": words, "word_mask": word_mask})
        preds = predict(model, samples)
        for k in (0, 1):
            own, other = (iou(preds[k], clips["masks"][key][j]) for j in (k, 1 - k))
            hits.append(own > other)
            margins.append(own - other)
    return float(np.mean(hits)), float(np.mean(margins))


def test_the_query_moves_the_mask_onto_the_actor_named(model: ACGASegmenter, clips: dict) -> None:
    assert len(clips["pairs"]) >= 16
    own = {k: [p[0]["query"], p[1]["query"]] for k, p in clips["pairs"].items()}
    hit_rate, margin = named_actor_hits(model, clips, own)
    assert hit_rate >= 0.65, hit_rate
    assert margin >= 0.15, margin
    # Asking each actor's clip with the other actor's query moves the mask to the other actor.
    swapped = {k: [q[1], q[0]] for k, q in own.items()}
    swapped_rate, swapped_margin = named_actor_hits(model, clips, swapped)
    assert swapped_rate <= 1 - hit_rate + 0.05 and swapped_margin <= -0.15


def test_a_query_from_another_clip_does_not_pass(model: ACGASegmenter, clips: dict) -> None:
    keys = sorted(clips["pairs"])
    own = {k: [p[0]["query"], p[1]["query"]] for k, p in clips["pairs"].items()}
    rng = np.random.default_rng(0)
    other_videos = {k: [q for j in keys if j[0] != k[0] for q in own[j]] for k in keys}
    foreign = {k: list(rng.choice(other_videos[k], size=2, replace=False)) for k in keys}
    hit_rate, margin = named_actor_hits(model, clips, own)
    foreign_rate, foreign_margin = named_actor_hits(model, clips, foreign)
    assert foreign_rate <= hit_rate - 0.15, (foreign_rate, hit_rate)
    assert foreign_margin <= margin - 0.15, (foreign_margin, margin)
