"""Name registries for the model's interchangeable parts.

One :class:`Registry` per kind of part. A class joins a registry with a decorator where it is
defined (``@ATTENTION.register("acga")``) and is then chosen by that name in a config. A *spec*
is either a registered name (``"acga"``) or a mapping ``{"name": "acga", **constructor_kwargs}``;
specs are plain data, so a checkpoint that stores them rebuilds the same model.

The contracts every member of a registry honours (``B`` batch, ``T`` frames, ``S`` frame size,
``G`` feature grid, ``N`` words, ``D`` text width):

- ``VIDEO_ENCODERS``: ``forward(frames=None, features=None) -> (B, C_v, G, G)``. ``frames`` is
  ``(B, 3, T, S, S)`` in [-1, 1]; ``features`` is a cached encoder output. Attributes
  ``out_channels`` (``C_v``) and ``stride`` (``S // G``).
- ``TEXT_ENCODERS``: ``forward(words (B, N, 300), word_mask (B, N)) -> (B, N, D)``; attribute
  ``out_channels`` (``D``).
- ``ATTENTION``: ``forward(visual (B, C_v, G, G), text (B, N, D), word_mask (B, N))`` returns an
  :class:`~acga_lightning.models.attention.AttentionOutput` with ``visual (B, C_v, G, G)``,
  ``text (B, D, G, G)``, ``sentence (B, D)`` and optional ``word_attention (B, G*G, N)``.
- ``DECODERS``: ``forward(visual (B, C_v, G, G), text (B, D, G, G), sentence (B, D))`` returns a
  list of logits ``(B, 1, h, w)`` from coarse to fine; the last one is at the model's frame size
  and is the prediction.
- ``LOSSES``: ``forward(logits: list, target (B, S, S)) -> scalar``.

Parts from outside this package, two ways (:func:`load_plugins`, :func:`import_class_path`):

- an installed package declares an entry point in the group ``acga_lightning.plugins``
  (``[project.entry-points."acga_lightning.plugins"] my_parts = "my_pkg.parts"``); that module
  is imported before the first registry lookup, so its ``@ATTENTION.register(...)`` names work
  everywhere (the CLI, ``ACGASegmenter(...)``, ``load_from_checkpoint``, ``acga plugins``);
- a spec names a class by its import path, ``{name: "my_pkg.parts:MeanText", ...}``: it is
  imported when the spec is built, and the path is what the hyper-parameters keep.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

Spec = str | Mapping[str, Any]

ENTRY_POINT_GROUP = "acga_lightning.plugins"
BUILT_IN = "acga-lightning"


class PluginError(ValueError):
    """A part that cannot be found, imported or built from its spec.

    ``kind`` is the registry's key (``"attention"``, ...) where one is involved, so a caller
    can name the setting (``model.attention``).
    """

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind


class UnknownPartError(PluginError, KeyError):
    """A name that is neither registered nor an importable ``module:Class`` path."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PartArgumentError(PluginError, TypeError):
    """A spec that passes arguments its class does not accept."""


