"""Vertical strips: translating very wide rasters in memory that does not grow with the width.

:class:`~geogan.translate.engine.Job` holds the window row in flight: the rows read,
the blending accumulator and the finished rows waiting to be written are all as wide
as the raster. A raster wider than :func:`strip_width` (a state-wide VRT mosaic is
hundreds of thousands of pixels wide) is therefore cut into vertical strips of whole
output blocks, translated one after another, each from top to bottom:

- a strip owns the output columns ``[x0, x1)``, a whole number of the output's
  blocks (the last strip ends at the raster's edge), so every block is written once;
- it runs every window of the raster's window grid (:class:`~geogan.blend.AxisLayout`)
  that touches those columns, and only those: a window crossing the boundary of two
  strips runs in both (one window column per boundary, two at most, where the
  boundary falls on an overlap);
- it reads the raster columns those windows need (:attr:`Strip.r0` to :attr:`Strip.r1`,
  reflected at the raster's edges as before).

The windows, their inputs, the order in which their weighted outputs are summed
into each pixel (left to right, top to bottom) and the weight totals each pixel is
divided by are those of the raster in one piece, so the output's pixels, mask and
metadata are the same, bit for bit, whatever the strip width, as long as the
generator gives a window the same output whatever other windows share its batch (so
on the CPU, one window per batch by default; batches stay full across strips). Strips
change the order in which pixels are finished and written, so a GeoTIFF's tiles sit
in another order in the file, not their values.

The strip width comes from a memory budget: :data:`STRIP_BUDGET_MB` for the buffers
that grow with the width (upper bound in :func:`column_bytes`), which gives strips of
at most 6,656 px for the default ``tile`` 512 on 4-band uint8 rasters (a 60,000 px
wide raster: 10 strips, 9 window columns run twice, 7% more windows). The environment
variable ``GEOGAN_STRIP_WIDTH`` (pixels, rounded down to whole blocks, at least one)
sets it instead, to trade memory against the windows run twice at strip boundaries.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from geogan.blend import AxisLayout
from geogan.errors import InputError

if TYPE_CHECKING:
    from geogan.translate.engine import Job

log = logging.getLogger(__name__)

#: MB the width-dependent buffers of one strip may take (:func:`column_bytes` per column).
STRIP_BUDGET_MB = 256
#: Environment variable: the strip width in pixels, instead of the one from the budget.
STRIP_ENV = "GEOGAN_STRIP_WIDTH"
#: Blocks a strip boundary may move to where fewer windows cross it.
_BACK = 4


@dataclass(frozen=True)
class Strip:
    """Output columns ``[x0, x1)`` from windows ``[c0, c1)``, reading columns ``[r0, r1)``."""

    x0: int
    x1: int
    c0: int
    c1: int
    r0: int
    r1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def read_width(self) -> int:
        return self.r1 - self.r0

    @property
    def windows(self) -> range:
        """Window columns of the raster's grid that run in this strip."""
        return range(self.c0, self.c1)


class StripAxis:
    """The column layout seen by a :class:`~geogan.translate.stitch.Stitcher` of one strip.

    It answers as :class:`~geogan.blend.AxisLayout` does for the raster's columns, with
    coordinates counted from the strip's first column: window ``c`` (numbered as in the
    raster's grid) starts at ``ax.start(c) - x0``, and the weight totals are the raster's,
    cut to the strip, so each pixel is divided by the same total as without strips.
    """

    def __init__(self, ax: AxisLayout, strip: Strip) -> None:
        self._ax = ax
        self._x0 = strip.x0
        self.length = strip.width
        self.tile = ax.tile
        self.overlap = ax.overlap
        self.stride = ax.stride

    def start(self, c: int) -> int:
        return self._ax.start(c) - self._x0

    def weight_totals(self, weights: np.ndarray) -> np.ndarray:
        return self._ax.weight_totals(weights)[self._x0:self._x0 + self.length]


