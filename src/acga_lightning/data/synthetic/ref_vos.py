"""Generated data in the Ref-YouTube-VOS and Ref-DAVIS17 layouts.

The layout is :mod:`acga_lightning.data.datasets.ref_vos`'s. Each video is a scene of :mod:`.scenes`
rendered to JPEG frames; its annotations are palette PNGs whose pixel values are object ids (the
actor's index + 1, 0 background); every actor gets one expression that fits it alone
(:func:`~.text.describe`). Ref-YouTube-VOS names frames by their number in the full video, every 5th
(``00000.jpg``, ``00005.jpg``, ...), and its ``valid`` split has no public masks; Ref-DAVIS17
numbers every frame and ships masks for both splits, with a ring of void pixels (255) around one
object per video, as DAVIS marks uncertain pixels. ``toy_manifest.json`` records what was generated;
no reader needs it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from acga_lightning.data.synthetic.scenes import (
    SHAPES,
    check_video_settings,
    render_frame,
    sample_scene,
)
from acga_lightning.data.synthetic.text import describe, vocabulary_sentences, write_word2vec

FORMATS = ("ytvos", "davis")
VOID = 255
# A palette like DAVIS's: index 0 black, then distinct colours; 255 white (void).
PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0, 0, 0, 128, 128, 0, 128, 0, 128, 128]
PALETTE += [128, 128, 128] * (255 - len(PALETTE) // 3) + [255, 255, 255]


def write_palette_png(path: Path, labels: np.ndarray) -> None:
    """Save an (H, W) uint8 label map as a palette PNG (pixel value = object id)."""
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(PALETTE)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _label_map(visible: list[np.ndarray]) -> np.ndarray:
    labels = np.zeros(visible[0].shape, np.uint8)
    for k, mask in enumerate(visible):
        labels[mask] = k + 1
    return labels


def _void_ring(mask: np.ndarray) -> np.ndarray:
    """The pixels just outside ``mask`` (4-neighbourhood): where DAVIS-like void goes."""
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    grown[:, 1:] |= mask[:, :-1]
    grown[:, :-1] |= mask[:, 1:]
    return grown & ~mask


@dataclass(frozen=True)
class RefVOSSynthetic:
    """Settings of generated Ref-YouTube-VOS / Ref-DAVIS17 data: the arguments of
    :func:`write_ref_vos` but the format, which the datamodule gives."""

    num_videos: int = 6
    seed: int = 0
    height: int = 96
    width: int = 128
    num_frames: tuple[int, int] = (6, 10)
    valid_fraction: float = 0.34
    min_actors: int = 2
    max_actors: int = 3
    word2vec: bool = True

    def __post_init__(self) -> None:
        # at least a train and a valid video
        check_video_settings(
            self.num_videos, self.height, self.width, tuple(self.num_frames), min_videos=2
        )


def write_ref_vos(
    root: str | Path,
    format: Literal["ytvos", "davis"] = "ytvos",
    settings: RefVOSSynthetic | None = None,
    **options: Any,
) -> Path:
    """Write a small Ref-YouTube-VOS (``ytvos``) or Ref-DAVIS17 (``davis``) dataset; returns root.

    ``num_frames`` is the number of listed frames per video (lo, hi). The same arguments write
    the same files.
    """
    if format not in FORMATS:
        raise ValueError(f"format: expected one of {FORMATS}, got {format!r}")
    s = settings if settings is not None else RefVOSSynthetic(**options)
    num_videos, seed, height, width, num_frames = (
        s.num_videos, s.seed, s.height, s.width, s.num_frames)  # fmt: skip
    valid_fraction, min_actors, max_actors = s.valid_fraction, s.min_actors, s.max_actors
    root = Path(root)
    rng = np.random.default_rng(seed)
    num_valid = min(max(int(round(num_videos * valid_fraction)), 1), num_videos - 1)
    valid = set(rng.permutation(num_videos)[:num_valid].tolist())
    step = 5 if format == "ytvos" else 1
    metas: dict[str, dict] = {"train": {}, "valid": {}}
    expressions: dict[str, dict] = {"train": {}, "valid": {}}
    queries: list[str] = []
    manifest: dict[str, dict] = {}
    for k in range(num_videos):
        split = "valid" if k in valid else "train"
        vid = f"{int(rng.integers(16**9)):09x}"[:8] + f"{k:02d}"
        t = int(rng.integers(num_frames[0], num_frames[1] + 1))
        n = int(rng.integers(min_actors, max_actors + 1))
        scene = sample_scene(rng, num_actors=n, num_frames=t, aspect=width / height)
        names = [f"{i * step:05d}" for i in range(t)]
        objects: dict[str, dict] = {str(a + 1): {"category": "", "frames": []} for a in range(n)}
        void_object = int(rng.integers(n)) if format == "davis" else None
        masks_written = split == "train" or format == "davis"
        image_dir = root / split / "JPEGImages" / vid
        image_dir.mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(names):
            rgb, visible = render_frame(scene, i, height, width)
            Image.fromarray(rgb).save(image_dir / f"{name}.jpg", quality=95)
            for a, mask in enumerate(visible):
                if mask.any():
                    objects[str(a + 1)]["frames"].append(name)
            if masks_written:
                labels = _label_map(visible)
                if void_object is not None:
                    labels[_void_ring(visible[void_object]) & (labels == 0)] = VOID
                write_palette_png(root / split / "Annotations" / vid / f"{name}.png", labels)
        for a, actor in enumerate(scene.actors):
            objects[str(a + 1)]["category"] = SHAPES[actor.shape][0]
        exps = {}
        for a in range(n):
            query, _ = describe(scene, a, rng)
            queries.append(" ".join(query.lower().split()))
            exps[str(a)] = {"exp": query}
            if split == "train" or format == "davis":
                exps[str(a)]["obj_id"] = str(a + 1)
        expressions[split][vid] = {"expressions": exps, "frames": names}
        metas[split][vid] = {"objects": objects}
        void_id = None if void_object is None else void_object + 1
        manifest[vid] = {"split": split, "num_frames": t, "num_actors": n, "void_object": void_id}
    for split in ("train", "valid"):
        if split == "train" or format == "davis":
            _write_json(root / split / "meta.json", {"videos": metas[split]})
        _write_json(
            root / "meta_expressions" / split / "meta_expressions.json",
            {"videos": expressions[split]},
        )
    if s.word2vec:
        write_word2vec(root / "word2vec.bin", queries + vocabulary_sentences(), seed=seed)
    _write_json(root / "toy_manifest.json", {"format": format, "seed": seed, "videos": manifest})
    return root


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
