"""An on-disk cache of frozen video-encoder features, one memory-mapped ``.npy`` file per entry.

An *entry* is the frozen encoder's output for one (video, annotated frame, view) under one set
of clip settings. Every query on that frame shares it. Modes:

- ``mixed_4e``: ``I3DEncoder.extract_frozen(frames)``, ``(528, T', G, G)``. The model then uses
  ``{name: precomputed, endpoint: mixed_4e, weights: <the same I3D weights>}`` and still
  fine-tunes ``Mixed_4f`` (the paper's setting, at a fraction of the cost).
- ``final``: the whole encoder's output ``(C_v, G, G)`` (time-averaged, L2-normalised). The
  encoder is then entirely frozen (``{name: precomputed, endpoint: final, in_channels: C_v}``):
  not the paper's model, but the cheapest to train.

Layout (chosen for simplicity and crash safety over a single preallocated memmap)::

    <dir>/<digest[:16]>/fingerprint.json      what produced the entries (canonical JSON)
    <dir>/<digest[:16]>/<shard>/<key>.npy     one entry; shard = 2 hex chars of the key's sha1

Reading one entry opens only its file (``np.load(mmap_mode="r")``, then a copy of that one
array), so memory stays flat however many entries are iterated.

Fingerprint: the sha256 of a canonical JSON of everything that changes the features (encoder
class, weights file sha256 and the actual prefix parameters' sha256, endpoint, num_frames,
frame_size, resize policy, dataset, storage dtype, compute precision, view augmentation and
:data:`CACHE_FORMAT_VERSION`). Each fingerprint gets its own directory, so a changed setting
never reuses old entries; directories of other fingerprints under ``<dir>`` are reported with
the settings that differ (delete them by hand to reclaim space). A ``fingerprint.json`` that
disagrees with its directory name raises :class:`CacheMismatchError`. The library version is
deliberately not in it: only a change of the stored format (which bumps
:data:`CACHE_FORMAT_VERSION`) or of the inputs invalidates a cache.

Integrity: entries are written to a temporary file in the same directory, fsynced, then
``os.replace``-d into place, so an interrupted build leaves no partial entry, and a rebuild skips
the entries already present. An entry that fails to load, has the wrong shape or dtype, or the
wrong file size is treated as missing and rebuilt (``verify_values`` also rejects non-finite
values, which the writer never stores). There is no per-entry checksum: atomic writes rule out
the common failure (a torn write), and a checksum would force reading every byte on each resume.

Augmentation (``augmented_views``): a cached clip cannot be augmented afterwards. With
``augmented_views: 0`` the training features are un-augmented and no visual augmentation
happens at all (``augment`` then has nothing to act on, and the datamodule says so). With
``K > 0``, each training clip is cached ``K`` times under view ``1..K`` and one view is drawn at
random each time a sample is read: view ``k`` gets brightness/contrast jitter seeded by
(entry, k), and even ``k`` are also flipped left-right (the mask is flipped and ``left`` /
``right`` swapped in the query when read). The small affine of :class:`ClipAugment` is not
cached (it would need per-query masks stored per view). Costs: ``K`` times the disk space and
build time of the training split; evaluation always reads the un-augmented view 0.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
"""Bump when the entry layout or the meaning of a stored array changes."""

CACHE_MODES = ("none", "mixed_4e", "final")
CACHE_DTYPES = ("float16", "float32")
FINGERPRINT_FILE = "fingerprint.json"

#: The photometric jitter of cached augmented views (part of the fingerprint).
VIEW_AUGMENT = {"version": 1, "brightness": 0.2, "contrast": 0.2, "flip": "even views"}

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class CacheMismatchError(ValueError):
    """A cache directory whose stored fingerprint is not the one its name claims."""


class CacheIncompleteError(RuntimeError):
    """A split needs entries the cache does not hold (run ``acga cache-features`` first)."""


@dataclass(frozen=True)
class CacheSettings:
    """The datamodules' ``cache`` argument, checked when made.

    ``mode``: none | mixed_4e | final. ``dir``: parent directory of the per-fingerprint caches
    (required when mode is not none). ``dtype``: storage dtype. ``augmented_views``: see the
    module docstring. ``encoder``: the frozen encoder's spec (``VIDEO_ENCODERS``).
    ``batch_size``/``num_workers``/``device``/``bf16``: how the build runs (``device`` None: CUDA
    if available; ``bf16``: autocast, which changes the features and therefore the fingerprint).
    """

    mode: Literal["none", "mixed_4e", "final"] = "none"
    dir: str | None = None
    dtype: Literal["float16", "float32"] = "float16"
    augmented_views: int = 0
    encoder: dict[str, Any] = field(default_factory=lambda: {"name": "i3d", "weights": None})
    batch_size: int = 4
    num_workers: int = 0
    device: str | None = None
    bf16: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.encoder, str):
            object.__setattr__(self, "encoder", {"name": self.encoder})
        if self.mode not in CACHE_MODES:
            raise ValueError(f"cache.mode: expected one of {CACHE_MODES}, got {self.mode!r}")
        if self.dtype not in CACHE_DTYPES:
            raise ValueError(f"cache.dtype: expected one of {CACHE_DTYPES}, got {self.dtype!r}")
        if self.augmented_views < 0:
            raise ValueError(f"cache.augmented_views: expected >= 0, got {self.augmented_views}")
        if self.batch_size < 1:
            raise ValueError(f"cache.batch_size: expected >= 1, got {self.batch_size}")
        if self.enabled and not self.dir:
            raise ValueError(f"cache.dir: required when cache.mode is {self.mode!r}")
        if "name" not in self.encoder:
            raise ValueError(f"cache.encoder: a spec needs a 'name', got {self.encoder}")

    @classmethod
    def from_dict(cls, value: CacheSettings | Mapping[str, Any] | None) -> CacheSettings:
        """Settings from a mapping (unknown keys rejected, naming the known ones) or as given."""
        from acga_lightning.data.base import as_settings

        return as_settings(cls, value if isinstance(value, cls) else dict(value or {}), "cache")

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the same data always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint_digest(fingerprint: Mapping[str, Any]) -> str:
    """sha256 hex of the fingerprint's canonical JSON."""
    return hashlib.sha256(canonical_json(fingerprint).encode("utf-8")).hexdigest()


