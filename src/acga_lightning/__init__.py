"""acga-lightning: Asymmetric Cross-Guided Attention (ICCV 2019) as a PyTorch Lightning library."""

from typing import Any

__version__ = "0.1.0"

from acga_lightning import models, registry  # noqa: E402,F401  (importing models registers plug-ins)

__all__ = ["ACGASegmenter", "registry", "__version__"]


def __getattr__(name: str) -> Any:
    # The segmenter pulls in Lightning; plug-ins and data readers stay importable without it.
    if name == "ACGASegmenter":
        from acga_lightning.segmenter import ACGASegmenter

        return ACGASegmenter
    raise AttributeError(f"module 'acga_lightning' has no attribute {name!r}")
