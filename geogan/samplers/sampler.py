"""The window sampler: random ``crop x crop`` windows over the valid ground of one domain's
rasters, drawn, read and filtered (:class:`WindowSampler`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geogan.errors import InputError

#: Positions tried in one raster before another raster is drawn, and rasters tried.
TRIES_PER_RASTER = 16
RASTER_ROUNDS = 8

_EDGE = 1e-6  # px: a window edge on the AOI boundary is inside it


@dataclass(frozen=True)
class WindowSource:
    """One raster of a domain as the sampler sees it (picklable: no open dataset).

    ``region`` (col, row, width, height) is the part of the raster's grid windows are
    drawn in; ``aoi_wkb`` the AOI in pixel coordinates of that grid (None: no AOI);
    ``valid_px`` the estimated valid pixels inside both, the raster's weight.
    """

    path: Path
    pair: Path | None
    region: tuple[int, int, int, int]
    aoi_wkb: bytes | None
    valid_px: int


@dataclass(frozen=True)
class Window:
    """A drawn window: the source's index and the window's top-left pixel on its grid."""

    source: int
    col: int
    row: int


class _Opened:
    """The views of a sampler's sources, opened in one process, each on first use."""

    def __init__(self, sampler: WindowSampler) -> None:
        self.pid = os.getpid()
        self.sampler = sampler
        self.stack = contextlib.ExitStack()
        self.views: dict[int, tuple[Any, Any]] = {}
        self.aois: dict[int, Any] = {}

    def view(self, i: int) -> tuple[Any, Any]:
        """``(view, pair view or None)`` of source ``i``."""
        if i not in self.views:
            import shapely

            from geogan.tiling import open_view, pair_view

            src = self.sampler.sources[i]
            cfg = self.sampler.tile_config
            with contextlib.ExitStack() as stack:
                view, _ = open_view(src.path, cfg, stack)
                pview = None
                if src.pair is not None:
                    pview, _ = pair_view(view, src.pair, cfg, stack)
                self.stack.enter_context(stack.pop_all())
            area = None if src.aoi_wkb is None else shapely.from_wkb(src.aoi_wkb)
            if area is not None:
                shapely.prepare(area)
            self.views[i], self.aois[i] = (view, pview), area
        return self.views[i]

    def aoi(self, i: int) -> Any:
        self.view(i)
        return self.aois[i]

    def close(self) -> None:
        self.stack.close()


class WindowSampler:
    """Random ``crop x crop`` windows over the valid ground of one domain's rasters.

    :meth:`draw` takes a numpy Generator and returns the pixels of an accepted window
    (and of its pair); everything random comes from that generator. Rasters open on
    first use in each process; pickling (to a loader worker) drops them.
    """

    def __init__(self, sources: Sequence[WindowSource], crop: int, tile_config: Any,
                 max_nodata: float, min_std: float) -> None:
        self.sources = tuple(sources)
        self.crop = crop
        self.tile_config = tile_config
        self.max_nodata = max_nodata
        self.min_std = min_std
        weights = np.array([max(s.valid_px, 0) for s in self.sources], dtype=np.float64)
        if not len(weights) or weights.sum() <= 0:
            weights = np.ones(len(self.sources))
        self.cum = np.cumsum(weights / weights.sum())
        #: Accepted windows found before training; drawn from when retries run out.
        self.fallback: tuple[Window, ...] = ()
        self._opened: _Opened | None = None

    @property
    def valid_px(self) -> int:
        return sum(s.valid_px for s in self.sources)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_opened"] = None
        return state

    def _views(self) -> _Opened:
        if self._opened is None or self._opened.pid != os.getpid():
            self._opened = _Opened(self)  # a forked worker never touches its parent's files
        return self._opened

    def close(self) -> None:
        if self._opened is not None and self._opened.pid == os.getpid():
            self._opened.close()
        self._opened = None

    # -- drawing --

    def pick_source(self, rng: np.random.Generator) -> int:
        """A source index, with probability proportional to its valid pixels."""
        return int(min(np.searchsorted(self.cum, rng.random(), side="right"),
                       len(self.sources) - 1))

    def position(self, source: int, rng: np.random.Generator) -> tuple[int, int]:
        """A uniform top-left pixel for a window in ``source``'s region.

        Along an axis where the region is shorter than the crop, the window covers the
        whole region and hangs over it (read padded with nodata).
        """
        col0, row0, width, height = self.sources[source].region
        crop = self.crop
        col = col0 + int(rng.integers(0, width - crop + 1)) if width >= crop else \
            col0 + width - crop + int(rng.integers(0, crop - width + 1))
        row = row0 + int(rng.integers(0, height - crop + 1)) if height >= crop else \
            row0 + height - crop + int(rng.integers(0, crop - height + 1))
        return col, row

    def read(self, win: Window) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Pixels ``(bands, crop, crop)`` and validity ``(crop, crop)`` of A (and its pair)."""
        from geogan.grid import ChipWindow

        opened = self._views()
        cw = ChipWindow(win.col, win.row, self.crop, self.crop)
        views = [v for v in opened.view(win.source) if v is not None]
        chips = [v.read(cw) for v in views]
        valids = [v.valid(cw, ch) for v, ch in zip(views, chips, strict=True)]
        return chips, valids

    def inside_aoi(self, win: Window) -> bool:
        import shapely

        area = self._views().aoi(win.source)
        if area is None:
            return True
        box = shapely.box(win.col + _EDGE, win.row + _EDGE, win.col + self.crop - _EDGE,
                          win.row + self.crop - _EDGE)
        return bool(shapely.covers(area, box))

    def try_draw(self, rng: np.random.Generator
                 ) -> tuple[Window, list[np.ndarray], list[np.ndarray]] | None:
        """An accepted window, or None when every try was rejected."""
        from geogan.tiling import rejection

        for _ in range(RASTER_ROUNDS):
            source = self.pick_source(rng)
            for _ in range(TRIES_PER_RASTER):
                col, row = self.position(source, rng)
                win = Window(source, col, row)
                if not self.inside_aoi(win):
                    continue
                chips, valids = self.read(win)
                if rejection(chips, valids, self.max_nodata, self.min_std) is None:
                    return win, chips, valids
        return None

    def draw(self, rng: np.random.Generator) -> tuple[Window, list[np.ndarray],
                                                      list[np.ndarray]]:
        """An accepted window; after many rejections, one of the windows found before training."""
        got = self.try_draw(rng)
        if got is not None:
            return got
        if not self.fallback:
            raise InputError("no window passed the filters")  # scan_windows checks first
        win = self.fallback[int(rng.integers(len(self.fallback)))]
        chips, valids = self.read(win)
        return win, chips, valids
