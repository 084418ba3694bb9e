"""The official ACGA release's preprocessed A2D / J-HMDB features (h5): train / test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from acga_lightning.data.base import ReferringDataModule


class ACGAReleaseDataModule(ReferringDataModule, format="acga_h5", title="ACGA release features"):
    """The official release's cached Mixed_4e features
    (:class:`~acga_lightning.data.datasets.acga_h5.ACGAPreprocessed`).

    Samples carry ``features``, so the model's ``video_encoder`` must be
    ``{name: precomputed, endpoint: mixed_4e}`` (:attr:`feature_spec`) and ``cache.mode`` none.

    Args:
        root: the folder holding the release's ``*.h5`` files.
        kwargs: the shared settings of :class:`~acga_lightning.data.base.ReferringDataModule`.
    """

    def __init__(self, root: str = "data/acga_release", **kwargs: Any) -> None:
        super().__init__(root=root, **kwargs)
        if self.cache_settings.enabled:
            raise ValueError("cache: acga_h5 already holds Mixed_4e features; use cache mode none")

    @property
    def feature_spec(self) -> dict[str, Any]:
        return {"name": "precomputed", "endpoint": "mixed_4e", "weights": None}

    def make_reader(self, part: str, transform: Any = None) -> Any:
        from acga_lightning.data.datasets.acga_h5 import ACGAPreprocessed

        if self.hparams.frame_stride != 1:
            raise ValueError("frame_stride: the release's clips are fixed; it must be 1")
        return ACGAPreprocessed(self.root, part, resize=self.hparams.resize_policy)

    @classmethod
    def data_present(cls, root: Path) -> bool:
        return any(Path(root).glob("*.h5"))
