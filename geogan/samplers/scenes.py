"""Planning a domain's windows: its rasters opened and checked, the AOI put on each grid,
the regions windows may lie in and their valid pixels estimated, pix2pix partners found."""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geogan.errors import InputError, first_line
from geogan.normalize import valid_mask
from geogan.samplers.config import WindowConfig
from geogan.samplers.sampler import _EDGE, WindowSource

log = logging.getLogger(__name__)

#: Side of the decimated mask read that estimates a raster's valid pixels.
ESTIMATE_SIDE = 512


@dataclass
class _Scene:
    """One opened raster while planning: its view, source and AOI in pixel coordinates."""

    path: Path
    view: Any
    aoi_px: Any = None
    files: tuple[str, ...] = field(default_factory=tuple)
    tags: dict[str, str] = field(default_factory=dict)  # the raster's dataset tags


def _open_scenes(paths: Sequence[Path], option: str, windows: WindowConfig, aoi: Path | None,
                 aoi_option: str, stack: contextlib.ExitStack) -> list[_Scene]:
    """Open every raster of a domain, check they agree, put the AOI on each grid."""
    import shapely

    from geogan.tiling import open_view, read_aoi

    cfg = windows.tile_config()
    scenes = []
    for p in paths:
        view, src = open_view(p, cfg, stack, option=option)
        scenes.append(_Scene(p, view, files=tuple(f for f in src.files
                                                  if not f.startswith("/vsi")),
                             tags=dict(src.tags())))
    first = scenes[0].view
    for s in scenes[1:]:
        v = s.view
        if len(v.bands) != len(first.bands):
            raise InputError(f"{s.path} has {len(v.bands)} bands but {scenes[0].path} has "
                             f"{len(first.bands)}; all rasters of {option} must have the same "
                             "bands")
        if v.dtype != first.dtype:
            raise InputError(f"{s.path} is {v.dtype} but {scenes[0].path} is {first.dtype}; "
                             f"all rasters of {option} must have one dtype (convert with "
                             "gdal_translate -ot)")
    if aoi is not None:
        gdf = read_aoi(aoi, aoi_option)
        for s in scenes:
            area = _aoi_on_grid(gdf, aoi, s.view, aoi_option)
            inv = ~s.view.transform
            s.aoi_px = shapely.affinity.affine_transform(
                area, [inv.a, inv.b, inv.d, inv.e, inv.c, inv.f])
    return scenes


def scenes_ground(scenes: Sequence[_Scene], option: str) -> Any:
    """The ground resolution and CRS of a domain's rasters as read (warped views included);
    logs one line when the rasters differ in ground resolution or any is synthetic."""
    from geogan.ground import domain_ground
    from geogan.provenance import warn_synthetic

    warn_synthetic([s.path for s in scenes], [s.tags for s in scenes], option)
    return domain_ground([(s.view.crs, s.view.transform, s.view.width, s.view.height)
                          for s in scenes], [s.path.name for s in scenes], option)


def check_crop(scenes: Sequence[_Scene], crop: int, option: str) -> None:
    """Refuse ``crop`` windows of more values than geogan reads at once
    (:func:`geogan.limits.check_read_size`), before any window is read."""
    from geogan.limits import check_read_size

    check_read_size(crop, crop, len(scenes[0].view.bands),
                    f"a `crop` window of the {option} rasters", "pass a smaller `crop`")


