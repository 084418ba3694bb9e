"""Errors a user can act on: ``acga`` prints them as one line instead of a traceback."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting that cannot work, with the key that holds it (``model.attention: ...``)."""


class DataError(ValueError):
    """Data on disk that cannot be used as it is: the file and line, or the split, and why.

    ``acga`` ends with exit code 1 for these (the data must change) and 2 for the others (the
    command line or config must change).
    """
