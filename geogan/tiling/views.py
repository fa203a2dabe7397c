"""Sources seen on the tiling grid: opened and checked, warped to a target grid, pairs aligned.

A :class:`View` reads a raster's selected bands on the grid chips are cut from (the
source itself, a WarpedVRT for ``--crs/--res/--align-to`` onto the grid of
:mod:`geogan.tiling.grids`, or ``--pair`` B put on A's grid); a :class:`Plan` is one
input with its pair and the chip windows to cut.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from geogan.colortable import ColourTable, expand, table_valid
from geogan.errors import GeoreferenceError, InputError, first_line
from geogan.grid import ChipWindow, chip_count, chip_windows, intersection
from geogan.limits import check_chip_count, check_read_size
from geogan.rasterio_io import check_readable, files_read, open_raster
from geogan.rasterio_meta import (
    RasterMeta,
    check_pixels,
    data_bands,
    has_mask,
    read_meta,
    read_valid,
)
from geogan.tiling.config import RESAMPLING, TileConfig, fmt_bands
from geogan.tiling.grids import target_grid

log = logging.getLogger(__name__)

#: Rasters whose missing nodata value was warned about (in this process).
_WARNED: set[str] = set()


@dataclass
class View:
    """A raster as seen on a tiling grid: selected bands, nodata, reads padded with nodata.

    ``dataset`` is the open source or a warped view of it; grid pixel ``(col, row)``
    is dataset pixel ``(col - shift[0], row - shift[1])``. ``coverage`` is the part of
    the grid where the dataset has pixels.
    """

    path: Path
    dataset: Any
    bands: tuple[int, ...]
    nodata: float | None
    dtype: str
    crs: CRS | None
    transform: Any
    width: int
    height: int
    shift: tuple[int, int] = (0, 0)
    #: Band meaning of the selected bands, written onto every chip.
    meta: RasterMeta | None = None
    #: Whether validity comes from a mask (per-dataset mask or alpha), not only nodata.
    masked: bool = False
    #: The colour table of a palette band read as colour indices (tiling keeps them).
    table: ColourTable | None = None

    def __post_init__(self) -> None:
        self.masked = has_mask(self.dataset, self.bands)

    @property
    def coverage(self) -> ChipWindow:
        ds = self.dataset
        return ChipWindow(self.shift[0], self.shift[1], ds.width, ds.height)

    def read(self, win: ChipWindow) -> np.ndarray:
        """Pixels of grid window ``win`` as ``(bands, height, width)``, nodata outside."""
        part = intersection(win, self.coverage)
        if part == win:
            return self._read(part)
        fill = self.nodata if self.nodata is not None else 0
        out = np.full((len(self.bands), win.height, win.width), fill, dtype=self.dtype)
        if part is not None:
            c, r = part.col_off - win.col_off, part.row_off - win.row_off
            out[:, r:r + part.height, c:c + part.width] = self._read(part)
        return out

    def valid(self, win: ChipWindow, data: np.ndarray) -> np.ndarray:
        """``(height, width)`` booleans: pixels of ``data`` (read for ``win``) holding data.

        GDAL's rule (:func:`geogan.rasterio_meta.read_valid`); outside the raster
        nothing is valid.
        """
        part = intersection(win, self.coverage)
        if part == win:
            return self._valid(part, data)
        valid = np.zeros((win.height, win.width), dtype=bool)
        if part is not None:
            c, r = part.col_off - win.col_off, part.row_off - win.row_off
            inner = data[:, r:r + part.height, c:c + part.width]
            valid[r:r + part.height, c:c + part.width] = self._valid(part, inner)
        return valid

    def _valid(self, part: ChipWindow, data: np.ndarray) -> np.ndarray:
        w = self._window(part)
        try:
            valid = read_valid(self.dataset, self.bands, w, data, self.nodata, self.masked)
        except RasterioError as exc:
            raise InputError(f"the mask of {self.path} could not be read at pixels "
                             f"{part.col_off},{part.row_off} ({first_line(exc)}); the file may "
                             "be truncated or corrupt: re-download or re-export it") from exc
        if self.table is not None:
            valid &= table_valid(data, self.table)
        return valid

    def colours(self, data: np.ndarray) -> np.ndarray:
        """``data`` as colours: colour indices expanded through :attr:`table`, else as is."""
        return data if self.table is None else expand(data, self.table)

    def _window(self, part: ChipWindow) -> Window:
        return Window(part.col_off - self.shift[0], part.row_off - self.shift[1], part.width,
                      part.height)

    def _read(self, part: ChipWindow) -> np.ndarray:
        w = self._window(part)
        try:
            return self.dataset.read(indexes=list(self.bands), window=w)
        except RasterioError as exc:
            raise InputError(f"{self.path} could not be read at pixels "
                             f"{part.col_off},{part.row_off} ({first_line(exc)}); the file may "
                             "be truncated or corrupt: re-download or re-export it") from exc


@dataclass
class Plan:
    """One input raster, its (optional) pair view and the chip windows to cut."""

    view: View
    pair: View | None
    windows: list[ChipWindow]
    padded: bool
    files: tuple[Path, ...] = ()  # the files GDAL reads for this input (a VRT's sources too)


def open_view(path: Path, config: TileConfig, stack: contextlib.ExitStack,
              option: str = "`bands`", expand: bool = True) -> tuple[View, Any]:
    """``path`` opened, checked and seen on the grid ``config`` asks for; -> (view, source).

    The one way tiling and training from rasters (:mod:`geogan.samplers`) open an
    input: georeference and pixels checked, ``config.bands`` (default: all but an
    alpha band), and a warped view for ``--crs/--res/--align-to``. Datasets are
    entered into ``stack``. A palette band is read as RGB, or with ``expand`` False as
    its colour indices (the view's ``table``: chips keep the classes).
    """
    src = stack.enter_context(open_raster(path, allow_no_crs=config.allow_no_crs,
                                                no_crs_option=True))
    check_readable(src)
    pixels, bands, table = _expand(src, path, config.bands, option, stack, expand)
    if pixels is not src or table is not None:
        config = _nearest(config, path)
    view = _view_for(pixels, path, bands, config, stack, table)
    view.meta = read_meta(pixels).pick(bands)
    return view, src


def plan_input(path: Path, config: TileConfig, stack: contextlib.ExitStack) -> Plan:
    """One input opened on its grid, with its ``--pair`` view and the chip windows to cut."""
    view, src = open_view(path, config, stack, expand=False)

    region = ChipWindow(0, 0, view.width, view.height)
    pair_view = None
    if config.pair is not None:
        pair_view, region = _pair_view(view, config, stack)
    bands = len(view.bands) + (len(pair_view.bands) if pair_view is not None else 0)
    check_read_size(config.size, config.size, bands, f"a `size` {config.size} chip of {path}",
                    "pass a smaller `size`")
    check_chip_count(path, chip_count(region.width, config.size, config.overlap)
                     * chip_count(region.height, config.size, config.overlap), config.size)
    windows = chip_windows(view.width, view.height, config.size, config.overlap, region)

    padded = False
    for v in (view, pair_view):
        if v is None:
            continue
        cover = v.coverage
        outside = any(intersection(w, cover) != w for w in windows)
        padded = padded or outside
        if outside and v.nodata is None:
            what = (f"{path} is {view.width}x{view.height} px" if v is view else
                    f"the overlap of {path} and `pair` {v.path} is "
                    f"{region.width}x{region.height} px")
            raise InputError(f"{what}, smaller than one {config.size} px chip, and {v.path} has "
                             "no nodata value to pad chips with; pass a smaller `size` or set a "
                             "nodata value (gdal_edit.py -a_nodata)")
    if padded:
        log.warning("%s is smaller than one %d px chip where it is tiled: chips are padded with "
                    "nodata", path, config.size)
    return Plan(view=view, pair=pair_view, windows=windows, padded=padded,
                files=files_read(src))


def _view_for(src: Any, path: Path, bands: tuple[int, ...], config: TileConfig,
              stack: contextlib.ExitStack, table: ColourTable | None = None) -> View:
    """``src`` as is, or through a WarpedVRT onto the grid chosen by --crs/--res/--align-to."""
    if not config.warped:
        return View(path, src, bands, src.nodata, src.dtypes[bands[0] - 1], src.crs,
                    src.transform, src.width, src.height, table=table)
    if src.crs is None:
        raise GeoreferenceError(f"{path} has no CRS, so `crs`/`res`/`align_to` cannot warp it; "
                                "assign a CRS first (gdal_edit.py -a_srs EPSG:XXXX)")
    crs, transform, width, height = target_grid(src, path, config, stack)
    if crs == src.crs and transform.almost_equals(src.transform, 1e-12) and \
            (width, height) == (src.width, src.height):
        log.info("%s is already on the requested grid; reading it without warping", path)
        return View(path, src, bands, src.nodata, src.dtypes[bands[0] - 1], src.crs,
                    src.transform, src.width, src.height, table=table)
    vrt = _warped(src, path, crs, transform, width, height, config, table)
    stack.enter_context(vrt)
    return View(path, vrt, bands, vrt.nodata, src.dtypes[bands[0] - 1], crs, transform, width,
                height, table=table)


def _warped(src: Any, path: Path, crs: CRS, transform: Any, width: int, height: int,
            config: TileConfig, table: ColourTable | None = None) -> Any:
    from rasterio.vrt import WarpedVRT

    nodata = src.nodata
    if nodata is None and table is not None:  # colour indices: an index that is no class,
        nodata = table.free_index(src.dtypes[0])
        if nodata is None:  # or (a full colour table) a mask: the chips get one
            return WarpedVRT(src, crs=crs, transform=transform, width=width, height=height,
                             resampling=RESAMPLING[config.resampling], add_alpha=True)
    if nodata is None:
        floating = np.issubdtype(np.dtype(src.dtypes[0]), np.floating)
        nodata = float("nan") if floating else 0
        if str(path) not in _WARNED:  # once per raster: training opens its views often
            _WARNED.add(str(path))
            log.warning("%s has no nodata value; pixels of the warped grid outside it are "
                        "set to %s and marked as nodata", path, nodata)
    return WarpedVRT(src, crs=crs, transform=transform, width=width, height=height,
                     resampling=RESAMPLING[config.resampling], nodata=nodata)


def _pair_view(view: View, config: TileConfig,
               stack: contextlib.ExitStack) -> tuple[View, ChipWindow]:
    """B on A's grid (shifted when already on the same pixel grid, warped otherwise) and
    the region of A's grid both cover."""
    assert config.pair is not None
    pview, region = pair_view(view, config.pair, config, stack, expand=False)
    if region is None:
        raise InputError(f"`pair` {config.pair} does not overlap {view.path}; pair two rasters "
                         "that cover the same ground")
    return pview, region


def pair_view(view: View, pair_path: Path, config: TileConfig,
              stack: contextlib.ExitStack, expand: bool = True
              ) -> tuple[View, ChipWindow | None]:
    """Raster ``pair_path`` on ``view``'s grid, as ``tile --pair`` reads it, and the region
    of the grid both cover (None when they do not overlap).

    B is shifted when it already shares A's pixel grid, resampled (``config.resampling``)
    through a WarpedVRT otherwise; ``config.pair_bands`` picks its bands; ``expand`` as
    for :func:`open_view`.
    """
    src = stack.enter_context(open_raster(pair_path))
    check_readable(src)
    if view.crs is None:
        raise GeoreferenceError(f"{view.path} has no CRS, so `pair` {pair_path} cannot be put "
                                "on its grid; assign a CRS first (gdal_edit.py -a_srs)")
    pixels, bands, table = _expand(src, pair_path, config.pair_bands, "`pair_bands`", stack,
                                   expand)
    if pixels is not src or table is not None:
        src, config = pixels, _nearest(config, pair_path)
    meta = read_meta(src).pick(bands)
    grid = ChipWindow(0, 0, view.width, view.height)

    shift = _grid_shift(src, view)
    if shift is not None:
        pview = View(pair_path, src, bands, src.nodata, src.dtypes[bands[0] - 1], view.crs,
                     view.transform, view.width, view.height, shift, meta, table=table)
        region = intersection(grid, pview.coverage)
    else:
        from rasterio.warp import transform_bounds

        vrt = stack.enter_context(_warped(src, pair_path, view.crs, view.transform, view.width,
                                          view.height, config, table))
        pview = View(pair_path, vrt, bands, vrt.nodata, src.dtypes[bands[0] - 1], view.crs,
                     view.transform, view.width, view.height, meta=meta, table=table)
        left, bottom, right, top = transform_bounds(src.crs, view.crs, *src.bounds,
                                                    densify_pts=21)
        t = view.transform
        col0 = math.ceil((left - t.c) / t.a - 1e-6)
        col1 = math.floor((right - t.c) / t.a + 1e-6)
        row0 = math.ceil((top - t.f) / t.e - 1e-6)
        row1 = math.floor((bottom - t.f) / t.e + 1e-6)
        region = None
        if col1 > col0 and row1 > row0:
            region = intersection(grid, ChipWindow(col0, row0, col1 - col0, row1 - row0))
    return pview, region


def _grid_shift(src: Any, view: View) -> tuple[int, int] | None:
    """Integer pixel offset of ``src`` on ``view``'s grid, or None if the grids differ."""
    t, g = src.transform, view.transform
    if src.crs != view.crs or not math.isclose(t.a, g.a, rel_tol=1e-9) \
            or not math.isclose(t.e, g.e, rel_tol=1e-9) or t.b or t.d or g.b or g.d:
        return None
    dc, dr = (t.c - g.c) / g.a, (t.f - g.f) / g.e
    if abs(dc - round(dc)) > 1e-6 or abs(dr - round(dr)) > 1e-6:
        return None
    return int(round(dc)), int(round(dr))


def _expand(src: Any, path: Path, bands: tuple[int, ...] | None, option: str,
            stack: contextlib.ExitStack, expand: bool = True
            ) -> tuple[Any, tuple[int, ...], ColourTable | None]:
    """The dataset to read, its checked bands and the colour table of indices read as
    they are: a palette band picked (alone, or the one band of the raster) is read as the
    RGB of its colour table (:func:`geogan.colortable.open_expanded`), bands 1, 2, 3 of
    that, or with ``expand`` False as its indices with its colour table."""
    from geogan.colortable import expanded_band, open_expanded, read_colour_table

    if bands is not None:
        _check_bands_range(src, path, bands, option)
    band = expanded_band(src, path, bands, option)
    if band is None:
        return src, _check_bands(src, path, bands, option), None
    if not expand:
        if str(src.dtypes[band - 1]) not in ("uint8", "uint16"):
            raise InputError(f"{path} band {band} is a palette band of {src.dtypes[band - 1]} "
                             "pixels; colour tables index uint8 or uint16 pixels: expand it "
                             f"first, e.g. gdal_translate -expand rgb {path.name} expanded.tif")
        return src, (band,), read_colour_table(src, band, path)
    return open_expanded(src, band, path, stack), (1, 2, 3), None


def _nearest(config: TileConfig, path: Path) -> TileConfig:
    """``config`` resampling a map of classes (a palette raster) by nearest neighbour, so
    warping invents no colour between two classes."""
    import dataclasses

    if config.resampling != "nearest":
        log.info("%s is a palette raster: it is resampled by nearest neighbour, not %s, so "
                 "its colours stay those of its colour table", path, config.resampling)
        config = dataclasses.replace(config, resampling="nearest")
    return config


def _check_bands_range(src: Any, path: Path, bands: tuple[int, ...], option: str) -> None:
    bad = [b for b in bands if not 1 <= b <= src.count]
    if bad:
        raise InputError(f"{option} {fmt_bands(bands)} is out of range for {path}, which has "
                         f"{src.count} band(s); choose band numbers from 1 to {src.count}")


def _check_bands(src: Any, path: Path, bands: tuple[int, ...] | None,
                 option: str) -> tuple[int, ...]:
    if bands is None:
        bands = data_bands(src)  # an alpha band is a mask, not a colour
        if len(bands) < src.count:
            log.info("%s: its alpha band marks the valid pixels and becomes the chips' mask",
                     path)
    _check_bands_range(src, path, bands, option)
    check_pixels(src, path, bands, option)
    dtypes = {src.dtypes[b - 1] for b in bands}
    if len(dtypes) > 1:
        raise InputError(f"{option} {fmt_bands(bands)} of {path} mixes data types "
                         f"({', '.join(sorted(dtypes))}); choose bands of one type")
    return tuple(bands)


def window_bounds(transform: Any, win: ChipWindow) -> tuple[float, float, float, float]:
    """``(minx, miny, maxx, maxy)`` of a chip, computed as rasterio computes a dataset's bounds."""
    t = window_transform(Window(*win), transform)
    x0, x1 = t.c, t.c + t.a * win.width
    y0, y1 = t.f + t.e * win.height, t.f
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)