def _aoi_on_grid(gdf: Any, aoi: Path, view: Any, option: str) -> Any:
    """The AOI in ``view``'s CRS, cut first to the raster's footprint in the AOI's CRS.

    Cutting first keeps polygons far from the raster (outside the area of a UTM zone,
    say) from projecting to infinities.
    """
    import geopandas as gpd
    import shapely
    from rasterio.warp import transform_bounds

    from geogan.tiling import aoi_area

    if gdf.crs is None or view.crs is None:
        return aoi_area(gdf, aoi, view, option)
    left, top = view.transform * (0, 0)
    right, bottom = view.transform * (view.width, view.height)
    try:
        bounds = transform_bounds(view.crs, gdf.crs.to_wkt(), min(left, right),
                                  min(top, bottom), max(left, right), max(top, bottom),
                                  densify_pts=21)
    except Exception as exc:  # PROJ errors come as several types
        raise InputError(f"{option} {aoi}: {view.path}'s footprint cannot be projected to the "
                         f"AOI's CRS ({first_line(exc)}); give the AOI in the raster's CRS") \
            from exc
    area = shapely.union_all(gdf.geometry.values).intersection(shapely.box(*bounds))
    if area.is_empty:
        return area
    area = gpd.GeoSeries([area], crs=gdf.crs).to_crs(view.crs.to_wkt()).iloc[0]
    if not np.isfinite(shapely.get_coordinates(area)).all():
        raise InputError(f"{option} {aoi} cannot be projected onto {view.path}'s CRS; give the "
                         "AOI in the raster's CRS")
    return area


def _region(scene: _Scene, bounds: tuple[int, int, int, int] | None
            ) -> tuple[int, int, int, int] | None:
    """The scene's grid cut to the AOI's bounding box and to ``bounds`` (a pair overlap)."""
    from geogan.grid import ChipWindow, intersection

    v = scene.view
    region: ChipWindow | None = ChipWindow(0, 0, v.width, v.height)
    if bounds is not None:
        region = intersection(region, ChipWindow(*bounds))
    if scene.aoi_px is not None and region is not None:
        if scene.aoi_px.is_empty:
            return None
        x0, y0, x1, y1 = scene.aoi_px.bounds
        c0, r0 = math.floor(x0 + _EDGE), math.floor(y0 + _EDGE)
        c1, r1 = math.ceil(x1 - _EDGE), math.ceil(y1 - _EDGE)
        if c1 <= c0 or r1 <= r0:
            return None
        region = intersection(region, ChipWindow(c0, r0, c1 - c0, r1 - r0))
    if region is None:
        return None
    return region.col_off, region.row_off, region.width, region.height


def estimate_valid(view: Any, region: tuple[int, int, int, int], aoi_px: Any = None) -> int:
    """Valid pixels of ``view`` in ``region`` (and inside ``aoi_px``), from a decimated read.

    Data and masks are read at most ``ESTIMATE_SIDE`` px on a side (GDAL uses overviews
    where the raster has them) with the validity rule of
    :func:`geogan.rasterio_meta.read_valid`; each decimated pixel stands for the
    pixels it covers.
    """
    import shapely
    from rasterio.enums import Resampling
    from rasterio.errors import NodataShadowWarning, RasterioError

    col0, row0, width, height = region
    step = max(1, math.ceil(max(width, height) / ESTIMATE_SIDE))
    shape = (max(1, math.ceil(height / step)), max(1, math.ceil(width / step)))
    from rasterio.windows import Window as RioWindow

    w = RioWindow(col0 - view.shift[0], row0 - view.shift[1], width, height)
    try:
        data = view.dataset.read(indexes=list(view.bands), window=w,
                                 out_shape=(len(view.bands), *shape),
                                 resampling=Resampling.nearest)
        valid = valid_mask(data, view.nodata)
        if view.masked:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NodataShadowWarning)
                masks = view.dataset.read_masks(list(view.bands), window=w,
                                                out_shape=(len(view.bands), *shape),
                                                resampling=Resampling.nearest)
            valid &= (masks != 0).all(axis=0)
    except RasterioError as exc:
        raise InputError(f"{view.path} could not be read ({first_line(exc)}); the file may be "
                         "truncated or corrupt: re-download or re-export it") from exc
    if aoi_px is not None:
        ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
        cx = col0 + (xs + 0.5) * width / shape[1]
        cy = row0 + (ys + 0.5) * height / shape[0]
        valid &= shapely.contains_xy(aoi_px, cx, cy)
    return int(round(np.count_nonzero(valid) * (width * height) / valid.size))


