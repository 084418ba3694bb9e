"""Fixtures shared by every test module: generated datasets, written once per test session.

``toy_a2d(**kwargs)`` and ``toy_jhmdb(**kwargs)`` return the root of a dataset written by
:func:`~acga_lightning.data.synthetic.write_a2d` /
:func:`~acga_lightning.data.synthetic.write_jhmdb` with
those arguments; modules that ask for the same arguments get the same folder, written once.
``a2d_root`` (8 videos) and ``small_a2d_root`` (4 videos, for tests that run an encoder over
every clip) are the two A2D datasets most modules use.

The folders are shared between modules: readers may add their index caches (keyed by their
settings), but a test that changes, breaks or deletes files must work on a copy
(``shutil.copytree(root, tmp_path / "data")``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from acga_lightning.data.synthetic import write_a2d, write_jhmdb

#: The A2D dataset most modules read: 8 videos of 20-30 frames, 64 pixels high, every quirk.
A2D = {"num_videos": 8, "seed": 1, "height": 64, "num_frames": (20, 30)}
#: Fewer clips, for modules that run an encoder over every clip (feature caches, configs).
SMALL_A2D = {"num_videos": 4, "seed": 0, "height": 64}


def _written_once(
    factory: pytest.TempPathFactory, writer: Callable[..., Path], name: str
) -> Callable[..., Path]:
    roots: dict[str, Path] = {}

    def make(**kwargs) -> Path:
        key = json.dumps(kwargs, sort_keys=True, default=str)
        if key not in roots:
            roots[key] = writer(factory.mktemp(name) / "data", **kwargs)
        return roots[key]

    return make


@pytest.fixture(scope="session")
def toy_a2d(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``toy_a2d(**write_a2d_kwargs)``: a generated A2D-Sentences root, shared and read-only."""
    return _written_once(tmp_path_factory, write_a2d, "toy_a2d")


@pytest.fixture(scope="session")
def toy_jhmdb(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``toy_jhmdb(**write_jhmdb_kwargs)``: a generated J-HMDB-Sentences root, shared, read-only."""
    return _written_once(tmp_path_factory, write_jhmdb, "toy_jhmdb")


@pytest.fixture(scope="session")
def a2d_root(toy_a2d: Callable[..., Path]) -> Path:
    return toy_a2d(**A2D)


@pytest.fixture(scope="session")
def small_a2d_root(toy_a2d: Callable[..., Path]) -> Path:
    return toy_a2d(**SMALL_A2D)
