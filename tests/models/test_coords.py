"""coords: the 8-channel coordinate map, checked cell by cell against its formula."""

from __future__ import annotations

import pytest
import torch

from acga_lightning.models.coords import COORD_CHANNELS, append_coordinates, coordinate_map


def test_coordinate_map_follows_the_formula_cell_by_cell() -> None:
    h, w = 2, 4
    coords = coordinate_map(h, w, dtype=torch.float64)
    assert coords.shape == (COORD_CHANNELS, h, w)
    for y in range(h):
        for x in range(w):
            xmin, xmax = x / w * 2 - 1, (x + 1) / w * 2 - 1
            ymin, ymax = y / h * 2 - 1, (y + 1) / h * 2 - 1
            expected = [xmin, ymin, xmax, ymax, (xmin + xmax) / 2, (ymin + ymax) / 2, 1 / w, 1 / h]
            torch.testing.assert_close(coords[:, y, x], torch.tensor(expected, dtype=torch.float64))
    # the grid tiles [-1, 1]: the first cell starts at -1, the last ends at 1
    assert coords[0, 0, 0] == -1 and coords[2, 0, -1] == 1 and coords[3, -1, 0] == 1


def test_append_coordinates_keeps_features_and_dtype() -> None:
    features = torch.randn(3, 5, 2, 2, dtype=torch.float16)
    out = append_coordinates(features)
    assert out.shape == (3, 5 + COORD_CHANNELS, 2, 2) and out.dtype == torch.float16
    assert torch.equal(out[:, :5], features)
    assert torch.equal(out[1, 5:], coordinate_map(2, 2, dtype=torch.float16))


def test_an_empty_grid_is_rejected() -> None:
    with pytest.raises(ValueError, match="positive grid"):
        coordinate_map(0, 3)
