"""The readers' index cache: a parsed dataset index kept as JSON, keyed by the files it came from.

Building an index reads every annotation file; the cache keeps the result next to a fingerprint
of those files (paths, sizes, mtimes), so a changed dataset is re-indexed and an unchanged one is
read back in a blink. Writes are atomic; an unreadable or unwritable cache is logged, not fatal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# 2: the readers check every field (frame range, mask values, duplicates): older indexes may
# hold samples those checks reject.
# 3: A2D records carry the target's actor-action class (``action``).
INDEX_VERSION = 3


def default_cache_dir() -> Path:
    """Where index caches go unless a dataset gets ``index_cache``.

    ``$ACGA_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/acga_lightning``, else
    ``~/.cache/acga_lightning``. Never inside the dataset root, which may be read-only.
    """
    if os.environ.get("ACGA_CACHE_DIR"):
        return Path(os.environ["ACGA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "acga_lightning"


def fingerprint_files(paths: Iterable[Path], root: Path) -> str:
    """A sha1 over the files' relative paths, sizes and mtimes: changes when the dataset changes."""
    h = hashlib.sha1(str(INDEX_VERSION).encode())
    for p in sorted(paths):
        try:
            st = p.stat()
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"{p.relative_to(root).as_posix()}={stamp}\n".encode())
    return h.hexdigest()


def resolve_index_cache(
    index_cache: str | Path | bool | None, root: Path, name: str
) -> Path | None:
    """The JSON file a dataset's index is cached in, or None when caching is off.

    ``index_cache``: None or True -> :func:`default_cache_dir`; False -> no cache; a path ending in
    ``.json`` -> that file; any other path -> a directory to put the file in. The file name
    includes a hash of the resolved root, so two datasets never share a cache file.
    """
    if index_cache is False:
        return None
    root_key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
    filename = f"{name}_{root_key}.json"
    if index_cache is None or index_cache is True:
        return default_cache_dir() / filename
    path = Path(index_cache)
    return path if path.suffix == ".json" else path / filename


def load_cached_index(path: Path | None, fingerprint: str) -> dict[str, Any] | None:
    """The cached index at ``path`` if it exists and was built from the same files, else None."""
    if path is None or not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as f:
            cached = json.load(f)
    except (OSError, ValueError) as err:
        log.warning("index cache %s is unreadable (%s); rebuilding", path, err)
        return None
    if cached.get("version") != INDEX_VERSION or cached.get("fingerprint") != fingerprint:
        log.info("index cache %s is stale; rebuilding", path)
        return None
    return cached


def save_cached_index(path: Path | None, fingerprint: str, payload: dict[str, Any]) -> None:
    """Write the index atomically; an unwritable cache directory is logged, not fatal."""
    if path is None:
        return
    data = {"version": INDEX_VERSION, "fingerprint": fingerprint, **payload}
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError as err:
        if tmp is not None:  # a full disk must not leave a partial temp file behind
            Path(tmp).unlink(missing_ok=True)
        log.warning(
            "could not write index cache %s (%s); the index is rebuilt next time", path, err
        )