def windows_touching(ax: AxisLayout, x0: int, x1: int) -> tuple[int, int]:
    """``(c0, c1)``: the windows of ``ax`` holding any pixel of columns ``[x0, x1)``."""
    # window c covers [c * stride - margin, c * stride - margin + tile)
    c0 = max(0, (x0 - ax.tile + ax.margin) // ax.stride + 1)
    c1 = min(ax.count, -(-(x1 + ax.margin) // ax.stride))
    return c0, c1


def make_strip(ax: AxisLayout, x0: int, x1: int) -> Strip:
    """The strip owning columns ``[x0, x1)``: its windows and the raster columns they read."""
    c0, c1 = windows_touching(ax, x0, x1)
    lo, hi = x0, x1
    for c in range(c0, c1):  # reflected windows at the edges may reach anywhere
        cols = ax.source_index(c)
        lo, hi = min(lo, int(cols.min())), max(hi, int(cols.max()) + 1)
    return Strip(x0, x1, c0, c1, lo, hi)


def _shared(ax: AxisLayout, x: int) -> int:
    """Windows that run in both strips meeting at column ``x``."""
    left = windows_touching(ax, 0, x)[1]
    right = windows_touching(ax, x, ax.length)[0]
    return left - right


def plan_strips(ax: AxisLayout, block: int | None, width_px: int) -> list[Strip]:
    """Strips of whole ``block`` columns covering ``ax.length``, at most ``width_px`` wide
    (or one block), as few as can be and of about even widths.

    One strip (the whole raster) when ``block`` is None (an output not written in
    tiles, whose blocks span its width) or ``width_px`` is the raster width or more.
    Each boundary is moved by up to :data:`_BACK` blocks to where the fewest windows
    cross it (one window column where the overlap leaves room, else two).
    """
    width = ax.length
    if block is None or width_px >= width:
        return [make_strip(ax, 0, width)]
    most = max(block, width_px // block * block)
    n = math.ceil(width / most)
    even = math.ceil(width / n / block) * block  # n strips of even widths
    cuts = [0]
    while width - cuts[-1] > most:
        target = cuts[-1] + even
        # the strips left after this cut must still hold the rest: n strips in all
        lowest = max(width - (n - len(cuts)) * most, cuts[-1] + 1, target - _BACK * block)
        candidates = range(cuts[-1] + most, lowest - 1, -block)
        cuts.append(min(candidates, key=lambda x: (_shared(ax, x), abs(x - target), -x)))
    cuts.append(width)
    return [make_strip(ax, a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def column_bytes(tile: int, overlap: int, in_bands: int, in_itemsize: int, out_bands: int,
                 out_itemsize: int, block_rows: int) -> int:
    """Bytes per output column of the buffers that grow with a strip's width (upper bound).

    The rows read for a window row (and their float32 copy or mirrored edge rows), the
    validity masks of rows in flight, the float32 accumulator of ``tile`` rows, the
    finished rows in the queues and being made, and the writer's rows waiting for a block.
    """
    stride = tile - overlap
    rows_read = tile + stride
    reader = in_bands * rows_read * (in_itemsize + 4) + 2 * rows_read
    acc = out_bands * tile * 4
    finished = 4 * out_bands * stride * out_itemsize  # being made, two queued, being written
    writer = (out_bands * out_itemsize + 1) * (block_rows + tile)
    return reader + acc + finished + writer


def strip_width(per_column: int, budget_mb: float = STRIP_BUDGET_MB) -> int:
    """Strip width in pixels: ``GEOGAN_STRIP_WIDTH`` if set, else what fits the budget."""
    given = os.environ.get(STRIP_ENV, "").strip()
    if given:
        try:
            value = int(given)
        except ValueError:
            value = 0
        if value < 1:
            raise InputError(f"{STRIP_ENV}={given}: give the strip width in pixels, a "
                             "positive whole number, or unset it")
        return value
    return max(1, math.floor(budget_mb * 2**20 / max(per_column, 1)))


def is_tiled(profile: dict[str, Any]) -> bool:
    """Whether an output of ``profile`` is written in tiles (not in rows as wide as it)."""
    tiled = profile.get("tiled", False)
    return tiled is True or str(tiled).upper() in ("TRUE", "YES", "ON", "1")


def plan_job_strips(job: Job) -> list[Strip]:
    """The strips :class:`~geogan.translate.engine.Job` translates its raster in, left to right.

    One strip unless the raster is wider than :func:`strip_width` and the output is
    tiled (an untiled output's blocks span its width: writing them in strips would
    rewrite each block once per strip).
    """
    from geogan.sink import BLOCK_SIZE

    profile, gen, config = job.profile, job.gen, job.config
    per_column = column_bytes(config.tile, config.overlap, len(job.indexes),
                              np.dtype(gen.in_norm.dtype).itemsize, gen.out_bands,
                              np.dtype(gen.out_norm.dtype).itemsize, BLOCK_SIZE)
    width = strip_width(per_column)
    if width >= job.width:
        return [make_strip(job.ax, 0, job.width)]
    if not is_tiled(profile):
        log.info("%s: %d px wide, more than the %d px translated at a time to bound memory, "
                 "but the output is not tiled: translating it whole", job.input_path.name,
                 job.width, width)
        return [make_strip(job.ax, 0, job.width)]
    block = int(profile.get("blockxsize") or BLOCK_SIZE)
    strips = plan_strips(job.ax, block, width)
    extra = sum(len(s.windows) for s in strips) - job.ax.count
    log.info("%s: %d px wide, translated in %d vertical strips of about %d px to bound "
             "memory (%d window column(s) run twice at their boundaries)",
             job.input_path.name, job.width, len(strips), strips[0].width, extra)
    return strips
