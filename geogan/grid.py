"""Pure window maths for tiling and mosaicking: chip windows, intersections, feather weights.

No raster I/O here: windows are plain ``(col_off, row_off, width, height)`` tuples in
pixel coordinates, so the maths is tested on its own.

Chip layout along one axis
--------------------------
A region of ``length`` pixels is cut into chips of ``size`` pixels that step by
``stride = size - overlap``. Chips start at ``0, stride, 2 * stride, ...`` and the
last chip is *shifted inward* so that it ends exactly on the region's last pixel:
no pixel is dropped and no chip hangs over the edge. The number of chips is::

    n = 1                                   if length <= size
    n = ceil((length - size) / stride) + 1  otherwise

(the formula of torchgeo's ``tile_to_chips``). The shifted last chip overlaps its
neighbour by more than ``overlap`` pixels when ``length - size`` does not divide by
``stride``. Only when the raster itself is smaller than one chip is a chip padded:
it starts at pixel 0 and the pixels past the raster's edge are filled with nodata
by the caller. A raster of ``W x H`` pixels gives ``n(W) * n(H)`` chips.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np


class ChipWindow(NamedTuple):
    """A rectangle of pixels: ``col_off``/``row_off`` of its top-left pixel and its size."""

    col_off: int
    row_off: int
    width: int
    height: int

    @property
    def col_end(self) -> int:
        return self.col_off + self.width

    @property
    def row_end(self) -> int:
        return self.row_off + self.height


def chip_count(length: int, size: int, overlap: int = 0) -> int:
    """Number of chips of ``size`` px with ``overlap`` px that cover ``length`` px."""
    _check(length, size, overlap)
    if length <= size:
        return 1
    return math.ceil((length - size) / (size - overlap)) + 1


def chip_offsets(length: int, size: int, overlap: int = 0, *, start: int = 0,
                 extent: int | None = None) -> list[int]:
    """Offsets of the chips covering ``[start, start + length)`` along one axis.

    ``extent`` is the raster's length on that axis (default ``start + length``);
    chips stay inside ``[0, extent)`` whenever ``extent >= size``. A region shorter
    than ``size`` gets one chip that begins at ``start`` (moved back to fit the
    raster if needed); a raster shorter than ``size`` gets one chip at 0 that is
    padded past the raster's end.
    """
    _check(length, size, overlap)
    if extent is None:
        extent = start + length
    if start < 0 or start + length > extent:
        raise ValueError(f"region [{start}, {start + length}) is outside [0, {extent})")
    if length <= size:
        return [max(0, min(start, extent - size))]
    stride = size - overlap
    n = chip_count(length, size, overlap)
    offsets = [start + i * stride for i in range(n - 1)]
    offsets.append(start + length - size)
    return offsets


def chip_windows(width: int, height: int, size: int, overlap: int = 0,
                 region: ChipWindow | None = None) -> list[ChipWindow]:
    """Chip windows (row by row, left to right) covering ``region`` of a ``width x height`` raster.

    ``region`` defaults to the whole raster. Every window is ``size x size``; see the
    module docstring for where edge chips go and when they are padded.
    """
    if region is None:
        region = ChipWindow(0, 0, width, height)
    cols = chip_offsets(region.width, size, overlap, start=region.col_off, extent=width)
    rows = chip_offsets(region.height, size, overlap, start=region.row_off, extent=height)
    return [ChipWindow(c, r, size, size) for r in rows for c in cols]


def intersection(a: ChipWindow, b: ChipWindow) -> ChipWindow | None:
    """The overlap of two windows, or ``None`` when they do not overlap."""
    c0, r0 = max(a.col_off, b.col_off), max(a.row_off, b.row_off)
    c1, r1 = min(a.col_end, b.col_end), min(a.row_end, b.row_end)
    if c1 <= c0 or r1 <= r0:
        return None
    return ChipWindow(c0, r0, c1 - c0, r1 - r0)


def block_windows(width: int, height: int, block: int) -> Iterator[ChipWindow]:
    """Non-overlapping ``block x block`` windows (smaller at the right and bottom edges)."""
    if block <= 0:
        raise ValueError(f"block must be positive, got {block}")
    for r in range(0, height, block):
        for c in range(0, width, block):
            yield ChipWindow(c, r, min(block, width - c), min(block, height - r))


def feather_weights(height: int, width: int) -> np.ndarray:
    """Blend weights ``(height, width)`` rising linearly from 1 at a chip's edge to its centre.

    ``w[y, x] = min(ramp_h[y], ramp_w[x])`` with ``ramp_n[i] = min(i + 1, n - i)``: a
    pyramid, so where chips overlap the one whose centre is nearer dominates and
    seams fade out. Weights are never zero, so a pixel covered by any chip gets a value.
    """
    ry = np.minimum(np.arange(1, height + 1), np.arange(height, 0, -1)).astype(np.float64)
    rx = np.minimum(np.arange(1, width + 1), np.arange(width, 0, -1)).astype(np.float64)
    return np.minimum.outer(ry, rx)


def _check(length: int, size: int, overlap: int) -> None:
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    if size <= 0:
        raise ValueError(f"chip size must be positive, got {size}")
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must be in [0, size), got {overlap} for size {size}")