class Registry:
    """A mapping from names to classes of one kind of part, built from specs."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.key = kind.replace(" ", "_")  # the setting's name: model.<key>
        self._classes: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator that registers the class under ``name``."""

        def decorator(cls: type[T]) -> type[T]:
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(
                    f"{self.kind} {name!r} is already registered by {self._classes[name]!r}"
                )
            self._classes[name] = cls
            cls.registry_name = name  # type: ignore[attr-defined]
            return cls

        return decorator

    def get(self, name: str) -> type:
        """The class registered under ``name``, or imported from a ``module:Class`` path.

        Entry-point plug-ins are loaded first. Unknown names list the known ones.
        """
        load_plugins()
        if name in self._classes:
            return self._classes[name]
        if is_class_path(name):
            return import_class_path(name, self.kind, self.key)
        known = ", ".join(sorted(self._classes)) or "(none)"
        raise UnknownPartError(
            f"unknown {self.kind} {name!r}; known {self.kind}s: {known} (or a plug-in class "
            "as 'package.module:Class')",
            self.key,
        )

    def build(self, spec: Spec, **injected: Any) -> Any:
        """Instantiate a spec.

        ``injected`` are keyword arguments the caller knows (the encoder's channel count, the
        frame size, ...). They are passed only where the constructor accepts them and the spec
        does not set them itself, so a spec always wins.
        """
        name, kwargs = parse_spec(spec, self.kind)
        cls = self.get(name)
        params = inspect.signature(cls.__init__).parameters
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unknown = [k for k in kwargs if k not in params and not accepts_any]
        if unknown:
            allowed = ", ".join(p for p in params if p != "self")
            raise PartArgumentError(
                f"{self.kind} {name!r} got unknown argument(s) {unknown}; it accepts: {allowed}",
                self.key,
            )
        for key, value in injected.items():
            if key not in kwargs and (key in params or accepts_any):
                kwargs[key] = value
        return cls(**kwargs)

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._classes)

    def signature(self, name: str) -> dict[str, Any]:
        """Constructor arguments of ``name`` with their defaults (``inspect._empty`` if none)."""
        params = inspect.signature(self.get(name).__init__).parameters
        return {
            k: p.default
            for k, p in params.items()
            if k != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        }

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        load_plugins()
        return len(self._classes)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def parse_spec(spec: Spec, kind: str = "part") -> tuple[str, dict[str, Any]]:
    """Split a spec into its registered name and constructor arguments."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping):
        if "name" not in spec:
            raise ValueError(f"a {kind} spec mapping needs a 'name' key, got {dict(spec)!r}")
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        return str(spec["name"]), kwargs
    raise TypeError(f"a {kind} spec is a name or a mapping with 'name', got {type(spec).__name__}")


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """Normalise a spec to a plain dict (what is stored in hyper-parameters)."""
    name, kwargs = parse_spec(spec)
    return {"name": name, **kwargs}


def is_class_path(name: str) -> bool:
    """Whether a spec name is an import path (``pkg.module:Class`` or ``pkg.module.Class``)."""
    return ":" in name or "." in name


def import_class_path(path: str, kind: str = "part", key: str | None = None) -> type:
    """The class at ``path`` (``pkg.module:Class``, or ``pkg.module.Class``), imported."""
    module_name, sep, attribute = path.partition(":")
    if not sep:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise UnknownPartError(f"{kind} {path!r}: a class path is 'package.module:Class'", key)
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # the plug-in's own import failed: name it, not its internals
        raise PluginError(
            f"{kind} {path!r}: cannot import module {module_name!r} "
            f"({type(error).__name__}: {error})",
            key,
        ) from error
    cls = module
    for part in attribute.split("."):
        cls = getattr(cls, part, None)
        if cls is None:
            raise UnknownPartError(f"{kind} {path!r}: module {module_name!r} has no {part!r}", key)
    if not isinstance(cls, type):
        raise PluginError(f"{kind} {path!r} is a {type(cls).__name__}, not a class", key)
    return cls


_plugin_modules: dict[str, str] | None = None  # entry-point module -> its distribution


def load_plugins() -> dict[str, str]:
    """Import every module declared in the ``acga_lightning.plugins`` entry-point group, once.

    Returns ``{module: distribution}``. A module that fails to import raises a
    :class:`PluginError` naming the entry point, its package and the error.
    """
    global _plugin_modules
    if _plugin_modules is not None:
        return _plugin_modules
    _plugin_modules = {}  # set first: a plug-in that looks up a registry must not recurse
    loaded: dict[str, str] = {}
    try:
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            distribution = entry.dist.name if entry.dist is not None else "unknown package"
            try:
                entry.load()
            except Exception as error:
                raise PluginError(
                    f"plug-in {entry.name!r} of package {distribution!r} "
                    f"({ENTRY_POINT_GROUP} entry point {entry.value!r}) failed to import: "
                    f"{type(error).__name__}: {error}"
                ) from error
            loaded[entry.module] = distribution
    except BaseException:
        _plugin_modules = None  # try again (and fail again, loudly) at the next lookup
        raise
    _plugin_modules.update(loaded)
    return _plugin_modules


def origin(cls: type) -> str:
    """The distribution a part comes from: ``acga-lightning`` for built-ins, else the plug-in's."""
    module = cls.__module__
    if module == "acga_lightning" or module.startswith("acga_lightning."):
        return BUILT_IN
    modules = load_plugins()
    if module in modules:
        return modules[module]
    top = module.split(".")[0]
    distributions = importlib.metadata.packages_distributions().get(top)
    return distributions[0] if distributions else f"module {module}"


VIDEO_ENCODERS = Registry("video encoder")
TEXT_ENCODERS = Registry("text encoder")
ATTENTION = Registry("attention")
DECODERS = Registry("decoder")
LOSSES = Registry("loss")

REGISTRIES: dict[str, Registry] = {
    "video_encoder": VIDEO_ENCODERS,
    "text_encoder": TEXT_ENCODERS,
    "attention": ATTENTION,
    "decoder": DECODERS,
    "loss": LOSSES,
}
