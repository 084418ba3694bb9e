"""J-HMDB-Sentences reader, for evaluation only (models are trained on A2D-Sentences).

Layout, under ``root``: ``jhmdb_annotation.txt`` (``video_id,query``),
``Rename_Images/<action>/<video>/%05d.png`` (1-based) and
``puppet_mask/<action>/<video>/puppet_mask.mat`` with ``part_mask (H, W, T_m)``. Only the first
``T_m`` frames are annotated.

Which frames are scored, deterministically:

- ``sampling="uniform"`` (the paper): ``frames_per_video`` frames evenly spaced over the ``n``
  annotated frames, at the centres of ``k`` equal segments: frame ``((2i + 1) * n) // (2k) + 1``
  for ``i < k`` (1-based; repeats are dropped when ``n < k``).
- ``sampling="metadata"``: MTTR's frozen list (``jhmdb_sentences_samples_metadata.json``, a JSON
  list of ``[video_id, chosen_frame_path, video_masks_path, video_total_frames, text_query]``).
  Paths in it are resolved under ``root`` from their ``Rename_Images/...``/``puppet_mask/...``
  tail, so the file works wherever the dataset lives.

Windows are clamped to the frames on disk (MTTR clamps to the annotated frames; frames past the
last mask are still real frames). The index is small (one ``whosmat`` per video) and not cached.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io
from PIL import Image
from tqdm.auto import tqdm

from acga_lightning.data.check import CheckReport, read_checked_csv
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

ANNOTATION = "jhmdb_annotation.txt"
FRAMES = "Rename_Images"
MASKS = "puppet_mask"


class JHMDBSampleError(DataError):
    """A bad sample in strict mode; the message names the file."""


def num_part_masks(path: Path) -> tuple[int, int, int]:
    """``part_mask``'s ``(H, W, T_m)`` without loading it (MATLAB v5 or v7.3/HDF5 files)."""
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            t, w, h = f["part_mask"].shape  # HDF5 .mat files store arrays transposed
        return h, w, t
    for name, shape, _ in scipy.io.whosmat(str(path)):
        if name == "part_mask":
            return (*shape[:2], shape[2] if len(shape) == 3 else 1)
    raise KeyError(f"{path}: no 'part_mask' variable")


def read_part_masks(path: Path) -> np.ndarray:
    """Every frame's ``part_mask`` as stored, ``(H, W, T)`` (MATLAB v5 or v7.3 / HDF5)."""
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            return np.asarray(f["part_mask"]).T  # HDF5 .mat files store arrays transposed
    return scipy.io.loadmat(str(path), variable_names=["part_mask"])["part_mask"]


def read_part_mask(path: Path, frame_idx: int) -> np.ndarray:
    """The bool ``(H, W)`` mask of 1-based ``frame_idx`` from ``puppet_mask.mat``.

    A float mask holding NaN or values other than 0 and 1 raises :class:`JHMDBSampleError`
    naming the file and frame (``!= 0`` would make NaN foreground).
    """
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            mask = np.asarray(f["part_mask"][frame_idx - 1]).T
    else:
        masks = scipy.io.loadmat(str(path), variable_names=["part_mask"])["part_mask"]
        if masks.ndim == 2:
            masks = masks[..., None]
        mask = masks[:, :, frame_idx - 1]  # (H, W)
    if mask.dtype.kind == "f" and not np.isin(mask, (0.0, 1.0)).all():
        raise JHMDBSampleError(
            f"{path}: part_mask frame {frame_idx} holds NaN or values other than 0 and 1"
        )
    return np.ascontiguousarray(mask != 0)


def video_problem(pngs: list[Path], mask_frames: int | None) -> tuple[str, str] | None:
    """``(check, message)`` when a frame folder or its mask count cannot be used, else None.

    Frames must be ``00001.png`` ... ``N.png`` without gaps (a gap shifts every later frame
    against its mask) and ``part_mask`` may not hold more masks than there are frames. Shared by
    the reader and ``acga check-data``.
    """
    numbers = [int(p.stem) for p in pngs if p.stem.isdigit()]
    if not pngs or numbers != list(range(1, len(pngs) + 1)):
        return "missing_frame", f"frames are not 00001..{len(pngs):05d}.png"
    if mask_frames is not None and mask_frames > len(pngs):
        return "mask_frames", f"{mask_frames} masks for {len(pngs)} frames"
    return None


