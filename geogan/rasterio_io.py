"""Opening rasters for reading, shared by tiling, mosaicking, evaluation and translation.

Opening validates the georeference once (CRS present, north-up transform,
readable) and turns GDAL's errors into one-line messages; :func:`gdal_env` sets
geogan's GDAL defaults where the environment leaves them. What geogan writes goes
through :mod:`geogan.sink`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import rasterio
from rasterio.errors import RasterioIOError

from geogan.errors import GeoreferenceError, InputError, first_line
from geogan.rasterio_meta import check_georeferencing

log = logging.getLogger(__name__)


def open_raster(path: str | os.PathLike[str], *, allow_no_crs: bool = False,
                no_crs_option: bool = False) -> Any:
    """Open ``path`` for reading after checking it is a usable georeferenced raster.

    Raises :class:`InputError` for a missing or unreadable file and
    :class:`GeoreferenceError` for GCP/RPC georeferencing, a missing CRS (unless
    ``allow_no_crs``; ``no_crs_option`` says the caller offers --allow-no-crs) or a
    rotated/sheared transform. Returns an open ``rasterio.DatasetReader``.
    """
    from geogan.inputs import GdalPath, as_input

    p = as_input(path)
    if not isinstance(p, GdalPath):
        if not p.exists():
            raise InputError(f"{p} does not exist; check the path")
        if p.is_dir():
            raise InputError(f"{p} is a folder, not a raster file")
    try:
        src = rasterio.open(str(p))
    except RasterioIOError as exc:
        raise InputError(f"{p} is not a readable raster ({first_line(exc)}); "
                         "check that the file is complete and is a GeoTIFF or another "
                         "format GDAL reads") from exc
    try:
        check_georeferencing(src, p)
        if src.crs is None and not allow_no_crs:
            raise GeoreferenceError(f"{p} has no CRS; assign one (e.g. gdal_edit.py -a_srs "
                                    "EPSG:XXXX)" + (" or pass `allow_no_crs`"
                                                    if no_crs_option else ""))
        t = src.transform
        if t.b != 0 or t.d != 0:
            raise GeoreferenceError(f"{p} has a rotated or sheared transform; warp it north-up "
                                    "first (gdalwarp) and try again")
        if t.a <= 0 or t.e >= 0:
            log.warning("%s is not north-up with positive pixel width; outputs keep its "
                        "transform as is", p)
    except BaseException:
        src.close()
        raise
    return src


def check_readable(src: Any) -> None:
    """Read the last block of each band so a truncated file fails now, not halfway."""
    from rasterio.windows import Window

    try:
        w = Window(max(src.width - 1, 0), max(src.height - 1, 0), 1, 1)
        src.read(window=w)
    except RasterioIOError as exc:
        raise InputError(f"{src.name} is truncated or corrupt ({first_line(exc)}); "
                         "re-download or re-export it") from exc



def gdal_env(**defaults: Any) -> Any:
    """``rasterio.Env`` with geogan's defaults for options the environment does not set.

    GDAL configuration given in the environment (``GDAL_CACHEMAX``, ``GDAL_NUM_THREADS``...)
    always wins over geogan's defaults.
    """
    return rasterio.Env(**{k: v for k, v in defaults.items() if k not in os.environ})