def entry_key(video_id: str, frame_idx: int, view: int = 0) -> str:
    """The file stem of one entry: readable, filesystem-safe, and unique (sha1 suffix)."""
    raw = f"{video_id}/{int(frame_idx)}/{int(view)}"
    digest = hashlib.sha1(raw.encode("utf-8")).hexdigest()
    return f"{_SAFE.sub('~', video_id)[:48]}_{int(frame_idx):05d}_v{int(view)}-{digest[:10]}"


def view_is_flipped(view: int) -> bool:
    """Whether cached view ``view`` is mirrored left-right (even views >= 2)."""
    return view > 0 and view % 2 == 0


def augment_view(frames: torch.Tensor, key: str, view: int) -> torch.Tensor:
    """The clip of cached view ``view``: ``(3, T, S, S)`` in [-1, 1] -> same, deterministic.

    View 0 is the clip itself. Views >= 1 get brightness/contrast jitter drawn from a generator
    seeded by (key, view); even views are also flipped left-right.
    """
    if view == 0:
        return frames
    seed = int.from_bytes(hashlib.sha1(f"{key}#{view}".encode()).digest()[:8], "big")
    rng = np.random.default_rng(seed)
    brightness = float(rng.uniform(-VIEW_AUGMENT["brightness"], VIEW_AUGMENT["brightness"]))
    contrast = float(rng.uniform(1 - VIEW_AUGMENT["contrast"], 1 + VIEW_AUGMENT["contrast"]))
    x = (frames + 1.0) * 0.5  # (3, T, S, S) in [0, 1]
    mean = x.mean()
    x = ((x - mean) * contrast + mean + brightness).clamp_(0.0, 1.0)
    if view_is_flipped(view):
        x = x.flip(-1)
    return x * 2.0 - 1.0


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` less the process umask: what ``open()`` would give a new file.

    ``tempfile.mkstemp`` creates files with mode 0600 whatever the umask, so a file renamed
    from it would be private on a shared machine where every other file is group-readable.
    """
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def _atomic_write_bytes(path: Path, write: Any) -> None:
    """Write through ``write(file)`` to a temp file beside ``path``, fsync, then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, umask_mode())  # mkstemp makes 0600 files: the mode open() would give
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FeatureCache:
    """One fingerprint's cache directory: entry paths, validated reads, atomic writes.

    ``entry_shape`` is the shape of one entry (``(528, T', G, G)`` or ``(C_v, G, G)``) and
    ``dtype`` its storage dtype; both are checked on every read.
    """

    def __init__(
        self,
        parent: str | os.PathLike,
        fingerprint: Mapping[str, Any],
        entry_shape: tuple[int, ...],
        dtype: str = "float16",
    ) -> None:
        if dtype not in CACHE_DTYPES:
            raise ValueError(f"dtype: expected one of {CACHE_DTYPES}, got {dtype!r}")
        self.parent = Path(parent)
        # A JSON round trip, so the fingerprint compares equal to the one read back from disk.
        self.fingerprint = json.loads(canonical_json(fingerprint))
        self.digest = fingerprint_digest(self.fingerprint)
        self.root = self.parent / self.digest[:16]
        self.entry_shape = tuple(int(s) for s in entry_shape)
        self.dtype = np.dtype(dtype)

    # ------------------------------------------------------------------ directory and fingerprint
    def prepare(self) -> None:
        """Create the directory and its ``fingerprint.json``; report caches of other settings."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / FINGERPRINT_FILE
        if not path.is_file() and any(not p.name.startswith(".") for p in self.root.iterdir()):
            raise FileExistsError(
                f"feature cache {self.root} holds files but no {FINGERPRINT_FILE}: it was not "
                "made by a feature cache, and its files would be replaced; set another cache.dir "
                "or empty the folder"
            )
        if path.is_file():
            self.check_fingerprint()
        else:
            payload = {"digest": self.digest, "fingerprint": self.fingerprint}
            text = json.dumps(payload, sort_keys=True, indent=1, default=str).encode("utf-8")
            _atomic_write_bytes(path, lambda f: f.write(text))
        for other, differences in self.other_caches().items():
            log.warning(
                "feature cache %s holds features of other settings (%s); they are not used. "
                "Delete it to reclaim the space.",
                other,
                ", ".join(differences) or "unreadable fingerprint",
            )

    def check_fingerprint(self) -> None:
        """Raise :class:`CacheMismatchError` unless the stored fingerprint is this one."""
        path = self.root / FINGERPRINT_FILE
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CacheMismatchError(f"{path}: unreadable cache fingerprint ({err})") from err
        if fingerprint_digest(stored.get("fingerprint", {})) != self.digest:
            differences = _differences(stored.get("fingerprint", {}), self.fingerprint)
            raise CacheMismatchError(
                f"{path}: the cache was built with other settings ({', '.join(differences)}); "
                "refusing to reuse it. Delete the directory or choose another cache.dir."
            )

    def other_caches(self) -> dict[Path, list[str]]:
        """Sibling fingerprint directories under ``parent`` and which settings differ."""
        found: dict[Path, list[str]] = {}
        if not self.parent.is_dir():
            return found
        for path in sorted(self.parent.glob(f"*/{FINGERPRINT_FILE}")):
            if path.parent == self.root:
                continue
            try:
                stored = json.loads(path.read_text(encoding="utf-8")).get("fingerprint", {})
            except (OSError, ValueError):
                stored = None
            found[path.parent] = [] if stored is None else _differences(stored, self.fingerprint)
        return found

    # ------------------------------------------------------------------------------- entries
    def path(self, key: str) -> Path:
        shard = hashlib.sha1(key.encode("utf-8")).hexdigest()[:2]
        return self.root / shard / f"{key}.npy"

    def read(self, key: str) -> np.ndarray:
        """The entry as a fresh (writable) array; ``CacheIncompleteError`` if missing or bad."""
        path = self.path(key)
        try:
            arr = self._open(path)
            return np.array(arr)  # copy: the memory map is closed when ``arr`` goes
        except FileNotFoundError:
            raise CacheIncompleteError(
                f"{path}: feature cache entry missing; build the cache (prepare_data or "
                "acga cache-features)"
            ) from None
        except ValueError as err:
            raise CacheIncompleteError(f"{path}: corrupt feature cache entry ({err})") from err

    def is_valid(self, key: str, verify_values: bool = False) -> bool:
        """Whether the entry exists and loads with the right shape, dtype and file size."""
        try:
            arr = self._open(self.path(key))
            return not verify_values or bool(np.isfinite(arr).all())
        except (FileNotFoundError, ValueError):
            return False

    def _open(self, path: Path) -> np.ndarray:
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise
        except (OSError, ValueError, EOFError) as err:
            raise ValueError(f"cannot load: {err}") from err
        if tuple(arr.shape) != self.entry_shape or arr.dtype != self.dtype:
            raise ValueError(
                f"expected {self.dtype} {self.entry_shape}, got {arr.dtype} {tuple(arr.shape)}"
            )
        size = path.stat().st_size
        if size != arr.offset + arr.nbytes:
            raise ValueError(f"file has {size} bytes, expected {arr.offset + arr.nbytes}")
        return arr

    def write(self, key: str, features: np.ndarray | torch.Tensor) -> Path:
        """Store one entry atomically; refuses the wrong shape and values the dtype cannot hold."""
        if isinstance(features, torch.Tensor):
            features = features.detach().float().cpu().numpy()
        if tuple(features.shape) != self.entry_shape:
            raise ValueError(
                f"features for {key}: expected shape {self.entry_shape}, got {features.shape}"
            )
        with np.errstate(over="ignore"):  # overflow becomes inf, refused just below
            stored = np.ascontiguousarray(features, dtype=self.dtype)
        if not np.isfinite(stored).all():
            raise ValueError(
                f"features for {key} are not finite in {self.dtype} (overflow?); "
                "use cache.dtype float32"
            )
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write_bytes(path, lambda f: np.save(f, stored, allow_pickle=False))
        return path

    def remove(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r}, shape={self.entry_shape}, dtype={self.dtype})"


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ between two fingerprints."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out.extend(_differences(a, b, f"{prefix}{key}."))
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out
