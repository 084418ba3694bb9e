"""Ref-YouTube-VOS and Ref-DAVIS17: one sample per (video, expression, listed frame), scored with
J, F and J&F per expression (:class:`~acga_lightning.metrics.ReferringVideoMetrics`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from acga_lightning.data.base import ReferringDataModule
from acga_lightning.data.synthetic.ref_vos import RefVOSSynthetic


class _ReferringVOSDataModule(
    ReferringDataModule, train_part="train", eval_part="valid", synthetic=RefVOSSynthetic
):
    """The format both datasets share (:class:`~acga_lightning.data.datasets.ref_vos.ReferringVOS`).

    Args:
        root: the folder holding ``train/``, ``valid/`` and ``meta_expressions/``.
        toy: generate data in this layout into ``root`` when it is absent.
        exclude_first_last: leave each video's first and last listed frame out of validation
            and testing (the DAVIS-2017 evaluation does).
        kwargs: the shared settings of :class:`~acga_lightning.data.base.ReferringDataModule`.
    """

    def __init__(
        self,
        root: str,
        toy: RefVOSSynthetic | None = None,
        exclude_first_last: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(root=root, toy=toy, **kwargs)
        self.exclude_first_last = exclude_first_last

    def make_reader(self, part: str, transform: Any = None) -> Any:
        from acga_lightning.data.datasets.ref_vos import ReferringVOS

        evaluated = transform is None and part != self.train_part
        return ReferringVOS(
            self.root, part, exclude_first_last=self.exclude_first_last and evaluated,
            name=self.format, transform=transform, **self.reader_settings(),
        )  # fmt: skip

    @classmethod
    def data_present(cls, root: Path) -> bool:
        return (Path(root) / "meta_expressions").is_dir()

    @classmethod
    def write_synthetic(cls, root: Path, settings: Any, progress: bool = False) -> Path:
        from acga_lightning.data.synthetic.ref_vos import write_ref_vos

        return write_ref_vos(root, cls.format, settings)

    @classmethod
    def check(cls, root: Path, report: Any, progress: bool = True) -> None:
        from acga_lightning.data.datasets.ref_vos import check_ref_vos

        check_ref_vos(root, report, progress)


class RefYouTubeVOSDataModule(
    _ReferringVOSDataModule, format="ytvos", title="Ref-YouTube-VOS", test_on_held_out=True
):
    """Ref-YouTube-VOS: train on ``train``; ``valid`` has no public masks, so validation and
    testing score a held-out share of the training videos (``val_fraction``, by video) with J&F,
    and ``predict`` writes the ``valid`` submission
    (:class:`~acga_lightning.prediction.SubmissionWriter`)."""

    def __init__(
        self, root: str = "data/ref-youtube-vos", val_fraction: float = 0.1, **kwargs: Any
    ) -> None:
        super().__init__(root=root, val_fraction=val_fraction, **kwargs)


class RefDAVIS17DataModule(_ReferringVOSDataModule, format="davis", title="Ref-DAVIS17"):
    """Ref-DAVIS17: train on ``train``, validate, test and predict on ``valid`` (with masks),
    each video's first and last frame left out of the scores as DAVIS-2017 does."""

    def __init__(
        self, root: str = "data/ref-davis", exclude_first_last: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(root=root, exclude_first_last=exclude_first_last, **kwargs)
