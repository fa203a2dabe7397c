"""The validity of a stack (:mod:`geogan.stack`): where every raster of it holds data.

A stacked view reads the bands of several rasters as one raster, so GDAL's rule for a
raster with only a nodata value (a pixel is nodata where *every* band is) would let the
first raster's nodata pixels count as data wherever a stack raster has data, and a hole in
a stack raster count as data wherever the first raster has some. geogan therefore works
the stack's validity out raster by raster, each by :func:`geogan.rasterio_meta.read_valid`
(nodata, per-dataset mask, alpha band; a resampled raster's outside is nodata), ANDs them,
and writes the result as a one-band Byte mask (255 valid, 0 not) that the stacked VRT
takes as its per-dataset mask. A stack none of whose rasters can hold invalid pixels gets
no mask.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geogan.errors import InputError

log = logging.getLogger(__name__)

#: Side of the blocks the mask is worked out in (pixels).
BLOCK = 512


def needs_mask(sources: Sequence[dict[str, Any]]) -> bool:
    """Whether any raster of the stack can have invalid pixels (nodata, mask, alpha,
    or an outside after resampling). NaN needs no mask: it is invalid in any band."""
    return any(s["nodata"] is not None or s["masked"] or s["warped"] for s in sources)


def write_valid_mask(sources: Sequence[dict[str, Any]], grid: Any, path: Path,
                     first: Path) -> Path | None:
    """Write the stack's validity on ``grid`` to ``path`` (a Byte GeoTIFF); -> ``path``,
    or None when no raster of the stack can have invalid pixels."""
    import rasterio

    if not needs_mask(sources):
        return None
    crs, transform, width, height = grid
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1,
               "dtype": "uint8", "crs": crs, "transform": transform, "tiled": True,
               "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "deflate"}
    invalid = 0
    with rasterio.Env(GDAL_PAM_ENABLED=False), rasterio.open(path, "w", **profile) as dst:
        datasets = [rasterio.open(s["file"]) for s in sources]
        try:
            for window in _blocks(width, height):
                valid = _block_valid(datasets, sources, window, first)
                invalid += int(valid.size - np.count_nonzero(valid))
                dst.write(np.where(valid, 255, 0).astype(np.uint8)[None], window=window)
        finally:
            for ds in datasets:
                ds.close()
    log.info("the stack of %s has %d invalid pixel(s) of %d (any of its rasters' nodata, "
             "mask, alpha or outside)", first, invalid, width * height)
    return path


def _blocks(width: int, height: int) -> Iterator[Any]:
    from rasterio.windows import Window

    for row in range(0, height, BLOCK):
        for col in range(0, width, BLOCK):
            yield Window(col, row, min(BLOCK, width - col), min(BLOCK, height - row))


def _block_valid(datasets: Sequence[Any], sources: Sequence[dict[str, Any]], window: Any,
                 first: Path) -> np.ndarray:
    """``(h, w)`` booleans: pixels of ``window`` valid in every raster of the stack."""
    from rasterio.errors import RasterioError

    from geogan.rasterio_meta import read_valid

    valid = np.ones((int(window.height), int(window.width)), dtype=bool)
    for ds, s in zip(datasets, sources, strict=True):
        try:
            data = ds.read(s["bands"], window=window)
            valid &= read_valid(ds, s["bands"], window, data, s["nodata"])
        except RasterioError as exc:
            raise InputError(f"the stack of {first}: {s['name']} could not be read ({exc}); "
                             "check that the file is whole and readable") from exc
    return valid
