"""The area of interest of ``--aoi``: read the vector file, keep the chip windows it touches."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from geogan.errors import InputError, first_line
from geogan.tiling.views import Plan, View, window_bounds

log = logging.getLogger(__name__)


def read_aoi(aoi: Path, option: str = "`aoi`") -> Any:
    """The non-empty geometries of vector file ``aoi`` as a GeoDataFrame (one-line errors)."""
    import geopandas as gpd

    if not aoi.exists():
        raise InputError(f"{option} {aoi} does not exist; check the path")
    try:
        gdf = gpd.read_file(aoi)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise InputError(f"{option} {aoi} is not a vector file GDAL reads "
                         f"({first_line(exc)}); pass a GeoPackage, shapefile or GeoJSON") from exc
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    if gdf.empty:
        raise InputError(f"{option} {aoi} has no geometries; pass a file with polygons")
    return gdf


def aoi_area(gdf: Any, aoi: Path, view: View, option: str = "`aoi`") -> Any:
    """The union of the AOI's geometries in ``view``'s CRS (a shapely geometry)."""
    import shapely

    shapes = gdf
    if gdf.crs is None:
        log.warning("%s %s has no CRS; assuming the CRS of %s", option, aoi, view.path)
    elif view.crs is not None:
        shapes = gdf.to_crs(view.crs.to_wkt())
    else:
        log.warning("%s has no CRS; using %s %s coordinates as they are", view.path, option,
                    aoi)
    return shapely.union_all(shapes.geometry.values)


def apply_aoi(aoi: Path, plans: list[Plan]) -> int:
    """Keep only windows whose footprint intersects the AOI; return how many were dropped."""
    import shapely

    gdf = read_aoi(aoi)
    dropped = 0
    hit_any = False
    for plan in plans:
        view = plan.view
        area = aoi_area(gdf, aoi, view)
        shapely.prepare(area)
        bounds = np.array([window_bounds(view.transform, w) for w in plan.windows])
        boxes = shapely.box(bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3])
        keep = shapely.intersects(area, boxes)
        if not keep.any():
            log.warning("`aoi` %s does not intersect %s; no chips from it", aoi, view.path)
        hit_any = hit_any or bool(keep.any())
        dropped += int(np.count_nonzero(~keep))
        plan.windows = [w for w, k in zip(plan.windows, keep, strict=True) if k]
    if not hit_any:
        names = ", ".join(str(p.view.path) for p in plans)
        raise InputError(f"`aoi` {aoi} does not intersect {names}; check the AOI's extent and "
                         "CRS")
    return dropped
