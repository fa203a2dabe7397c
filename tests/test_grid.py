"""geogan.grid: chip windows cover every pixel, stay inside the raster, follow the formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geogan.grid import (
    ChipWindow,
    block_windows,
    chip_count,
    chip_offsets,
    chip_windows,
    feather_weights,
    intersection,
)

sizes = st.integers(min_value=1, max_value=64)


@st.composite
def axis_cases(draw: st.DrawFn) -> tuple[int, int, int]:
    size = draw(sizes)
    overlap = draw(st.integers(min_value=0, max_value=size - 1))
    length = draw(st.integers(min_value=1, max_value=400))
    return length, size, overlap


@settings(max_examples=300, deadline=None)
@given(axis_cases())
def test_offsets_cover_every_pixel_and_stay_inside(case: tuple[int, int, int]) -> None:
    length, size, overlap = case
    offsets = chip_offsets(length, size, overlap)
    assert len(offsets) == chip_count(length, size, overlap)
    covered = np.zeros(max(length, size), dtype=bool)
    for o in offsets:
        covered[o:o + size] = True
    assert covered[:length].all()
    assert offsets == sorted(set(offsets))
    if length >= size:
        # Shifted inward: no chip hangs over the raster's end.
        assert all(0 <= o <= length - size for o in offsets)
    else:
        assert offsets == [0]  # padded: one chip from the first pixel


@settings(max_examples=300, deadline=None)
@given(axis_cases())
def test_neighbours_overlap_by_at_least_the_overlap(case: tuple[int, int, int]) -> None:
    length, size, overlap = case
    offsets = chip_offsets(length, size, overlap)
    steps = np.diff(offsets)
    stride = size - overlap
    # Every step is exactly the stride except the last, which is shorter (shifted inward).
    assert (steps[:-1] == stride).all()
    if len(steps):
        assert 0 < steps[-1] <= stride


@settings(max_examples=200, deadline=None)
@given(axis_cases())
def test_count_matches_docstring_formula(case: tuple[int, int, int]) -> None:
    length, size, overlap = case
    expected = 1 if length <= size else math.ceil((length - size) / (size - overlap)) + 1
    assert chip_count(length, size, overlap) == expected
    # And it is the least number of chips that can cover the axis with that stride.
    stride = size - overlap
    if length > size:
        assert size + (expected - 2) * stride < length <= size + (expected - 1) * stride


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 300), sizes,
       st.data())
def test_region_offsets_cover_region_inside_extent(start: int, length: int, extra: int,
                                                  size: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, size - 1))
    extent = start + length + extra
    offsets = chip_offsets(length, size, overlap, start=start, extent=extent)
    covered = np.zeros(extent + size, dtype=bool)
    for o in offsets:
        covered[o:o + size] = True
    assert covered[start:start + length].all()
    if extent >= size:
        assert all(0 <= o and o + size <= extent for o in offsets)


def test_region_outside_extent_is_rejected() -> None:
    with pytest.raises(ValueError):
        chip_offsets(10, 4, 0, start=5, extent=12)


@pytest.mark.parametrize("length,size,overlap", [(0, 4, 0), (5, 0, 0), (5, 4, 4), (5, 4, -1)])
def test_bad_arguments_are_rejected(length: int, size: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chip_count(length, size, overlap)


def test_chip_windows_are_the_product_of_the_axes() -> None:
    wins = chip_windows(67, 45, 16, 3)
    cols = chip_offsets(67, 16, 3)
    rows = chip_offsets(45, 16, 3)
    assert wins == [ChipWindow(c, r, 16, 16) for r in rows for c in cols]
    assert len(wins) == chip_count(67, 16, 3) * chip_count(45, 16, 3)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 120), st.integers(1, 120), sizes, st.data())
def test_chip_windows_cover_raster(width: int, height: int, size: int,
                                   data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, size - 1))
    covered = np.zeros((max(height, size), max(width, size)), dtype=bool)
    for w in chip_windows(width, height, size, overlap):
        assert (w.width, w.height) == (size, size)
        covered[w.row_off:w.row_end, w.col_off:w.col_end] = True
    assert covered[:height, :width].all()


def test_intersection() -> None:
    a = ChipWindow(0, 0, 10, 10)
    assert intersection(a, ChipWindow(5, 6, 10, 10)) == ChipWindow(5, 6, 5, 4)
    assert intersection(a, ChipWindow(10, 0, 5, 5)) is None  # touching edges only
    assert intersection(a, a) == a


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 600), st.integers(1, 600), st.integers(16, 300))
def test_block_windows_partition(width: int, height: int, block: int) -> None:
    count = np.zeros((height, width), dtype=np.int32)
    for w in block_windows(width, height, block):
        count[w.row_off:w.row_end, w.col_off:w.col_end] += 1
    assert (count == 1).all()


@pytest.mark.parametrize("h,w", [(1, 1), (16, 16), (7, 12)])
def test_feather_weights_peak_in_the_middle(h: int, w: int) -> None:
    weights = feather_weights(h, w)
    assert weights.shape == (h, w)
    assert (weights >= 1).all()
    assert weights[0, 0] == 1 and weights[-1, -1] == 1
    np.testing.assert_array_equal(weights, weights[::-1, ::-1])  # symmetric
    centre = weights[h // 2, w // 2]
    assert centre == weights.max()
    # Each step inward from an edge raises the weight by one, until the centre.
    assert weights[min(1, h - 1), min(1, w - 1)] == min(2, centre)
