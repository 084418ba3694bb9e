"""The model's plug-in parts. Importing this package registers every one of them by name."""

from acga_lightning.models import (  # noqa: F401
    attention,
    decoders,
    losses,
    small_encoders,
    text_encoders,
    video_encoders,
)
