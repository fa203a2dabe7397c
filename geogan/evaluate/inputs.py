"""The rasters scored, read block by block on PREDICTION's grid, and the pixels valid in all.

REFERENCE and SOURCE go through a WarpedVRT when their grid differs from
PREDICTION's; :class:`Inputs` reads all of them for one block and says which
pixels are valid in all (and inside the AOI); :class:`Ticker` counts the blocks.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geogan.errors import InputError, first_line
from geogan.evaluate.report import band_text
from geogan.progress import CancelCheck, ProgressCallback, check_cancel

log = logging.getLogger(__name__)


class OnGrid:
    """A raster read on the prediction's grid: directly, or through a WarpedVRT."""

    def __init__(self, ds: Any, target: Any, resampling: str, stack: contextlib.ExitStack):
        self.nodata = ds.nodata
        self.resampled = not (ds.crs == target.crs and ds.width == target.width
                              and ds.height == target.height
                              and ds.transform.almost_equals(target.transform))
        if self.resampled:
            from rasterio.enums import Resampling
            from rasterio.vrt import WarpedVRT

            # Without nodata, an alpha band marks what lies outside the raster.
            self.ds = stack.enter_context(WarpedVRT(
                ds, crs=target.crs, transform=target.transform, width=target.width,
                height=target.height, resampling=Resampling[resampling],
                add_alpha=ds.nodata is None))
        else:
            self.ds = ds
        from geogan.rasterio_meta import has_mask

        self.use_masks = has_mask(self.ds)

    def read(self, window: Any, bands: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(values (C, h, w) as read, valid (h, w) bool)`` for ``window``."""
        from geogan.rasterio_meta import read_valid

        data = self.ds.read(list(bands), window=window)
        return data, read_valid(self.ds, bands, window, data, self.nodata, self.use_masks)


@dataclass
class Inputs:
    """The rasters of one evaluation on the prediction grid, the AOI polygons and the bands."""

    pred: OnGrid
    ref: OnGrid
    src: OnGrid | None
    aoi: list[Any] | None
    bands: tuple[int, ...]

    def read(self, window: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """Prediction, reference, source values and the pixels valid in all, for ``window``."""
        bands = self.bands
        x, valid = self.pred.read(window, bands)
        y, ref_valid = self.ref.read(window, bands)
        valid &= ref_valid
        s = None
        if self.src is not None:
            s, src_valid = self.src.read(window, bands)
            valid &= src_valid
        if self.aoi is not None:
            from rasterio import windows
            from rasterio.features import geometry_mask

            valid &= geometry_mask(self.aoi, out_shape=valid.shape, invert=True,
                                   transform=windows.transform(window, self.pred.ds.transform))
        return x, y, s, valid


class Ticker:
    """Counts finished blocks for the progress callback and checks for cancellation."""

    def __init__(self, progress: ProgressCallback | None, cancel: CancelCheck | None,
                 total: int) -> None:
        self.progress, self.cancel, self.total, self.done = progress, cancel, total, 0

    def __call__(self, stage: str) -> None:
        check_cancel(self.cancel, "evaluation")
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total, stage=stage)


@dataclass(frozen=True)
class Blocks:
    """The blocks of a ``width`` x ``height`` raster, made one by one as they are read (a
    list of a huge raster's blocks would not fit in memory); iterable more than once."""

    width: int
    height: int
    size: int

    def __len__(self) -> int:
        return -(-self.width // self.size) * -(-self.height // self.size)

    def __iter__(self) -> Iterator[Any]:
        return raster_blocks(self.width, self.height, self.size)


def block_side(block_size: int, bands: int) -> int:
    """``block_size``, made smaller so one block of ``bands`` bands holds at most
    :data:`geogan.limits.BLOCK_VALUES` values (never under the SSIM window)."""
    import math

    from geogan.limits import BLOCK_VALUES
    from geogan.metrics import SSIM_RADIUS

    return max(2 * SSIM_RADIUS + 1, min(block_size, math.isqrt(BLOCK_VALUES // max(bands, 1))))


def raster_blocks(width: int, height: int, size: int) -> Iterator[Any]:
    """Windows of ``size`` pixels square covering the raster, row by row."""
    from rasterio.windows import Window

    for row in range(0, height, size):
        for col in range(0, width, size):
            yield Window(col, row, min(size, width - col), min(size, height - row))


def with_halo(window: Any, width: int, height: int, halo: int) -> tuple[Any, tuple[slice, ...]]:
    """``window`` grown by ``halo`` pixels (clipped to the raster) and the core's slices in it."""
    from rasterio.windows import Window

    c0 = max(int(window.col_off) - halo, 0)
    r0 = max(int(window.row_off) - halo, 0)
    c1 = min(int(window.col_off + window.width) + halo, width)
    r1 = min(int(window.row_off + window.height) + halo, height)
    dr, dc = int(window.row_off) - r0, int(window.col_off) - c0
    core = (slice(dr, dr + int(window.height)), slice(dc, dc + int(window.width)))
    return Window(c0, r0, c1 - c0, r1 - r0), core


def check_bands(pred: Any, ref: Any, src: Any | None,
                bands: tuple[int, ...] | None) -> tuple[int, ...]:
    """The bands compared: ``bands`` checked against every raster, else all (same counts)."""
    if bands is None:
        if pred.count != ref.count:
            raise InputError(f"{pred.name} has {pred.count} bands but {ref.name} has "
                             f"{ref.count}; pass `bands` to compare bands present in both")
        if src is not None and src.count != pred.count:
            raise InputError(f"`source` {src.name} has {src.count} bands but {pred.name} has "
                             f"{pred.count}; pass `bands` to compare bands present in all")
        return tuple(range(1, pred.count + 1))
    for ds, label in ((pred, "PREDICTION"), (ref, "REFERENCE"), (src, "`source`")):
        if ds is not None and max(bands) > ds.count:
            raise InputError(f"`bands` {band_text(bands)} asks for band {max(bands)} but "
                             f"{label} {ds.name} has {ds.count}")
    return tuple(bands)


def check_overlap(pred: Any, other: Any, label: str) -> None:
    """Fail unless ``other``'s bounds, projected into PREDICTION's CRS, overlap it."""
    from rasterio.warp import transform_bounds

    try:
        left, bottom, right, top = transform_bounds(other.crs, pred.crs, *other.bounds,
                                                    densify_pts=21)
    except Exception as exc:  # PROJ raises for areas that do not project
        raise InputError(f"cannot project the bounds of {label} {other.name} into the CRS of "
                         f"{pred.name} ({first_line(exc)}); reproject it first") from exc
    p = pred.bounds
    p_left, p_right = min(p.left, p.right), max(p.left, p.right)
    p_bottom, p_top = min(p.bottom, p.top), max(p.bottom, p.top)
    if not (left < p_right and right > p_left and bottom < p_top and top > p_bottom):
        raise InputError(f"{label} {other.name} does not overlap PREDICTION {pred.name}; "
                         "check that they cover the same area")


def load_aoi(path: Path, pred: Any) -> list[Any]:
    """Polygons of the vector file ``path`` in the prediction's CRS."""
    import geopandas as gpd
    from shapely.geometry import box

    if not path.exists():
        raise InputError(f"`aoi` {path} does not exist; check the path")
    try:
        frame = gpd.read_file(path)
    except Exception as exc:  # pyogrio/fiona raise their own types
        raise InputError(f"`aoi` {path} is not a readable vector file "
                         f"({first_line(exc)}); "
                         "give a GeoPackage, GeoJSON or shapefile") from exc
    if frame.crs is None:
        log.warning("`aoi` %s has no CRS; assuming the prediction's CRS", path)
    else:
        frame = frame.to_crs(pred.crs.to_wkt())
    geoms = [g for g in frame.geometry if g is not None and not g.is_empty]
    if not geoms:
        raise InputError(f"`aoi` {path} holds no geometry; give a file with polygons")
    if any(g.geom_type not in ("Polygon", "MultiPolygon") for g in geoms):
        raise InputError(f"`aoi` {path} holds non-polygon geometries; give polygons only")
    footprint = box(*pred.bounds)
    if not any(g.intersects(footprint) for g in geoms):
        raise InputError(f"`aoi` {path} does not overlap PREDICTION {pred.name}")
    return geoms
