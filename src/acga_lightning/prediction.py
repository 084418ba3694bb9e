"""Writing predictions to disk: one mask PNG per sample and a scores file (``acga predict``), or
a Ref-YouTube-VOS submission (:class:`SubmissionWriter`).

Layout under ``output_dir``::

    masks/<video_id>/<frame:05d>_<sample_id>.png   8-bit, 255 = the referred actor, at the
                                                   frame's original size
    scores.csv                                     one row per sample (scores-rank<k>.csv per
                                                   process under DDP): sample_id, video_id,
                                                   frame_idx, instance_id, query, score,
                                                   mask_area, mask

``score`` is the model's confidence (the peak probability); ``mask`` is the PNG's path relative
to ``output_dir``. A sample that DistributedSampler hands to two processes is written twice with
the same bytes.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from pytorch_lightning.callbacks import BasePredictionWriter

SCORE_COLUMNS = (
    "sample_id", "video_id", "frame_idx", "instance_id", "query", "score", "mask_area", "mask",
)  # fmt: skip


def mask_path(video_id: str, frame_idx: int, sample_id: int) -> Path:
    """The relative path of one sample's mask; video ids may hold ``/`` (J-HMDB's action/video)."""
    parts = Path(str(video_id)).parts
    if not parts or any(p in ("..", "") for p in parts) or Path(str(video_id)).is_absolute():
        raise ValueError(f"video_id {video_id!r} cannot name a folder under the output directory")
    return Path("masks", *parts, f"{int(frame_idx):05d}_{int(sample_id)}.png")


def write_mask(path: Path, mask: torch.Tensor | np.ndarray) -> None:
    """Save a boolean (h, w) mask as an 8-bit PNG (0 background, 255 foreground)."""
    array = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask, dtype=bool)
    if array.ndim != 2:
        raise ValueError(f"a mask is (h, w), got shape {array.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8) * 255, mode="L").save(path)


def read_mask(path: str | Path) -> np.ndarray:
    """A mask PNG written by :func:`write_mask`, as a boolean (h, w) array."""
    return np.asarray(Image.open(path)) > 127


class MaskWriter(BasePredictionWriter):
    """Writes each predicted mask as a PNG at the frame's original size, and a scores file.

    Args:
        output_dir: where ``masks/`` and ``scores.csv`` go.
        overwrite: replace predictions already there; without it a folder that already holds
            ``masks/`` or a scores file is refused before anything runs.
    """

    def __init__(self, output_dir: str | Path, overwrite: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.overwrite = overwrite
        self._rows: list[dict[str, Any]] = []

    def check_destination(self) -> None:
        """Refuse a folder holding earlier predictions unless ``overwrite``."""
        masks = self.output_dir / "masks"
        existing = [masks] if masks.exists() else []
        existing += sorted(self.output_dir.glob("scores*.csv"))
        if existing and not self.overwrite:
            raise FileExistsError(
                f"{self.output_dir} already holds predictions ({existing[0].name}): choose "
                "another predictions_dir, or pass --overwrite true to replace them"
            )

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "predict":
            if trainer.is_global_zero:
                self.check_destination()
            self._rows = []

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        masks, scores = prediction["masks"], prediction["scores"]
        missing = [k for k in ("video_id", "frame_idx", "sample_id") if k not in prediction]
        if missing:
            raise ValueError(f"predictions need {missing} to name their masks")
        instance = prediction.get("instance_id")
        for i, mask in enumerate(masks):
            video_id = prediction["video_id"][i]
            frame_idx = int(prediction["frame_idx"][i])
            sample_id = int(prediction["sample_id"][i])
            relative = mask_path(video_id, frame_idx, sample_id)
            write_mask(self.output_dir / relative, mask)
            self._rows.append(
                {
                    "sample_id": sample_id,
                    "video_id": video_id,
                    "frame_idx": frame_idx,
                    "instance_id": "" if instance is None else int(instance[i]),
                    "query": prediction["query"][i] if "query" in prediction else "",
                    "score": f"{float(scores[i]):.6f}",
                    "mask_area": int(torch.as_tensor(mask).sum()),
                    "mask": relative.as_posix(),
                }
            )

    def on_predict_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        name = "scores.csv" if trainer.world_size == 1 else f"scores-rank{trainer.global_rank}.csv"
        self.output_dir.mkdir(parents=True, exist_ok=True)
        rows = sorted(self._rows, key=lambda r: r["sample_id"])
        with open(self.output_dir / name, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=SCORE_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        if trainer.is_global_zero:
            print(f"predictions: {len(rows)} masks and {name} in {self.output_dir}")


def submission_path(video_id: str, exp_id: str, frame_name: str) -> Path:
    """``Annotations/<video>/<exp_id>/<frame>.png``: where the Ref-YouTube-VOS server looks."""
    for part, value in (("video_id", video_id), ("exp_id", exp_id), ("frame_name", frame_name)):
        text = str(value)
        if not text or "/" in text or "\\" in text or text in (".", ".."):
            raise ValueError(f"{part} {value!r} cannot name a file of the submission")
    return Path("Annotations", str(video_id), str(exp_id), f"{frame_name}.png")


class SubmissionWriter(BasePredictionWriter):
    """Writes a Ref-YouTube-VOS style submission: one PNG per (video, expression, frame).

    ``output_dir/Annotations/<video>/<exp_id>/<frame>.png`` (8-bit, 255 = the referred object,
    at the frame's size), then, on rank 0 at the end, ``output_dir.zip`` holding ``Annotations/``
    when ``zip`` is set. Predictions need ``video_id``, ``exp_id`` and ``frame_name`` (the
    :class:`~acga_lightning.data.datasets.ref_vos.ReferringVOS` samples carry them).
    """

    def __init__(self, output_dir: str | Path, zip: bool = True, overwrite: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.output_dir, self.zip, self.overwrite = Path(output_dir), zip, overwrite

    def check_destination(self) -> None:
        """Refuse (before any work) a folder that already holds a submission, unless overwrite."""
        if self.overwrite:
            return
        for existing in (self.output_dir / "Annotations", self.output_dir.with_suffix(".zip")):
            if existing.exists():
                raise FileExistsError(
                    f"{existing} already exists: choose another output_dir or set the "
                    "SubmissionWriter's overwrite: true"
                )

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "predict" and trainer.is_global_zero:
            self.check_destination()

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        missing = [k for k in ("video_id", "exp_id", "frame_name") if k not in prediction]
        if missing:
            raise ValueError(f"a submission needs {missing} in each prediction")
        for i, mask in enumerate(prediction["masks"]):
            relative = submission_path(
                prediction["video_id"][i], prediction["exp_id"][i], prediction["frame_name"][i]
            )
            write_mask(self.output_dir / relative, mask)

    def on_predict_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.strategy.barrier("submission")
        if self.zip and trainer.is_global_zero:
            archive = zip_submission(self.output_dir)
            print(f"submission: {archive}")


def zip_submission(output_dir: str | Path) -> Path:
    """Zip ``output_dir/Annotations`` into ``output_dir.zip`` (paths start at ``Annotations/``)."""
    import zipfile

    output_dir = Path(output_dir)
    archive = output_dir.with_suffix(".zip")
    files = sorted((output_dir / "Annotations").rglob("*.png"))
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for path in files:
            z.write(path, path.relative_to(output_dir).as_posix())
    return archive


def check_submission(archive: str | Path, root: str | Path, split: str = "valid") -> list[str]:
    """Problems of a submission zip against ``root``'s expressions: [] when it is exactly right.

    Every listed frame of every expression needs its PNG at the frame's size, and nothing else
    may be in the archive.
    """
    import zipfile

    from acga_lightning.data.datasets.ref_vos import expressions_path, read_json_videos

    root = Path(root)
    videos = read_json_videos(expressions_path(root, split))
    expected: dict[str, tuple[int, int]] = {}
    for vid, entry in videos.items():
        for name in entry["frames"]:
            with Image.open(root / split / "JPEGImages" / vid / f"{name}.jpg") as image:
                size = (image.height, image.width)
            for exp_id in entry["expressions"]:
                expected[submission_path(vid, exp_id, name).as_posix()] = size
    problems = []
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        for name in sorted(set(expected) - names):
            problems.append(f"missing {name}")
        for name in sorted(names - set(expected)):
            problems.append(f"unexpected {name}")
        for name in sorted(names & set(expected)):
            with z.open(name) as f, Image.open(f) as image:
                if (image.height, image.width) != expected[name]:
                    problems.append(f"{name}: {image.height}x{image.width}, frame is "
                                    f"{expected[name][0]}x{expected[name][1]}")  # fmt: skip
    return problems
