"""The grid a warped view is read on (``--crs/--res`` or ``--align-to``), and the warps refused.

- ``--crs`` (with or without ``--res``): GDAL's suggested grid for the raster in that CRS.
- ``--align-to REF``: REF's CRS and pixel grid, **clipped to REF's extent** (as
  ``rio warp --like`` and ``gdalwarp -te`` do): only the ground both cover is read, so the
  chips line up with REF's pixels and lie within it.

A warp is refused, in one line, when

- the raster lies substantially outside the target CRS's **area of use** (pyproj's
  ``area_of_use``, grown by :data:`AREA_MARGIN_DEG` (2) degrees): more than
  :data:`OUTSIDE_SHARE` (5%) of its footprint. A UTM zone or Web Mercator far from where it is
  defined warps pixels into garbage (a Peruvian scene into North Dakota's zone, a polar
  raster past Mercator's 85 degrees);
- with ``--align-to``, the raster does not overlap REF's extent;
- the grid would be mostly empty (a raster cut by the antimeridian or another edge of
  the CRS) or misses the raster;
- the grid holds more than ``max_upsample`` (default 4) times the raster's pixels over
  the same ground: a 30 m scene aligned to a 5 m reference is upsampled 36 times.
  ``--max-upsample`` allows it on purpose.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.crs import CRS
from rasterio.errors import CRSError

from geogan.errors import GeoreferenceError, InputError, first_line
from geogan.rasterio_io import open_raster
from geogan.tiling.config import TileConfig

#: Degrees by which a CRS's area of use is grown before a raster counts as outside it
#: (rasters a little past a UTM zone's edge are warped into it every day).
AREA_MARGIN_DEG = 2.0
#: Largest share of a raster's footprint that may lie outside the target CRS's area of use
#: (so grown); a global raster warped to Web Mercator has about 3% past its 85 degrees.
OUTSIDE_SHARE = 0.05
#: Sample points per side of the raster's outline and footprint.
_SAMPLES = 21


def target_grid(src: Any, path: Path, config: TileConfig,
                stack: contextlib.ExitStack) -> tuple[CRS, Any, int, int]:
    """``(crs, transform, width, height)`` of the grid ``config`` warps ``src`` onto."""
    from rasterio.warp import aligned_target, calculate_default_transform

    if config.align_to is not None:
        return _reference_grid(src, path, config, stack)
    try:
        crs = CRS.from_user_input(config.crs) if config.crs is not None else src.crs
    except CRSError as exc:
        raise InputError(f"`crs` {config.crs!r} is not a CRS GDAL understands; use e.g. "
                         "EPSG:32614") from exc
    check_area_of_use(src, path, crs, f"`crs` {config.crs}" if config.crs else "the CRS")
    try:
        transform, width, height = calculate_default_transform(
            src.crs, crs, src.width, src.height, *src.bounds, resolution=config.res)
    except Exception as exc:  # GDAL's warper raises RuntimeError/CPLE errors of its own
        raise GeoreferenceError(f"{path} cannot be reprojected to `crs` {config.crs} "
                                f"({first_line(exc)}); choose a CRS whose area covers the "
                                "raster") from exc
    if config.res is not None:
        transform, width, height = aligned_target(transform, width, height, config.res)
    check_target_grid(src, path, crs, transform, int(width), int(height), "`crs`",
                      config.max_upsample)
    return crs, transform, int(width), int(height)


def _reference_grid(src: Any, path: Path, config: TileConfig,
                    stack: contextlib.ExitStack) -> tuple[CRS, Any, int, int]:
    """``--align-to``: the reference's pixel grid over the part of its extent ``src`` covers."""
    from rasterio.transform import Affine
    from rasterio.warp import transform_bounds

    # only the reference's grid is used, none of its pixels: its size is no concern
    ref = stack.enter_context(open_raster(config.align_to, limits=False))
    rt = ref.transform
    if rt.a <= 0 or rt.e >= 0:
        raise GeoreferenceError(f"`align_to` {config.align_to} is not north-up; warp it "
                                "north-up first (gdalwarp)")
    check_area_of_use(src, path, ref.crs, f"the CRS of `align_to` {config.align_to} "
                                          f"({ref.crs.to_string()})")
    try:
        left, bottom, right, top = transform_bounds(src.crs, ref.crs, *src.bounds,
                                                    densify_pts=_SAMPLES)
    except Exception as exc:  # PROJ errors come as several types
        raise GeoreferenceError(f"{path} cannot be projected to the CRS of `align_to` "
                                f"{config.align_to} ({first_line(exc)})") from exc
    col0 = max(math.floor((left - rt.c) / rt.a + 1e-9), 0)
    col1 = min(math.ceil((right - rt.c) / rt.a - 1e-9), ref.width)
    row0 = max(math.floor((top - rt.f) / rt.e + 1e-9), 0)
    row1 = min(math.ceil((bottom - rt.f) / rt.e - 1e-9), ref.height)
    if not (math.isfinite(left) and math.isfinite(right)) or col1 <= col0 or row1 <= row0:
        raise GeoreferenceError(f"{path} does not overlap the extent of `align_to` "
                                f"{config.align_to}; the chips are cut where both lie, so "
                                "align it to a reference that covers the same ground")
    transform = rt @ Affine.translation(col0, row0)
    width, height = col1 - col0, row1 - row0
    check_target_grid(src, path, ref.crs, transform, width, height,
                      f"`align_to` {config.align_to}", config.max_upsample)
    return ref.crs, transform, width, height


