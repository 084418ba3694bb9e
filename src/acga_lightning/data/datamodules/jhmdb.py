"""J-HMDB-Sentences: evaluation only (val, test and predict all read the whole dataset)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from acga_lightning.data.base import ReferringDataModule
from acga_lightning.data.synthetic.jhmdb import JHMDBSynthetic


class JHMDBDataModule(
    ReferringDataModule, format="jhmdb", title="J-HMDB-Sentences", train_part=None,
    eval_part="all", synthetic=JHMDBSynthetic,
):  # fmt: skip
    """J-HMDB-Sentences (:class:`~acga_lightning.data.datasets.jhmdb.JHMDBSentences`).

    Args:
        root: the folder holding ``Rename_Images/``, ``puppet_mask/`` and ``jhmdb_annotation.txt``.
        toy: generate J-HMDB-format data into ``root`` when it is absent.
        frames_per_video: annotated frames scored per video.
        sampling: ``uniform`` (evenly spaced frames) or ``metadata`` (the frames a metadata file
            lists, as MTTR's evaluation does).
        metadata_path: the metadata file of ``sampling: metadata``.
        kwargs: the shared settings of :class:`~acga_lightning.data.base.ReferringDataModule`.
    """

    def __init__(
        self,
        root: str = "data/jhmdb",
        toy: JHMDBSynthetic | None = None,
        frames_per_video: int = 3,
        sampling: Literal["uniform", "metadata"] = "uniform",
        metadata_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(root=root, toy=toy, **kwargs)
        self.reader_options = {
            "frames_per_video": frames_per_video, "sampling": sampling,
            "metadata_path": metadata_path,
        }  # fmt: skip

    def make_reader(self, part: str, transform: Any = None) -> Any:
        from acga_lightning.data.datasets.jhmdb import JHMDBSentences

        return JHMDBSentences(self.root, **self.reader_options, **self.reader_settings())

    @classmethod
    def data_present(cls, root: Path) -> bool:
        return (Path(root) / "jhmdb_annotation.txt").is_file()

    @classmethod
    def write_synthetic(cls, root: Path, settings: Any, progress: bool = False) -> Path:
        from acga_lightning.data.synthetic.jhmdb import write_jhmdb

        return write_jhmdb(root, settings)

    @classmethod
    def check(cls, root: Path, report: Any, progress: bool = True) -> None:
        from acga_lightning.data.datasets.jhmdb import check_jhmdb

        check_jhmdb(root, report, progress)
