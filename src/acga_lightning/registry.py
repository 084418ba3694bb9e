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
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

Spec = str | Mapping[str, Any]


class Registry:
    """A mapping from names to classes of one kind of part, built from specs."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
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
        """The class registered under ``name``; unknown names list the known ones."""
        try:
            return self._classes[name]
        except KeyError:
            known = ", ".join(sorted(self._classes)) or "(none)"
            raise KeyError(f"unknown {self.kind} {name!r}; known {self.kind}s: {known}") from None

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
            raise TypeError(
                f"{self.kind} {name!r} got unknown argument(s) {unknown}; it accepts: {allowed}"
            )
        for key, value in injected.items():
            if key not in kwargs and (key in params or accepts_any):
                kwargs[key] = value
        return cls(**kwargs)

    def names(self) -> list[str]:
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
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
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