def _sources(scenes: Sequence[_Scene], option: str, aoi: Path | None, aoi_option: str,
             pairs: dict[int, list[tuple[Path, tuple[int, int, int, int]]]] | None = None
             ) -> list[WindowSource]:
    out = []
    for i, s in enumerate(scenes):
        partners: list[tuple[Path | None, tuple[int, int, int, int] | None]] = \
            [(None, None)] if pairs is None else list(pairs.get(i, []))
        for pair, bounds in partners:
            region = _region(s, bounds)
            if region is None:
                log.warning("%s %s does not intersect %s; no windows from it", aoi_option, aoi,
                            s.path)
                continue
            valid = estimate_valid(s.view, region, s.aoi_px)
            if valid == 0:
                log.warning("%s has no valid pixels%s; no windows from it", s.path,
                            f" inside {aoi_option} {aoi}" if aoi is not None else "")
                continue
            out.append(WindowSource(s.path, pair, region,
                                    None if s.aoi_px is None else s.aoi_px.wkb, valid))
    if not out:
        names = ", ".join(str(s.path) for s in scenes)
        if aoi is not None:
            raise InputError(f"{aoi_option} {aoi} covers no valid pixels of {option} {names}; "
                             "check the AOI's extent and CRS")
        raise InputError(f"{option} {names} holds no valid pixels (all nodata or masked); "
                         "check the nodata value and masks")
    return out


def _pair_partners(scenes_a: Sequence[_Scene], b_paths: Sequence[Path], windows: WindowConfig,
                   stack: contextlib.ExitStack
                   ) -> dict[int, list[tuple[Path, tuple[int, int, int, int]]]]:
    """For each A raster, the B rasters overlapping it and the overlap on A's grid."""
    from geogan.tiling import pair_view

    cfg = windows.tile_config()
    partners: dict[int, list[tuple[Path, tuple[int, int, int, int]]]] = {}
    used: set[Path] = set()
    bands_b: tuple[Path, int, str] | None = None
    for i, s in enumerate(scenes_a):
        for b in b_paths:
            pview, region = pair_view(s.view, b, cfg, stack)
            if bands_b is None:
                bands_b = (b, len(pview.bands), pview.dtype)
            elif len(pview.bands) != bands_b[1]:
                raise InputError(f"{b} has {len(pview.bands)} bands but {bands_b[0]} has "
                                 f"{bands_b[1]}; all rasters of `b` must have the same bands")
            elif pview.dtype != bands_b[2]:
                raise InputError(f"{b} is {pview.dtype} but {bands_b[0]} is {bands_b[2]}; all "
                                 "rasters of `b` must have one dtype (convert with "
                                 "gdal_translate -ot)")
            if region is None:
                continue
            partners.setdefault(i, []).append(
                (b, (region.col_off, region.row_off, region.width, region.height)))
            used.add(b)
    lonely_a = [str(s.path) for i, s in enumerate(scenes_a) if i not in partners]
    lonely_b = [str(b) for b in b_paths if b not in used]
    if not partners:
        raise InputError(f"no raster of `a` overlaps a raster of `b` ({len(scenes_a)} A, "
                         f"{len(b_paths)} B); pix2pix needs rasters of the same ground")
    if lonely_a:
        log.warning("%d raster(s) of `a` overlap no raster of `b` and are left out: %s",
                    len(lonely_a), ", ".join(lonely_a))
    if lonely_b:
        log.warning("%d raster(s) of `b` overlap no raster of `a` and are left out: %s",
                    len(lonely_b), ", ".join(lonely_b))
    return partners


def _pair_nodata(paths_b: Sequence[Path], scenes_a: Sequence[_Scene],
                 partners: dict[int, list[tuple[Path, tuple[int, int, int, int]]]],
                 windows: WindowConfig, stack: contextlib.ExitStack
                 ) -> tuple[int, str, float | None]:
    """Bands, dtype and nodata of B as read on A's grid (its first partner)."""
    from geogan.tiling import pair_view

    i = next(iter(partners))
    b_path = partners[i][0][0]
    pview, _ = pair_view(scenes_a[i].view, b_path, windows.tile_config(), stack)
    return len(pview.bands), pview.dtype, pview.nodata