def uniform_frames(num_annotated: int, k: int) -> list[int]:
    """1-based frames at the centres of ``k`` equal segments of ``num_annotated`` frames."""
    return sorted({(2 * i + 1) * num_annotated // (2 * k) + 1 for i in range(k)})


def _tail(path: str, anchor: str) -> Path:
    parts = Path(path).parts
    if anchor not in parts:
        raise ValueError(f"metadata path {path!r} has no {anchor!r} component")
    return Path(*parts[parts.index(anchor) :])


class JHMDBSentences(ClipReader):
    """J-HMDB-Sentences evaluation samples (:class:`~acga_lightning.data.contract.Sample`).

    Args:
        root: the folder holding ``Rename_Images/``, ``puppet_mask/``, ``jhmdb_annotation.txt``.
        num_frames, frame_size, word_vectors, max_words, resize, strict, frames_dtype,
            frame_stride: see :class:`~acga_lightning.data.datasets.base.ClipReader`.
        frames_per_video: frames scored per video with ``sampling="uniform"``.
        sampling: ``"uniform"`` or ``"metadata"`` (see the module docstring).
        metadata_path: MTTR's samples metadata JSON, required for ``sampling="metadata"``.
    """

    def __init__(
        self,
        root: str | Path,
        frames_per_video: int = 3,
        sampling: str = "uniform",
        metadata_path: str | Path | None = None,
        **settings: Any,
    ) -> None:
        if "transform" in settings:
            raise ValueError("transform: J-HMDB-Sentences is evaluation only, never augmented")
        super().__init__(root, "JHMDBSentences", **settings)
        if sampling not in ("uniform", "metadata"):
            raise ValueError(f"sampling: expected 'uniform' or 'metadata', got {sampling!r}")
        if sampling == "metadata" and metadata_path is None:
            raise ValueError("metadata_path: required with sampling='metadata'")
        if frames_per_video < 1:
            raise ValueError(f"frames_per_video: expected >= 1, got {frames_per_video}")
        if not (self.root / ANNOTATION).is_file():
            raise ValueError(f"root: {self.root / ANNOTATION} not found; is {root} J-HMDB?")
        self._skips = SkipCounter("JHMDBSentences skipped")
        self._videos: dict[str, dict[str, Any]] = {}
        if sampling == "uniform":
            records = self._uniform_index(frames_per_video)
        else:
            records = self._metadata_index(Path(metadata_path))
        self.keep_index(records, self._skips.as_dict())

    def _fail(self, reason: str, detail: str, n: int = 1) -> None:
        if self.strict:
            raise JHMDBSampleError(f"{reason}: {detail}")
        self._skips.add(reason, detail, n)

    def _video(self, frames_dir: Path, masks_path: Path) -> dict[str, Any] | None:
        """Frame count, annotated count and size of one video, checked; None if unusable."""
        key = str(frames_dir)
        if key not in self._videos:
            self._videos[key] = self._probe(frames_dir, masks_path)
        return self._videos[key]

    def _probe(self, frames_dir: Path, masks_path: Path) -> dict[str, Any] | None:
        pngs = sorted(frames_dir.glob("*.png"))
        if not pngs:
            self._fail("missing_frames", f"{frames_dir}: no frames")
            return None
        if not masks_path.is_file():
            self._fail("missing_mask", f"{masks_path} not found")
            return None
        try:
            h, w, t_m = num_part_masks(masks_path)
        except (OSError, KeyError, ValueError) as err:
            self._fail("bad_mask_file", f"{masks_path}: {err}")
            return None
        problem = video_problem(pngs, t_m)
        if problem is not None:
            check, message = problem
            where = frames_dir if check == "missing_frame" else masks_path
            self._fail(
                "missing_frames" if check == "missing_frame" else check, f"{where}: {message}"
            )
            return None
        with Image.open(pngs[0]) as im:
            size = (im.height, im.width)
        if size != (h, w):
            self._fail("mask_size_mismatch", f"{masks_path}: {h}x{w} but {pngs[0]} is {size}")
            return None
        return dict(frames_dir=frames_dir, masks_path=masks_path, num_frames=len(pngs),
                    num_annotated=min(t_m, len(pngs)))  # fmt: skip

    def _read_annotations(self) -> list[tuple[str, str]]:
        """``(video_id, query)`` rows; read as the A2D files are (BOM, blank lines, commas)."""
        from acga_lightning.data.datasets.a2d_fields import FieldError, read_csv_rows

        path = self.root / ANNOTATION
        try:
            rows = read_csv_rows(path)
        except FieldError as err:
            raise JHMDBSampleError(err.message) from err
        header = [c.strip() for c in rows[0][1]] if rows else []
        if header != ["video_id", "query"]:
            raise JHMDBSampleError(f"{path}: header {header}, expected video_id,query")
        out = []
        for line, row in rows[1:]:
            if len(row) < 2:
                self._fail("bad_annotation_row", f"{path}:{line}: expected 2 columns, got {row}")
                continue
            out.append((row[0].strip(), normalise_query(",".join(row[1:]))))
        return out

    def _uniform_index(self, k: int) -> list[dict[str, Any]]:
        frame_dirs = {p.name: p for p in (self.root / FRAMES).glob("*/*") if p.is_dir()}
        records = []
        for vid, query in self._read_annotations():
            if not query:
                self._fail("empty_query", f"{self.root / ANNOTATION}: {vid}")
                continue
            if vid not in frame_dirs:
                self._fail("missing_frames", f"{self.root / FRAMES}/*/{vid} not found")
                continue
            masks = self.root / MASKS / frame_dirs[vid].parent.name / vid / "puppet_mask.mat"
            info = self._video(frame_dirs[vid], masks)
            if info is None:
                continue
            for f in uniform_frames(info["num_annotated"], k):
                records.append(dict(video_id=vid, frame_idx=f, query=query, **info))
        return records

    def _metadata_index(self, path: Path) -> list[dict[str, Any]]:
        try:
            with open(path, encoding="utf-8-sig") as f:
                entries = json.load(f)
        except (OSError, ValueError) as err:
            raise JHMDBSampleError(f"{path}: not a readable JSON list ({err})") from err
        if not isinstance(entries, list):
            raise JHMDBSampleError(f"{path}: expected a JSON list of entries")
        records = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, list) or len(entry) != 5:
                raise ValueError(f"{path}: entry {i} is not [video_id, frame_path, masks_path, "
                                 f"total_frames, query]: {entry!r}")  # fmt: skip
            vid, frame_path, masks_path, _total, query = entry
            where = f"{path}: entry {i}"
            if not all(isinstance(x, str) for x in (vid, frame_path, masks_path, query)):
                self._fail("bad_metadata_entry", f"{where}: paths, id and query must be text")
                continue
            frame = self.root / _tail(frame_path, FRAMES)
            if frame.parent.name != vid or Path(masks_path).parent.name != vid:
                self._fail("bad_metadata_entry", f"{where}: {vid!r} is not the video of its paths")
                continue
            if not frame.stem.isdigit():
                self._fail("bad_metadata_entry", f"{where}: frame {frame.name} is not numbered")
                continue
            if not tokenize(query):
                self._fail("empty_query", f"{where}: video {vid}")
                continue
            info = self._video(frame.parent, self.root / _tail(masks_path, MASKS))
            if info is None:
                continue
            frame_idx = int(frame.stem)
            if not 1 <= frame_idx <= info["num_annotated"]:
                self._fail("unannotated_frame", f"{path}: entry {i}: {frame} has no mask")
                continue
            records.append(dict(video_id=vid, frame_idx=frame_idx,
                                query=normalise_query(query), **info))  # fmt: skip
        return records

    def __getitem__(self, index: int) -> Sample:
        r = self.records[index]
        n = r["num_frames"]
        frames = []
        for i in clip_indices(r["frame_idx"], self.num_frames, self.frame_stride):
            path = r["frames_dir"] / f"{min(max(i, 0), n - 1) + 1:05d}.png"
            try:
                with Image.open(path) as im:
                    frames.append(np.array(im.convert("RGB")))
            except OSError as err:
                raise JHMDBSampleError(f"{path}: cannot read frame ({err})") from err
        orig_mask = read_part_mask(r["masks_path"], r["frame_idx"])  # (H, W)
        return self._build(r, np.stack(frames), orig_mask)

    def sample_without_frames(self, index: int) -> dict[str, Any]:
        """Sample ``index`` with everything but ``frames``, without reading frames (the cache)."""
        r = self.records[index]
        orig_mask = read_part_mask(r["masks_path"], r["frame_idx"])  # (H, W)
        sample = self._build(r, np.zeros((1, *orig_mask.shape, 3), np.uint8), orig_mask)
        sample.pop("frames")
        return sample

    def _build(
        self, r: dict[str, Any], frames: np.ndarray, orig_mask: np.ndarray
    ) -> dict[str, Any]:
        return self.build(
            frames, orig_mask, r["query"], None,
            video_id=r["video_id"], frame_idx=r["frame_idx"], instance_id=0,
            sample_id=make_sample_id("jhmdb", r["video_id"], r["frame_idx"], 0, r["query"]),
        )  # fmt: skip


# ---------------------------------------------------------------------- acga check-data jhmdb
def _check_jhmdb_video(root: Path, vid: str, report: CheckReport) -> None:
    dirs = [p for p in (root / "Rename_Images").glob(f"*/{vid}") if p.is_dir()]
    if len(dirs) != 1:
        report.error("missing_video" if not dirs else "ambiguous_video", root / "Rename_Images",
                     f"{vid}: {len(dirs)} frame folders")  # fmt: skip
        return
    pngs = sorted(dirs[0].glob("*.png"))
    problem = video_problem(pngs, None)  # the readers' own check
    if problem is not None:
        report.error(problem[0], dirs[0], problem[1])
        return
    from PIL import Image

    with Image.open(pngs[0]) as im:
        width, height = im.size
    report.counts["frames"] += len(pngs)
    path = root / "puppet_mask" / dirs[0].parent.name / vid / "puppet_mask.mat"
    if not path.is_file():
        report.error("missing_mask", path, "not found")
        return
    try:
        masks = read_part_masks(path)
        shape = masks.shape
    except (OSError, ValueError, KeyError, TypeError) as err:
        report.error("corrupt_mask", path, f"cannot read part_mask: {err}")
        return
    if len(shape) != 3 or shape[:2] != (height, width):
        report.error("mask_size", path, f"part_mask {shape}, frames are {height}x{width}")
    elif (problem := video_problem(pngs, shape[2])) is not None:
        report.error(problem[0], path, problem[1])
    elif not masks.any():
        report.warn("empty_mask", path, "part_mask is all zero")
    elif shape[2] < len(pngs):
        report.counts["videos with masks on fewer frames"] += 1  # normal in J-HMDB


def check_jhmdb(root: Path, report: CheckReport, progress: bool) -> None:
    """All J-HMDB-Sentences checks: annotation rows, frame folders, masks."""
    path = root / "jhmdb_annotation.txt"
    rows = read_checked_csv(path, report)
    if rows is None:
        return
    if not rows or [c.strip() for c in rows[0][1]] != ["video_id", "query"]:
        report.error(
            "csv_header", path, f"header {rows[0][1] if rows else []}, expected video_id,query"
        )
    videos: list[str] = []
    for line, row in rows[1:]:
        if len(row) != 2:
            report.error("csv_columns", f"{path}:{line}", f"expected 2 columns, got {row}")
        elif not row[1].strip():
            report.error("empty_query", f"{path}:{line}", f"{row[0]}: empty query")
        else:
            videos.append(row[0].strip())
    report.counts["videos"] = len(videos)
    for vid in tqdm(videos, desc="check-data jhmdb", unit="video", disable=not progress):
        _check_jhmdb_video(root, vid, report)
