"""A2D-Sentences: train on ``train``, validate and test on ``test`` (as the paper does)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from acga_lightning.data.base import ReferringDataModule
from acga_lightning.data.synthetic.a2d import A2DSynthetic


class A2DDataModule(
    ReferringDataModule, format="a2d", title="A2D-Sentences", synthetic=A2DSynthetic
):
    """A2D-Sentences in its released layout
    (:class:`~acga_lightning.data.datasets.a2d.A2DSentences`).

    Args:
        root: the folder holding ``Release/`` and ``text_annotations/``.
        toy: generate A2D-format data into ``root`` when it is absent (the demo's data).
        index_cache: where the parsed index is cached (None: the user cache folder; False:
            never; see :func:`~acga_lightning.data.caching.index.resolve_index_cache`).
        kwargs: the shared settings of :class:`~acga_lightning.data.base.ReferringDataModule`.
    """

    def __init__(
        self,
        root: str = "data/a2d",
        toy: A2DSynthetic | None = None,
        index_cache: str | bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(root=root, toy=toy, **kwargs)
        self.index_cache = index_cache

    def make_reader(self, part: str, transform: Any = None) -> Any:
        from acga_lightning.data.datasets.a2d import A2DSentences

        return A2DSentences(
            self.root, part, index_cache=self.index_cache, transform=transform,
            **self.reader_settings(),
        )  # fmt: skip

    @classmethod
    def data_present(cls, root: Path) -> bool:
        return (Path(root) / "Release" / "videoset.csv").is_file()

    @classmethod
    def write_synthetic(cls, root: Path, settings: Any, progress: bool = False) -> Path:
        from acga_lightning.data.synthetic.a2d import write_a2d

        return write_a2d(root, settings, progress=progress)

    @classmethod
    def check(cls, root: Path, report: Any, progress: bool = True) -> None:
        from acga_lightning.data.datasets.a2d import check_a2d

        check_a2d(root, report, progress)
