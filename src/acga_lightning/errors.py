"""Errors a user can act on: ``acga`` prints them as one line instead of a traceback."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting that cannot work, with the key that holds it (``model.attention: ...``)."""
