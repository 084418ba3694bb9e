"""Referring video object segmentation readers: Ref-YouTube-VOS and Ref-DAVIS17.

Both share one on-disk format (as MTTR and ReferFormer prepare Ref-DAVIS17), under ``root``:

- ``<split>/JPEGImages/<video>/<frame>.jpg``: the frames;
- ``<split>/Annotations/<video>/<frame>.png``: palette PNGs whose pixel values are object ids
  (0 background, 255 void: pixels every metric ignores). Ref-YouTube-VOS ``valid`` has none:
  its masks are scored by the benchmark's server from a submission (:mod:`.ref_vos_submission`);
- ``<split>/meta.json``: ``{"videos": {video: {"objects": {obj_id: {"category", "frames"}}}}}``
  (optional; when present every expression's object must be listed in it);
- ``meta_expressions/<split>/meta_expressions.json``:
  ``{"videos": {video: {"expressions": {exp_id: {"exp", "obj_id"}}, "frames": [frame, ...]}}}``.

One sample per (video, expression, listed frame): the ``num_frames`` window of listed frames around
it (clamped at the ends, so the frame sits at index ``T // 2``), the expression and, where the
split has masks, the object's mask (``label == obj_id``) and the void pixels. Samples follow the
sample contract (:class:`~acga_lightning.data.contract.Sample`), with ``frame_idx`` the frame's
number (``int`` of its name) and more keys: ``expression_id`` (stable int, groups an expression's
frames for J&F), ``exp_id`` and ``frame_name`` (the names a submission uses) and ``void`` (bool (h,
w), where masks exist and no ``transform`` is set). Without masks, ``mask``, ``orig_mask`` and
``void`` are left out.

Bad input: in ``strict`` mode the first fault raises :class:`RefVOSSampleError` naming the file
(and video / expression); otherwise the samples it touches are dropped at index time and counted
by reason in ``dataset.skipped``: ``missing_frame`` (a listed frame without its JPEG, counted per
expression), ``missing_mask`` (a listed frame without its PNG in a split with masks),
``empty_query``, ``bad_obj_id`` (missing or not an integer where masks exist), ``unknown_object``
(not in ``meta.json``), ``no_frames`` (a video listing no frames). A file that is not JSON or
lacks ``videos`` raises at once.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from acga_lightning.data.contract import Sample
from acga_lightning.data.datasets.base import ClipReader
from acga_lightning.data.io.video import clip_indices
from acga_lightning.data.io.words import tokenize
from acga_lightning.data.sample import (
    SkipCounter,
    make_sample_id,
    normalise_query,
)
from acga_lightning.errors import DataError

log = logging.getLogger(__name__)

VOID = 255


class RefVOSSampleError(DataError):
    """A bad sample in strict mode; the message names the file."""


def expressions_path(root: Path, split: str) -> Path:
    return root / "meta_expressions" / split / "meta_expressions.json"


def read_json_videos(path: Path) -> dict[str, Any]:
    """The ``videos`` mapping of a meta file, with a clear error for a missing or bad file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    try:
        with open(path, encoding="utf-8-sig") as f:
            data = json.load(f)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not readable JSON ({error})") from error
    videos = data.get("videos") if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        raise DataError(f"{path}: expected an object with a 'videos' mapping")
    return videos


def read_labels(path: str | Path) -> np.ndarray:
    """An annotation PNG as its (H, W) uint8 label map (palette indices or grey levels)."""
    with Image.open(path) as image:
        if image.mode not in ("P", "L"):
            raise RefVOSSampleError(
                f"{path}: an annotation PNG holds object ids (palette or grey), got mode "
                f"{image.mode}"
            )
        return np.asarray(image, dtype=np.uint8)


def read_frame(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))  # (H, W, 3) uint8


def window(position: int, num_listed: int, num_frames: int, stride: int = 1) -> list[int]:
    """Positions of the ``num_frames`` listed frames around 0-based ``position`` (every
    ``stride``-th, as :func:`~acga_lightning.data.io.video.clip_indices`), clamped to the ends."""
    return [min(max(i, 0), num_listed - 1) for i in clip_indices(position + 1, num_frames, stride)]


