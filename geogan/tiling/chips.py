"""Chip files and the index: chip profiles, the chip-writing threads and the index rows."""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioError

from geogan.contract.names import INDEX_LAYER, VALID_WINDOW_TAG
from geogan.fileio import gdal_errors, write_error
from geogan.grid import ChipWindow, intersection
from geogan.rasterio_meta import RasterMeta, write_meta
from geogan.sink import check_creation_options, creation_kwargs, output_profile
from geogan.tiling.config import TileConfig
from geogan.tiling.views import Plan, View

log = logging.getLogger(__name__)

#: The key of a chip profile holding the colour table of a chip of colour indices.
COLORMAP = "geogan_colormap"


class Records:
    """Index rows, kept as columns (lean for hundreds of thousands of chips)."""

    def __init__(self) -> None:
        self.layers: dict[str, tuple[CRS | None, dict[str, list[Any]]]] = {}

    def columns(self, crs: CRS | None) -> dict[str, list[Any]]:
        """The columns of the layer for ``crs`` (one layer per distinct CRS)."""
        key = crs.to_wkt() if crs is not None else ""
        if key not in self.layers:
            self.layers[key] = (crs, {"minx": [], "miny": [], "maxx": [], "maxy": []})
        return self.layers[key][1]

    @staticmethod
    def add(cols: dict[str, list[Any]], bounds: tuple[float, float, float, float],
            **row: Any) -> None:
        for k, v in zip(("minx", "miny", "maxx", "maxy"), bounds, strict=True):
            cols[k].append(v)
        for k, v in row.items():
            cols.setdefault(k, []).append(v)

    def write(self, path: Path) -> None:
        import geopandas as gpd
        import shapely

        layers = [(crs, cols) for crs, cols in self.layers.values() if cols["minx"]]
        for i, (crs, cols) in enumerate(layers):
            b = [np.asarray(cols.pop(k), dtype=np.float64) for k in ("minx", "miny", "maxx",
                                                                        "maxy")]
            geometry = shapely.box(*b)
            gdf = gpd.GeoDataFrame(cols, geometry=geometry,
                                   crs=crs.to_wkt() if crs is not None else None)
            layer = INDEX_LAYER if i == 0 else f"{INDEX_LAYER}_{i + 1}"
            if i:
                log.warning("inputs have several CRSs; chips in %s are in layer %s of %s",
                            crs, layer, path)
            gdf.to_file(path, layer=layer, driver="GPKG")


class ChipWriter:
    """Writes chips in background threads, with a bounded backlog.

    The backlog is up to ``4 * threads`` chips, or more while the chips waiting hold at
    most ``backlog_bytes`` of pixels (so the writers can lag a whole read run behind and
    the next run is read meanwhile, without memory growing with the raster).
    """

    def __init__(self, threads: int, backlog_bytes: int = 0) -> None:
        self.threads = threads
        self.backlog_bytes = backlog_bytes
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[tuple[Future[None], int]] = deque()
        self._bytes = 0

    def __enter__(self) -> ChipWriter:
        if self.threads > 0:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="geogan-chip")
        return self

    def submit(self, fn: Callable[..., None], *args: Any, nbytes: int = 0) -> None:
        """Run ``fn(*args)`` in a writer thread; ``nbytes``: the pixels it holds on to."""
        if self._pool is None:
            fn(*args)
            return
        self._pending.append((self._pool.submit(fn, *args), nbytes))
        self._bytes += nbytes
        while len(self._pending) > 4 * self.threads and self._bytes > self.backlog_bytes:
            future, done = self._pending.popleft()
            future.result()
            self._bytes -= done

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._pool is None:
            return
        try:
            if exc_type is None:
                while self._pending:
                    self._pending.popleft()[0].result()
        finally:
            for future, _ in self._pending:
                future.cancel()
            self._pool.shutdown(wait=True)


def chip_profile(view: View, size: int, compress: str,
                 creation_options: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """The GeoTIFF profile of ``view``'s chips: uncompressed or ``compress``, then ``--co``."""
    base = {"crs": view.crs, "transform": view.transform, "width": size, "height": size,
            "count": len(view.bands), "dtype": view.dtype, "nodata": view.nodata}
    profile = output_profile(base, compress="zstd" if compress == "none" else compress,
                             meta=view.meta)
    if compress == "none":
        profile.pop("compress")
        profile.pop("predictor", None)
    if view.crs is None:
        profile.pop("crs")
    # Chips are small: one strip per band, band-interleaved (the fastest to write and read).
    profile.update(tiled=False, interleave="band")
    profile.pop("blockxsize")
    profile["blockysize"] = size
    profile.update(creation_kwargs(creation_options))  # the user's --co last: they win
    check_creation_options(profile, creation_options)
    if view.table is not None:  # colour indices: their colour table, written by write_chip
        profile[COLORMAP] = dict(view.table.entries)
    return profile


def chip_meta(view: View) -> RasterMeta | None:
    """The band meaning written on ``view``'s chips: a palette band's category names as
    the band tag :data:`geogan.colortable.NAMES_TAG` (the chip's own, no sidecar)."""
    from geogan.colortable import names_tag

    meta = view.meta
    if meta is None or view.table is None or not view.table.names:
        return meta
    band = meta.bands[0]
    tagged = dataclasses.replace(band, tags={**band.tags, **names_tag(view.table.names)})
    return dataclasses.replace(meta, bands=(tagged,))


def write_chip(path: Path, data: np.ndarray, profile: dict[str, Any], transform: Any,
               tags: dict[str, str], meta: RasterMeta | None = None,
               valid: np.ndarray | None = None) -> None:
    """Write one chip with the source's band meaning and, for masked sources, its mask
    (and the colour table of a chip of colour indices: ``profile``'s :data:`COLORMAP`)."""
    profile = {**profile, "transform": transform}
    colormap = profile.pop(COLORMAP, None)
    try:
        with gdal_errors(path), rasterio.open(path, "w", **profile) as dst:
            if colormap is not None:
                dst.write_colormap(1, colormap)
            if meta is not None:
                write_meta(dst, meta)
            dst.write(data)
            if valid is not None:
                dst.write_mask(np.where(valid, 255, 0).astype(np.uint8))
            if tags:
                dst.update_tags(**tags)
    except RasterioError as exc:
        raise write_error(path, exc.__cause__ or exc) from exc
    except OSError as exc:
        raise write_error(path, exc) from exc


def chips_bytes(plans: Sequence[Plan], config: TileConfig) -> int:
    """Uncompressed bytes of every candidate chip (an upper bound of what is written)."""
    total = 0
    for plan in plans:
        for view in (plan.view, plan.pair):
            if view is not None:
                per_chip = config.size ** 2 * len(view.bands) * np.dtype(view.dtype).itemsize
                total += len(plan.windows) * per_chip
    return total


def valid_tags(win: ChipWindow, grid: ChipWindow) -> dict[str, str]:
    """The :data:`~geogan.contract.names.VALID_WINDOW_TAG` of a padded chip (none if whole)."""
    part = intersection(win, grid)
    if part is None or part == win:
        return {}
    return {VALID_WINDOW_TAG: f"{part.col_off - win.col_off} {part.row_off - win.row_off} "
                              f"{part.width} {part.height}"}