def _lonlat_inside(lon: np.ndarray, lat: np.ndarray, area: Any, margin: float) -> np.ndarray:
    """Which points lie in ``area`` (pyproj ``AreaOfUse``) grown by ``margin`` degrees."""
    inside = (lat >= area.south - margin) & (lat <= area.north + margin)
    span = (area.east - area.west) % 360.0 or 360.0  # west > east: across the antimeridian
    if span + 2 * margin >= 360.0:
        return inside
    offset = (lon - area.west) % 360.0
    return inside & ((offset <= span + margin) | (offset >= 360.0 - margin))


def check_area_of_use(src: Any, path: Path, crs: CRS, what: str) -> None:
    """Refuse warping ``src`` into ``crs`` when its footprint lies substantially outside the
    CRS's area of use (see the module doc). CRSs without an area of use are not checked."""
    import pyproj
    from rasterio.warp import transform as warp_points

    if crs == src.crs:  # no reprojection: the raster is where its own CRS puts it
        return
    try:  # a GeoTIFF's CRS carries no area of use: the EPSG code's does
        epsg = crs.to_epsg()
        area = (pyproj.CRS.from_epsg(epsg) if epsg else
                pyproj.CRS.from_user_input(crs.to_wkt(version="WKT2_2019"))).area_of_use
    except Exception:  # a CRS pyproj cannot read: the warp itself says what is wrong
        return
    if area is None:
        return
    cols, rows = np.meshgrid(np.linspace(0, src.width, _SAMPLES),
                             np.linspace(0, src.height, _SAMPLES))
    xs, ys = src.transform * (cols.ravel(), rows.ravel())
    try:
        lon, lat = (np.asarray(v) for v in warp_points(src.crs, "EPSG:4326", xs, ys))
    except Exception:  # no geographic footprint: left to the grid checks
        return
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        return
    inside = _lonlat_inside(lon[ok], lat[ok], area, AREA_MARGIN_DEG)
    outside = 1.0 - float(inside.mean())
    if outside <= OUTSIDE_SHARE:
        return
    share = "all" if outside == 1.0 else f"{outside:.0%}"
    raise GeoreferenceError(
        f"{share} of {path} lies outside the area where {what} is defined (longitude "
        f"{area.west:g} to {area.east:g}, latitude {area.south:g} to {area.north:g}), where a "
        "warp gives distorted or empty chips; choose a CRS (or a reference) whose area covers "
        "the raster, e.g. its UTM zone")


def check_target_grid(src: Any, path: Path, crs: CRS, transform: Any, width: int,
                      height: int, what: str, max_upsample: float) -> None:
    """Refuse a warped grid that misses the raster, is blown up by a CRS edge, or upsamples
    the raster more than ``max_upsample`` times.

    The raster's outline, sampled densely and projected onto the grid, must fall inside
    it and fill a fair part of it; a raster cut by the antimeridian (or another edge of
    the target CRS) would otherwise become a grid around the world, of nodata. The area
    the outline encloses on the grid, over the raster's pixel count, is the upsampling.
    """
    import shapely
    from rasterio.warp import transform as warp_points

    cols, rows = np.meshgrid(np.linspace(0, src.width, _SAMPLES),
                             np.linspace(0, src.height, _SAMPLES))
    xs, ys = src.transform * (cols.ravel(), rows.ravel())
    try:
        tx, ty = warp_points(src.crs, crs, xs, ys)
    except Exception as exc:
        raise GeoreferenceError(f"{path} cannot be projected to the grid of {what} "
                                f"({first_line(exc)}); choose another CRS") from exc
    tx, ty = np.asarray(tx), np.asarray(ty)
    ok = np.isfinite(tx) & np.isfinite(ty)
    if not ok.any():
        raise GeoreferenceError(f"{path} lies outside the area of the CRS of {what}; choose "
                                "a CRS that covers it")
    gc, gr = ~transform * (tx[ok], ty[ok])
    gc, gr = np.asarray(gc), np.asarray(gr)
    inside = (gc >= -1) & (gc <= width + 1) & (gr >= -1) & (gr <= height + 1)
    if not inside.any():
        raise GeoreferenceError(f"{path} does not overlap the grid of {what}; choose a target "
                                "that covers the raster")
    hull = shapely.MultiPoint(np.c_[gc, gr]).convex_hull.area
    if min(width, height) < 1 or width * height > 16 * hull + 64 * (width + height):
        raise GeoreferenceError(f"{path} is cut by an edge of the CRS of {what} (such as the "
                                f"antimeridian): its {width}x{height} px grid would be mostly "
                                "empty; choose a CRS in which the raster is whole (e.g. its UTM "
                                "zone)")
    factor = hull / (src.width * src.height)
    if factor > max_upsample * (1 + 1e-9):
        raise GeoreferenceError(f"the grid of {what} would upsample {path} {factor:.0f} times "
                                f"(each pixel becomes {factor:.0f} pixels, more than "
                                f"`max_upsample` {max_upsample:g}); pass `max_upsample` "
                                f"{math.ceil(factor)} to upsample it on purpose, or warp to a "
                                "coarser grid (`res`)")