class _IndexBuilder:
    def __init__(self, root: Path, split: str, strict: bool, name: str) -> None:
        self.root, self.split, self.strict = root, split, strict
        self.skipped = SkipCounter(f"{name}[{split}] skipped")
        self.listed: dict[str, list[str]] = {}  # each kept video's listed frames, in order

    def fail(self, reason: str, detail: str, n: int = 1) -> None:
        if self.strict:
            raise RefVOSSampleError(f"{reason}: {detail}")
        self.skipped.add(reason, detail, n)

    def build(self, has_masks: bool) -> list[dict[str, Any]]:
        source = expressions_path(self.root, self.split)
        videos = read_json_videos(source)
        meta_path = self.root / self.split / "meta.json"
        objects = read_json_videos(meta_path) if meta_path.is_file() else None
        records: list[dict[str, Any]] = []
        for vid in sorted(videos):
            entry = videos[vid]
            frames = entry.get("frames") if isinstance(entry, dict) else None
            exps = entry.get("expressions") if isinstance(entry, dict) else None
            if not isinstance(frames, list) or not isinstance(exps, dict):
                raise ValueError(f"{source}: video {vid!r} needs 'frames' (list), 'expressions'")
            if not frames:
                self.fail("no_frames", f"{source}: video {vid} lists no frames", len(exps))
                continue
            names = [str(f) for f in frames]
            missing = [n for n in names if not self._jpeg(vid, n).is_file()]
            if missing:
                self.fail(
                    "missing_frame", f"{self._jpeg(vid, missing[0])} (video {vid})", len(exps)
                )
                continue
            if has_masks:
                absent = [n for n in names if not self._png(vid, n).is_file()]
                if absent:
                    self.fail("missing_mask", f"{self._png(vid, absent[0])}", len(exps))
                    continue
            self.listed[vid] = names
            for exp_id in sorted(exps, key=_natural):
                record = self._expression(source, vid, exp_id, exps[exp_id], has_masks, objects)
                if record is not None:
                    records.extend(
                        {**record, "position": i, "frame_name": name,
                         "frame_idx": int(name) if name.isdigit() else i}
                        for i, name in enumerate(names)
                    )  # fmt: skip
        return records

    def _expression(
        self, source: Path, vid: str, exp_id: str, exp: Any, has_masks: bool, objects: Any
    ) -> dict[str, Any] | None:
        where = f"{source}: video {vid} expression {exp_id}"
        text = exp.get("exp") if isinstance(exp, dict) else None
        if not isinstance(text, str) or not tokenize(text):
            self.fail("empty_query", where)
            return None
        obj_id = exp.get("obj_id")
        if has_masks:
            if obj_id is None or not str(obj_id).strip().isdigit():
                self.fail("bad_obj_id", f"{where}: obj_id {obj_id!r}")
                return None
            obj_id = int(str(obj_id).strip())
            known = (objects or {}).get(vid, {}).get("objects") if objects is not None else None
            if objects is not None and (not isinstance(known, dict) or str(obj_id) not in known):
                self.fail(
                    "unknown_object", f"{where}: obj_id {obj_id} not in {self.split}/meta.json"
                )
                return None
        else:
            obj_id = int(obj_id) if str(obj_id).strip().isdigit() else -1
        return {"video_id": vid, "exp_id": str(exp_id), "obj_id": obj_id,
                "query": normalise_query(text)}  # fmt: skip

    def _jpeg(self, vid: str, name: str) -> Path:
        return self.root / self.split / "JPEGImages" / vid / f"{name}.jpg"

    def _png(self, vid: str, name: str) -> Path:
        return self.root / self.split / "Annotations" / vid / f"{name}.png"


def _natural(key: str) -> tuple[int, str]:
    return (int(key), key) if str(key).isdigit() else (1 << 62, str(key))


