"""A2D-Sentences reader: one sample per (query, annotated frame in which its instance appears).

On-disk layout, under ``root``: ``Release/videoset.csv``,
``Release/clips320H/<vid>.mp4``, ``text_annotations/a2d_annotation.txt``,
``text_annotations/a2d_missed_videos.txt`` and
``text_annotations/a2d_annotation_with_instances/<vid>/<fid:05d>.h5``.

How the known faults are handled (counted in ``dataset.faults``, logged):

- the ``1 (copy)`` annotation row is dropped (``skipped["copy_row"]``);
- a frame listing an instance id twice (EadxBPmQvtg f25) uses the first mask for that id
  (``faults["duplicate_instance_id"]``, per frame);
- a frame with more masks than listed instances (95Nq6fQoP2o f32, ...) uses the masks aligned to
  the listed instances by position, ignoring the extra ones (``faults["extra_masks"]``, per frame);
- a single-instance frame stores ``reMask`` as a 2-D ``(W, H)`` array: it is transposed like the
  3-D ``(N, W, H)`` case;
- a frame whose ``id`` (the actor-action class of each mask) is absent, or not one whole number
  per mask, gives its samples ``action = -1``, which the actor-action loss leaves out
  (``faults["no_action_id"]``, per frame with a queried instance).

Each sample carries its target's actor-action class as ``action`` (``id``: ``actor * 10 +
action``, from 11 adult-climbing to 79 dog-none).

Bad samples: in ``strict`` mode they raise an error naming the file; otherwise they are dropped
at index time and counted by reason in ``dataset.skipped``: ``missing_video``, ``corrupt_video``
(cannot be opened or probed), ``missing_h5`` (a video with queries but no annotation frames:
counted per query; fewer h5 files than videoset.csv's annotated-frame count: counted per frame),
``bad_h5`` (unreadable h5), ``missing_mask`` (an instance listed without a mask),
``mask_size_mismatch`` (mask size != video size), ``missed_video`` (the official exclusion list),
``empty_query``, ``bad_videoset_row`` / ``bad_annotation_row`` (a row whose fields cannot be
used), ``duplicate_video``, ``duplicate_query``, ``unknown_video`` (queried, not in
videoset.csv), ``bad_instance_id``, ``frame_range`` (an h5 for a frame the video does not
have), ``mask_values`` (a float mask with NaN or values other than 0/1), ``h5_instance``
(instance ids that are not whole numbers). The field checks are
:mod:`.a2d_fields`, shared with ``acga check-data``. Corruption that only
shows when decoding (a truncated stream) raises
:class:`~acga_lightning.data.io.video.VideoReadError` naming the file in ``__getitem__``. A video
shorter than the window is not an error: the edge frames repeat.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm.auto import tqdm

from acga_lightning.data.caching.index import (
    fingerprint_files,
    load_cached_index,
    resolve_index_cache,
    save_cached_index,
)
from acga_lightning.data.check import CheckReport, probe_first_frame, read_checked_csv
from acga_lightning.data.contract import Sample
from acga_lightning.data.datasets.a2d_fields import (
    FieldError,
    check_annotation_header,
    frame_number,
    parse_annotation_row,
    parse_videoset_row,
    read_csv_rows,
    read_h5_frame,
)
from acga_lightning.data.datasets.base import ClipReader
from acga_lightning.data.io.video import VideoReadError, clip_indices, probe_video, read_window
from acga_lightning.data.io.words import tokenize
from acga_lightning.data.sample import (
    SkipCounter,
    make_sample_id,
    normalise_query,
)
from acga_lightning.errors import DataError

log = logging.getLogger(__name__)

SPLITS = {"train": 0, "test": 1}
VIDEOSET = "Release/videoset.csv"
CLIPS = "Release/clips320H"
ANNOTATION = "text_annotations/a2d_annotation.txt"
MISSED = "text_annotations/a2d_missed_videos.txt"
MASKS = "text_annotations/a2d_annotation_with_instances"


#: the reader's reason (``skipped`` key) for an h5 file :func:`read_h5_frame` rejects
H5_REASONS = {"corrupt_h5": "bad_h5", "h5_keys": "bad_h5", "mask_shape": "bad_h5",
              "h5_name": "bad_h5"}  # fmt: skip


class A2DSampleError(DataError):
    """A bad sample in strict mode; the message names the file (and line)."""


def read_a2d_mask(path: str | Path, mask_index: int) -> np.ndarray:
    """The ``mask_index``-th instance mask of an A2D h5 frame as bool ``(h, w)``.

    ``reMask`` is stored transposed: ``(N, W, H)``, or ``(W, H)`` when there is one instance.
    Only the one mask is read from the file.
    """
    with h5py.File(path, "r") as f:
        dset = f["reMask"]
        if dset.ndim == 2:
            if mask_index != 0:
                raise A2DSampleError(f"{path}: mask {mask_index} asked of a single-mask frame")
            m = dset[()]  # (W, H)
        else:
            m = dset[mask_index]  # (W, H)
    return np.ascontiguousarray(m.T != 0)  # (h, w)


def read_a2d_masks(path: str | Path) -> np.ndarray:
    """Every instance mask of an A2D h5 frame as bool ``(N, h, w)``, in one read.

    ``reMask`` is stored transposed: ``(N, W, H)``, or ``(W, H)`` when there is one instance.
    """
    with h5py.File(path, "r") as f:
        masks = np.asarray(f["reMask"])
    if masks.ndim == 2:
        masks = masks[None]  # (1, W, H)
    return np.ascontiguousarray(masks.transpose(0, 2, 1) != 0)  # (N, h, w)


class _IndexBuilder:
    """Builds the list of sample records of one split (see the module docstring for the rules)."""

    def __init__(self, root: Path, split: str, strict: bool) -> None:
        self.root, self.split, self.strict = root, split, strict
        self.skipped = SkipCounter(f"A2DSentences[{split}] skipped")
        self.faults = SkipCounter(f"A2DSentences[{split}] faults")
        self.annotated_frames: dict[str, int] = {}

    def fail(self, reason: str, detail: str, n: int = 1) -> None:
        if self.strict:
            raise A2DSampleError(f"{reason}: {detail}")
        self.skipped.add(reason, detail, n)

    def read_videoset(self) -> tuple[dict[str, int], set[str]]:
        path = self.root / VIDEOSET
        subsets: dict[str, int] = {}
        for line, row in self._rows(path):
            try:
                video = parse_videoset_row(row)
            except FieldError as err:
                self.fail("bad_videoset_row", f"{path}:{line}: {err.message}")
                continue
            if video.video_id in subsets:
                self.fail("duplicate_video", f"{path}:{line}: video {video.video_id} listed twice")
                continue
            subsets[video.video_id] = video.subset
            self.annotated_frames[video.video_id] = video.annotated_frames
        with open(self.root / MISSED, encoding="utf-8-sig") as f:
            missed = {line.strip() for line in f if line.strip()}
        return subsets, missed

    @staticmethod
    def _rows(path: Path) -> list[tuple[int, list[str]]]:
        try:
            return read_csv_rows(path)
        except FieldError as err:
            raise A2DSampleError(err.message) from err

    def read_queries(self, subsets: dict[str, int], missed: set[str]) -> dict[str, list]:
        """Queries of this split's videos: ``{video_id: [(instance_id, query), ...]}``."""
        path = self.root / ANNOTATION
        queries: dict[str, list[tuple[int, str]]] = defaultdict(list)
        rows = self._rows(path)
        try:
            check_annotation_header(path, rows)
        except FieldError as err:
            raise A2DSampleError(err.message) from err
        seen: set[tuple[str, int, str]] = set()
        for line, row in rows[1:]:
            where = f"{path}:{line}"
            try:
                vid, inst, query = parse_annotation_row(row)
            except FieldError as err:
                self.fail("bad_annotation_row", f"{where}: {err.message}")
                continue
            if vid not in subsets:
                self.fail("unknown_video", f"{where}: video {vid!r} is not in {VIDEOSET}")
                continue
            if subsets[vid] != SPLITS[self.split]:
                continue
            if vid in missed:
                self.skipped.add("missed_video", vid)
            elif inst == "1 (copy)":
                self.skipped.add("copy_row", f"{vid} instance_id {inst!r}")
            elif not inst.isdigit():
                self.fail("bad_instance_id", f"{where}: {vid} instance_id {inst!r}")
            elif not tokenize(query or ""):  # blank, or punctuation / symbols only
                self.fail("empty_query", f"{where}: {vid} instance {inst}")
            elif (vid, int(inst), normalise_query(query)) in seen:
                self.fail("duplicate_query", f"{where}: {vid} instance {inst} {query!r} again")
            else:
                seen.add((vid, int(inst), normalise_query(query)))
                queries[vid].append((int(inst), normalise_query(query)))
        return queries

    def video_records(self, vid: str, queries: list[tuple[int, str]]) -> list[dict[str, Any]]:
        h5_dir = self.root / MASKS / vid
        h5_files = sorted(h5_dir.glob("*.h5")) if h5_dir.is_dir() else []
        if not h5_files:
            self.fail("missing_h5", f"{h5_dir}: no annotated frames for {vid}", len(queries))
            return []
        lost = self.annotated_frames[vid] - len(h5_files)
        if lost > 0:  # the frames (and so the samples) cannot be known: count the frames
            self.fail(
                "missing_h5",
                f"{h5_dir}: {lost} of the {self.annotated_frames[vid]} annotated frames of {vid} "
                f"({VIDEOSET}) have no h5 file",
                lost,
            )
        records = []
        for path in h5_files:
            try:
                frame = read_h5_frame(path)
            except FieldError as err:
                self.fail(H5_REASONS.get(err.check, err.check), err.message)
                continue
            instances, num_masks = frame.instances, frame.num_masks
            if len(set(instances)) < len(instances):
                self.faults.add("duplicate_instance_id", str(path))
            if num_masks > len(instances):
                self.faults.add("extra_masks", str(path))
            elif num_masks < len(instances):  # which mask is whose cannot be known
                self.fail(
                    "missing_mask", f"{path}: {len(instances)} instances but {num_masks} masks"
                )
                continue
            if frame.codes is None and any(i in instances for i, _ in queries):
                self.faults.add("no_action_id", str(path))
            for instance_id, query in queries:
                if instance_id not in instances:
                    continue
                mask_index = instances.index(instance_id)  # the first mask for a repeated id
                if mask_index >= num_masks:
                    self.fail("missing_mask", f"{path}: no mask for instance {instance_id}")
                    continue
                action = -1 if frame.codes is None else frame.codes[mask_index]
                records.append(
                    dict(video_id=vid, frame_idx=frame.frame_idx, instance_id=instance_id,
                         query=query, mask_index=mask_index, height=frame.size[0],
                         width=frame.size[1], action=action)
                )  # fmt: skip
        return records

    def check_video(self, vid: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        path = self.root / CLIPS / f"{vid}.mp4"
        if not path.is_file():
            self.fail("missing_video", str(path), len(records))
            return []
        try:
            info = probe_video(path)
        except VideoReadError as err:
            self.fail("corrupt_video", str(err), len(records))
            return []
        kept = []
        for r in records:
            h5 = self.root / MASKS / vid / f"{r['frame_idx']:05d}.h5"
            if not 1 <= r["frame_idx"] <= info.num_frames:
                self.fail(
                    "frame_range",
                    f"{h5}: frame {r['frame_idx']} is outside the video's 1..{info.num_frames}",
                )
                continue
            if (r["height"], r["width"]) != (info.height, info.width):
                self.fail(
                    "mask_size_mismatch",
                    f"{self.root / MASKS / vid}/{r['frame_idx']:05d}.h5: mask "
                    f"{r['height']}x{r['width']} but video {path} is {info.height}x{info.width}",
                )
                continue
            kept.append({**r, "num_frames": info.num_frames})
        return kept

    def build(self) -> list[dict[str, Any]]:
        subsets, missed = self.read_videoset()
        queries = self.read_queries(subsets, missed)
        records = []
        for vid in sorted(queries):
            records.extend(self.check_video(vid, self.video_records(vid, queries[vid])))
        return records


def _dataset_files(root: Path) -> list[Path]:
    files = [root / VIDEOSET, root / ANNOTATION, root / MISSED]
    for sub in (MASKS, CLIPS):
        for dirpath, _, names in os.walk(root / sub):
            files.extend(Path(dirpath) / n for n in names)
    return files


class A2DSentences(ClipReader):
    """A2D-Sentences samples: a window of frames, the query and the target mask.

    Each sample is a :class:`~acga_lightning.data.contract.Sample`.

    The index (one small record per sample) is built once by scanning the h5 files' ``instance``
    keys and probing each video's header, then cached as JSON under ``index_cache`` (default: the
    user cache dir, never the dataset root); the cache is keyed by the files' sizes and mtimes.
    ``__getitem__`` decodes only the ``num_frames`` window and reads only the one mask.

    Args:
        root: the folder that holds ``Release/`` and ``text_annotations/``.
        split: ``"train"`` or ``"test"`` (videoset.csv's last column, 0 or 1).
        num_frames, frame_size, word_vectors, max_words, transform, resize, strict,
            frames_dtype, frame_stride: see :class:`~acga_lightning.data.datasets.base.ClipReader`.
        index_cache: where to cache the index (see
            :func:`~acga_lightning.data.caching.index.resolve_index_cache`); False: never.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        index_cache: str | Path | bool | None = None,
        **settings: Any,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {list(SPLITS)}, got {split!r}")
        super().__init__(root, f"A2DSentences[{split}]", **settings)
        if not (self.root / VIDEOSET).is_file():
            raise ValueError(f"root: {self.root / VIDEOSET} not found; is {root} A2D-Sentences?")
        self.split = split
        records, skipped, self.faults = self._load_index(index_cache)
        self._last_window: tuple[tuple[Path, tuple[int, ...]], np.ndarray] | None = None
        self.keep_index(records, skipped)
        if any(self.faults.values()):
            log.info("%s: faults worked around %s", self.name, self.faults)

    def _load_index(
        self, index_cache: str | Path | bool | None
    ) -> tuple[list[dict[str, Any]], dict[str, int], dict[str, int]]:
        cache = resolve_index_cache(index_cache, self.root, f"a2d_{self.split}")
        fingerprint = fingerprint_files(_dataset_files(self.root), self.root)
        cached = load_cached_index(cache, fingerprint)
        if cached is not None:
            if self.strict and cached["skip_details"]:
                reason, detail = cached["skip_details"][0]
                raise A2DSampleError(f"{reason}: {detail}")
            return cached["records"], cached["skipped"], cached["faults"]
        builder = _IndexBuilder(self.root, self.split, self.strict)
        records = builder.build()
        skipped, faults = builder.skipped.as_dict(), builder.faults.as_dict()
        details = [
            [r, d] for r, d in builder.skipped.first_details.items()
            if r not in ("missed_video", "copy_row")
        ]  # fmt: skip
        save_cached_index(
            cache, fingerprint,
            {"records": records, "skipped": skipped, "faults": faults, "skip_details": details},
        )  # fmt: skip
        return records, skipped, faults

    def __getitem__(self, index: int) -> Sample:
        r = self.records[index]
        video = self.root / CLIPS / f"{r['video_id']}.mp4"
        indices = clip_indices(r["frame_idx"], self.num_frames, self.frame_stride)
        frames = self._window(video, indices)  # (T, h, w, 3)
        orig_mask = self._read_mask(r)  # (h, w)
        if orig_mask.shape != frames.shape[1:3]:
            raise A2DSampleError(
                f"{self._mask_path(r)}: mask {orig_mask.shape} != video {video} frame "
                f"{frames.shape[1:3]} (the dataset changed after indexing?)"
            )
        return self._build(r, frames, orig_mask, self.transform)

    def _window(self, video: Path, indices: list[int]) -> np.ndarray:
        """The decoded window, or the previous read's when it is the same one.

        The index lists a frame's queries one after another, so reading in order (evaluation,
        :class:`~acga_lightning.data.caching.memory.MemoryCachedDataset`'s window groups)
        decodes each window once instead of once per query. The array is read-only because
        samples share it; the resize copies it.
        """
        key = (video, tuple(indices))
        if self._last_window is None or self._last_window[0] != key:
            frames = read_window(video, indices)
            frames.setflags(write=False)
            self._last_window = (key, frames)
        return self._last_window[1]

    def sample_without_frames(self, index: int) -> dict[str, Any]:
        """Sample ``index`` with everything but ``frames``, without decoding (the feature cache)."""
        r = self.records[index]
        orig_mask = self._read_mask(r)
        blank = np.zeros((1, *orig_mask.shape, 3), np.uint8)  # (1, h, w, 3)
        sample = self._build(r, blank, orig_mask, transform=None)
        sample.pop("frames")
        return sample

    def _mask_path(self, r: dict[str, Any]) -> Path:
        return self.root / MASKS / r["video_id"] / f"{r['frame_idx']:05d}.h5"

    def _read_mask(self, r: dict[str, Any]) -> np.ndarray:
        return read_a2d_mask(self._mask_path(r), r["mask_index"])

    def _build(
        self, r: dict[str, Any], frames: np.ndarray, orig_mask: np.ndarray, transform: Any
    ) -> dict[str, Any]:
        vid, frame_idx = r["video_id"], r["frame_idx"]
        return self.build(
            frames, orig_mask, r["query"], transform,
            video_id=vid, frame_idx=frame_idx, instance_id=r["instance_id"],
            sample_id=make_sample_id("a2d", vid, frame_idx, r["instance_id"], r["query"]),
            action=r["action"],
        )  # fmt: skip


# ------------------------------------------------------------------------ acga check-data a2d
H5_KEYS = ("instance", "reMask", "reBBox", "id")


def _check_videoset(root: Path, report: CheckReport) -> tuple[dict[str, list[str]], set[str]]:
    """Well-formed rows of videoset.csv by video id, and every id listed (malformed rows too)."""
    rows = read_checked_csv(root / VIDEOSET, report) or []
    videos: dict[str, list[str]] = {}
    listed = {row[0].strip() for _, row in rows if row}
    for line, row in rows:
        where = f"{root / VIDEOSET}:{line}"
        try:
            video = parse_videoset_row(row)
        except FieldError as err:
            report.error(err.check, where, err.message)
            continue
        if video.video_id in videos:
            report.error("duplicate_video", where, f"video {video.video_id} listed twice")
            continue
        videos[video.video_id] = row
    report.counts["videos"] = len(videos)
    return videos, listed


def _check_queries(root: Path, listed: set[str], report: CheckReport) -> dict[str, set[int]]:
    """Instance ids queried per video, from a2d_annotation.txt."""
    path = root / ANNOTATION
    rows = read_checked_csv(path, report)
    queried: dict[str, set[int]] = defaultdict(set)
    if rows is None:
        return queried
    try:
        check_annotation_header(path, rows)
    except FieldError as err:
        report.error(err.check, path, err.message.removeprefix(f"{path}: "))
    seen: set[tuple[str, str, str]] = set()
    for line, row in rows[1:]:
        where = f"{path}:{line}"
        try:
            vid, inst, query = parse_annotation_row(row)
        except FieldError as err:
            report.error(err.check, where, err.message)
            continue
        if len(row) > 3:
            report.warn("unquoted_commas", where, f"{vid}: query with unquoted commas (read whole)")
        key = (vid, inst, normalise_query(query))
        if key in seen and inst.isdigit():
            report.error("duplicate_query", where, f"{vid} instance {inst}: the same query again")
            continue
        seen.add(key)
        if inst == "1 (copy)":
            report.warn("copy_row", where, f"{vid}: instance_id '1 (copy)' (known; dropped)")
        elif not inst.isdigit():
            report.error("csv_field", where, f"{vid}: instance_id {inst!r} is not a whole number")
        elif not tokenize(query):
            report.error("empty_query", where, f"{vid} instance {inst}: empty query")
        elif vid not in listed:
            report.error("unknown_video", where, f"{vid} is not in {VIDEOSET}")
        else:
            queried[vid].add(int(inst))
    report.counts["query rows"] = max(len(rows) - 1, 0)
    return queried


def _check_h5(path: Path, size: tuple[int, int] | None, report: CheckReport) -> list[int]:
    """One annotation frame; returns its instance ids ([] when unusable)."""
    try:
        frame = read_h5_frame(path)  # the readers' own checks
        with h5py.File(path, "r") as f:
            missing = [k for k in H5_KEYS if k not in f]
            box_shape = f["reBBox"].shape if "reBBox" in f else None
    except FieldError as err:
        report.error(err.check, path, err.message.removeprefix(f"{path}: "))
        return []
    except (OSError, ValueError) as err:
        report.error("corrupt_h5", path, f"cannot read: {err}")
        return []
    if missing:
        report.error("h5_keys", path, f"missing keys {missing}")
        return frame.instances
    instances, num_masks = frame.instances, frame.num_masks
    mask_shape = (frame.size[1], frame.size[0])  # (W, H), as stored
    if num_masks < len(instances):
        report.error("instance_mask_mismatch", path,
                     f"{len(instances)} instances but {num_masks} masks")  # fmt: skip
    elif num_masks > len(instances):
        report.warn("extra_masks", path, f"{num_masks} masks for {len(instances)} instances")
    if len(set(instances)) < len(instances):
        report.warn("duplicate_instance_id", path, f"instance ids {instances}")
    if frame.codes is None:  # the reader gives these samples action -1
        report.warn("action_id", path, f"id is not one actor-action class per mask ({num_masks})")
    if box_shape is None or len(box_shape) != 2 or box_shape[0] != 4:
        report.error("bbox_shape", path, f"reBBox shape {box_shape}, expected (4, N)")
    w, h = mask_shape[-2:]  # stored transposed
    if size is not None and (h, w) != size:
        hint = " (stored untransposed?)" if (w, h) == size else ""
        report.error("mask_size", path, f"mask {h}x{w} but video {size[0]}x{size[1]}{hint}")
    return instances


def _check_video(path: Path, row: list[str], report: CheckReport) -> tuple[int, int, int] | None:
    if not path.is_file():
        report.error("missing_video", path, "not found")
        return None
    try:
        frames, h, w = probe_first_frame(path)
    except ValueError as err:
        report.error("corrupt_video", path, str(err).removeprefix(f"{path}: "))
        return None
    if (h, w) != (int(row[4]), int(row[5])):
        report.error("video_size", path, f"{h}x{w} but videoset.csv says {row[4]}x{row[5]}")
    if abs(frames - int(row[6])) > max(2, 0.05 * int(row[6])):
        report.warn("frame_count", path, f"{frames} frames but videoset.csv says {row[6]}")
    return frames, h, w


def _check_a2d_video(root: Path, vid: str, row: list[str], queried: set[int],
                     report: CheckReport) -> None:  # fmt: skip
    probe = _check_video(root / CLIPS / f"{vid}.mp4", row, report)
    folder = root / MASKS / vid
    h5_files = sorted(folder.glob("*.h5")) if folder.is_dir() else []
    report.counts["h5 files"] += len(h5_files)
    if queried and not h5_files:
        report.error("missing_h5", folder, f"no annotation frames for queried video {vid}")
    elif len(h5_files) < int(row[7]):
        listed = f"videoset.csv lists {row[7]} annotated frames"
        report.error("missing_h5", folder, f"{len(h5_files)} h5 files but {listed}")
    seen: set[int] = set()
    for path in h5_files:
        try:
            frame_number(path, probe[0] if probe is not None else None)
        except FieldError as err:
            report.error(err.check, path, err.message.removeprefix(f"{path}: "))
            continue
        seen.update(_check_h5(path, probe[1:] if probe else None, report))
    for inst in sorted(queried - seen):
        if h5_files:
            report.warn("unseen_instance", folder,
                        f"queried instance {inst} appears in no annotated frame")  # fmt: skip


def check_a2d(root: Path, report: CheckReport, progress: bool) -> None:
    """All A2D-Sentences checks (see the module docstring)."""
    videos, listed = _check_videoset(root, report)
    queried = _check_queries(root, listed, report)
    if (root / MISSED).is_file():
        for vid in (root / MISSED).read_text(encoding="utf-8-sig").split():
            report.warn("missed_video", root / MISSED, f"{vid} (known; excluded by the readers)")
    else:
        report.warn("missing_file", root / MISSED, "not found: no video will be excluded")
    for vid, row in tqdm(videos.items(), desc="check-data a2d", unit="video", disable=not progress):
        _check_a2d_video(root, vid, row, queried.get(vid, set()), report)
