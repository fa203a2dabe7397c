"""Where the statistics are measured: the plan of ``global`` sample windows over the rasters,
and reading a window mirrored past the raster's edges with the weights of its core."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geogan.blend import AxisLayout, reflect_index
from geogan.errors import InputError, first_line

#: ``global``: a raster of at most this many pixels is measured whole, in one window that
#: reaches this many mirrored pixels past each edge (as translation windows do).
SAMPLE_FULL_PX = 1_000_000
SAMPLE_FULL_MARGIN = 16
#: Larger rasters: side of the sample windows (px), and the border of each window left out
#: of the statistics (window padding affects the features near the edge); the windows'
#: cores (``SAMPLE_WINDOW - 2 * SAMPLE_BORDER`` px) tile the raster.
SAMPLE_WINDOW = 256
SAMPLE_BORDER = 32
#: The estimation's generator work stays within this fraction of the raster's pixels (a
#: translation's work is 1.3x them or more), and within this many pixels (about a fifth of
#: a 16,000 x 16,000 px translation).
SAMPLE_FRACTION = 0.4
SAMPLE_MAX_WORK = 64_000_000
#: The sample's activations stay within about this many bytes (it is one batch), as
#: estimated by :func:`geogan.normstats.probe.activation_bytes_per_px` (measured peaks agree).
SAMPLE_MEMORY = 384 * 2 ** 20
#: Layer by layer, each chunk goes through the network in this many parts (the layers
#: before the one measured are frozen, so the statistics are those of the whole chunk):
#: only one part's activations are alive at a time, besides the measured layer's input.
CHUNK_PARTS = 8


@dataclass(frozen=True)
class SampleWindow:
    """A sample window of raster ``index``: first pixel ``(row, col)`` (may be negative)."""

    index: int
    row: int
    col: int


@dataclass(frozen=True)
class SamplePlan:
    """Windows of ``height x width`` px whose pixels ``border`` px inside their edges count.

    ``chunk`` 0: the windows go through the network as one batch, whose normalisation
    layers use statistics over all of it (one pass). Otherwise they go in batches of
    ``chunk``, once per normalisation layer (layer by layer, with bounded memory).
    """

    windows: list[SampleWindow]
    height: int
    width: int
    border: int
    chunk: int = 0


def plan_global_sample(sizes: Sequence[tuple[int, int]], per_px_bytes: float,
                       multiple: int = 1, passes: float = 1.0) -> SamplePlan:
    """Where the ``global`` statistics of rasters of ``(width, height)`` px are measured.

    One raster of at most :data:`SAMPLE_FULL_PX` pixels (and whose activations fit
    :data:`SAMPLE_MEMORY` at ``per_px_bytes``) is measured whole, as one window
    mirrored :data:`SAMPLE_FULL_MARGIN` px past its edges: its statistics are exactly
    those of every pixel. Otherwise :data:`SAMPLE_WINDOW` px
    windows, whose cores (less :data:`SAMPLE_BORDER` px on each side,
    :class:`~geogan.blend.AxisLayout` with ``overlap = 2 * border``) tile each raster,
    are taken on an even sub-grid, shared out across rasters by area. The estimation
    may cost :data:`SAMPLE_FRACTION` of the rasters' pixels in forward-pass pixels, at
    most :data:`SAMPLE_MAX_WORK`: as one batch within :data:`SAMPLE_MEMORY`, or, when
    that gives more windows, in chunks once per layer (``passes`` forward passes, see
    :class:`Probe`). The plan depends on the rasters and the model only, never on the
    translation's tile, so every tiling gets the same statistics.
    """
    def up(n: int) -> int:
        return -(-n // multiple) * multiple

    if len(sizes) == 1:
        w, h = sizes[0]
        m = SAMPLE_FULL_MARGIN
        if w * h <= SAMPLE_FULL_PX and up(w + 2 * m) * up(h + 2 * m) * per_px_bytes \
                <= SAMPLE_MEMORY:
            return SamplePlan([SampleWindow(0, -m, -m)], up(h + 2 * m), up(w + 2 * m), m)
    border = SAMPLE_BORDER
    size = max(multiple, up(min(SAMPLE_WINDOW, max(max(wh) for wh in sizes) + 2 * border)))
    border = min(border, size // 4)
    total_px = sum(w * h for w, h in sizes)
    work = min(SAMPLE_FRACTION * total_px, SAMPLE_MAX_WORK)  # in forward-pass pixels
    one_batch = int(min(work, SAMPLE_MEMORY / per_px_bytes) // size ** 2)
    layered = int(work / passes // size ** 2)
    budget, chunk = (one_batch, 0) if one_batch >= layered else (layered, max(
        1, int(SAMPLE_MEMORY / per_px_bytes // size ** 2)))
    layouts = [(AxisLayout(w, size, 2 * border), AxisLayout(h, size, 2 * border))
               for w, h in sizes]
    totals = [ax.count * ay.count for ax, ay in layouts]
    budget = max(budget, len(sizes))
    if sum(totals) <= budget:
        shares = totals
    else:
        area = np.array([w * h for w, h in sizes], dtype=np.float64)
        shares = [max(1, min(t, int(s))) for t, s in
                  zip(totals, np.floor(budget * area / area.sum()), strict=True)]
    out: list[SampleWindow] = []
    for i, ((ax, ay), n) in enumerate(zip(layouts, shares, strict=True)):
        for r, c in _even_subgrid(ay.count, ax.count, n):
            out.append(SampleWindow(i, ay.start(r), ax.start(c)))
    return SamplePlan(out, size, size, border, chunk)


def _even_subgrid(rows: int, cols: int, n: int) -> list[tuple[int, int]]:
    """About ``n`` cells of a ``rows x cols`` grid, spread evenly (all of them when n >= size)."""
    if n >= rows * cols:
        return [(r, c) for r in range(rows) for c in range(cols)]
    ny = max(1, min(rows, round(math.sqrt(n * rows / cols))))
    nx = max(1, min(cols, n // ny))
    ny = max(1, min(rows, n // nx))
    rs = np.unique(np.round((np.arange(ny) + 0.5) * rows / ny - 0.5).astype(int))
    cs = np.unique(np.round((np.arange(nx) + 0.5) * cols / nx - 0.5).astype(int))
    return [(int(r), int(c)) for r in rs for c in cs]


def read_window(src: Any, indexes: list[int], row: int, col: int, height: int,
                width: int) -> np.ndarray:
    """A ``height x width`` window ``(C, height, width)`` from ``row, col``, mirrored past edges."""
    from rasterio.errors import RasterioIOError
    from rasterio.windows import Window

    rows = reflect_index(row, height, src.height)
    cols = reflect_index(col, width, src.width)
    r0, r1, c0, c1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    try:
        data = src.read(indexes, window=Window(c0, r0, c1 - c0, r1 - r0))
    except RasterioIOError as exc:
        raise InputError(f"{src.name} could not be read at rows {r0}-{r1} "
                         f"({first_line(exc)}); check that the file is complete") from exc
    return data[:, rows - r0][:, :, cols - c0]


def core_weights(row: int, col: int, height: int, width: int, border: int, raster_width: int,
                 raster_height: int) -> np.ndarray:
    """``(height, width)`` 0/1 weights: the window's core that lies inside the raster."""
    w = np.zeros((height, width), dtype=np.float32)
    y0, x0 = max(row + border, 0), max(col + border, 0)
    y1 = min(row + height - border, raster_height)
    x1 = min(col + width - border, raster_width)
    if y1 > y0 and x1 > x0:
        w[y0 - row:y1 - row, x0 - col:x1 - col] = 1.0
    return w