class ReferringVOS(ClipReader):
    """Ref-YouTube-VOS / Ref-DAVIS17 samples (see the module docstring for layout and keys).

    Args:
        root: the folder holding ``<split>/`` and ``meta_expressions/``.
        split: ``"train"`` or ``"valid"`` (any folder name the root has).
        num_frames, frame_size, word_vectors, max_words, transform, resize, strict,
            frames_dtype, frame_stride: see :class:`~acga_lightning.data.datasets.base.ClipReader`
            (the stride counts listed frames).
        videos: only these videos (a held-out part of train, say); None: every video.
        exclude_first_last: leave each video's first and last listed frame out (the DAVIS-2017
            semi-supervised evaluation does, and Ref-DAVIS17 results follow it).
        name: the dataset's name in logs and sample ids (``ytvos``, ``davis``).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        videos: list[str] | None = None,
        exclude_first_last: bool = False,
        name: str = "ref_vos",
        **settings: Any,
    ) -> None:
        super().__init__(root, f"{name}[{split}]", **settings)
        self.split, self.dataset_name = split, name
        self.has_masks = (self.root / split / "Annotations").is_dir()
        builder = _IndexBuilder(self.root, split, self.strict, name)
        records = builder.build(self.has_masks)
        self.listed = builder.listed
        if videos is not None:
            unknown = sorted(set(videos) - set(self.listed))
            if unknown:
                raise ValueError(
                    f"videos: {unknown[:5]} not in {expressions_path(self.root, split)}"
                )
            kept = set(videos)
            records = [r for r in records if r["video_id"] in kept]
        if exclude_first_last:
            records = [
                r for r in records
                if 0 < r["position"] < len(self.listed[r["video_id"]]) - 1
            ]  # fmt: skip
        self.keep_index(records, builder.skipped.as_dict())

    def expressions(self) -> dict[tuple[str, str], list[int]]:
        """``{(video, exp_id): [sample index, ...]}`` in frame order."""
        groups: dict[tuple[str, str], list[int]] = {}
        for i, r in enumerate(self.records):
            groups.setdefault((r["video_id"], r["exp_id"]), []).append(i)
        return groups

    def sample_without_frames(self, index: int) -> dict[str, Any]:
        """Sample ``index`` with everything but ``frames``, decoding no JPEG (the feature cache)."""
        sample = self._sample(index, decode=False)
        sample.pop("frames")
        return sample

    def __getitem__(self, index: int) -> Sample:
        return self._sample(index, decode=True)

    def _sample(self, index: int, decode: bool) -> Sample:
        r = self.records[index]
        names = self.listed[r["video_id"]]
        jpegs = self.root / self.split / "JPEGImages" / r["video_id"]
        positions = window(r["position"], len(names), self.num_frames, self.frame_stride)
        if decode:
            frames = np.stack([read_frame(jpegs / f"{names[p]}.jpg") for p in positions])
        else:  # one blank frame of the frame's size (from its header): no pixel is needed
            with Image.open(jpegs / f"{r['frame_name']}.jpg") as image:
                size = (image.height, image.width)
            frames = np.zeros((1, *size, 3), dtype=np.uint8)
        h, w = frames.shape[1:3]  # (T, h, w, 3)
        void = None
        if self.has_masks:
            path = self.root / self.split / "Annotations" / r["video_id"] / f"{r['frame_name']}.png"
            labels = read_labels(path)
            if labels.shape != (h, w):
                raise RefVOSSampleError(
                    f"{path}: annotation {labels.shape} but frame {jpegs}/{r['frame_name']}.jpg "
                    f"is {(h, w)}"
                )
            orig_mask, void = labels == r["obj_id"], labels == VOID
        else:
            orig_mask = np.zeros((h, w), dtype=bool)
        name = self.dataset_name
        sample = self.build(
            frames, orig_mask, r["query"], self.transform if self.has_masks else None,
            video_id=r["video_id"], frame_idx=r["frame_idx"], instance_id=max(r["obj_id"], 0),
            sample_id=make_sample_id(name, r["video_id"], r["exp_id"], r["frame_name"]),
        )  # fmt: skip
        sample["expression_id"] = make_sample_id(name, r["video_id"], r["exp_id"])
        sample["exp_id"] = r["exp_id"]
        sample["frame_name"] = r["frame_name"]
        if not self.has_masks:
            for key in ("mask", "orig_mask"):
                sample.pop(key)
        elif self.transform is None:  # void pixels are for scoring, never augmented
            sample["void"] = torch.from_numpy(void)
        return sample


def check_ref_vos(root: Path, report: Any, progress: bool = True) -> None:
    """``acga check-data --format ytvos|davis``: the readers' own index checks, then sizes.

    Every split under ``meta_expressions/`` is indexed exactly as :class:`ReferringVOS` indexes
    it (so check-data finds what the reader would skip); then each listed frame's JPEG and
    annotation PNG are opened (headers only): unreadable files, PNGs that are not label maps and
    sizes that differ are errors.
    """
    from tqdm.auto import tqdm

    splits = sorted(p.name for p in (root / "meta_expressions").glob("*") if p.is_dir())
    if not splits:
        report.error("missing_file", root / "meta_expressions", "no split folders")
        return
    for split in splits:
        builder = _IndexBuilder(root, split, strict=False, name=report.format)
        has_masks = (root / split / "Annotations").is_dir()
        try:
            records = builder.build(has_masks)
        except (OSError, ValueError) as error:
            report.error("bad_meta", expressions_path(root, split), str(error))
            continue
        for reason, count in builder.skipped.as_dict().items():
            detail = builder.skipped.first_details[reason]
            report.error(reason, detail.split(" ")[0].rstrip(":"), f"{count} samples: {detail}")
        frames = sorted({(r["video_id"], r["frame_name"]) for r in records})
        report.counts[f"{split} expressions"] = len({(r["video_id"], r["exp_id"]) for r in records})
        report.counts[f"{split} frames"] = len(frames)
        for vid, name in tqdm(frames, desc=f"check-data {split}", disable=not progress):
            jpeg = root / split / "JPEGImages" / vid / f"{name}.jpg"
            try:
                with Image.open(jpeg) as image:
                    size = (image.height, image.width)
            except OSError as error:
                report.error("corrupt_frame", jpeg, str(error))
                continue
            if not has_masks:
                continue
            png = root / split / "Annotations" / vid / f"{name}.png"
            try:
                with Image.open(png) as image:
                    mode, png_size = image.mode, (image.height, image.width)
            except OSError as error:
                report.error("corrupt_mask", png, str(error))
                continue
            if mode not in ("P", "L"):
                report.error("bad_mask", png, f"mode {mode}: object ids need a palette/grey PNG")
            elif png_size != size:
                report.error("mask_size_mismatch", png, f"{png_size} but the frame is {size}")
