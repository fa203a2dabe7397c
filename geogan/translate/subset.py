"""Translating a part of the input (``bounds``, ``aoi``): its window, and a view of just it.

The part is a block of whole input pixels, so the output lies on the input's grid: its
transform is the input's moved by whole pixels. The block is the smallest one that holds
every pixel the bounds (and the AOI's polygons) touch, cut to the raster. Translation
reads the block through an in-memory GDAL VRT (:func:`subset_view`) that looks like the
block cut out as a file of its own, so the statistics, the windows and therefore the
pixels are those of translating a ``gdal_translate -srcwin`` cut of the input. Pixels of
the block outside the AOI's polygons are nodata (masked) in the output
(:meth:`Subset.inside`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from geogan.checkpoint import LoadedGenerator
from geogan.errors import InputError
from geogan.translate.compat import check_band_names, open_input, select_input_bands
from geogan.translate.config import TranslateConfig

log = logging.getLogger(__name__)

#: Coordinates closer than this (in pixels) to a pixel edge count as on it.
EDGE_TOLERANCE = 1e-6
#: GDAL's data type names (VRT ``dataType``).
_GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16",
               "uint32": "UInt32", "int32": "Int32", "float32": "Float32",
               "float64": "Float64"}


@dataclass(frozen=True)
class Subset:
    """The block of input pixels translated: ``col``, ``row``, ``width``, ``height``.

    ``area`` is the AOI (a shapely geometry in the input's pixel coordinates, columns and
    rows of the whole input) or None.
    """

    col: int
    row: int
    width: int
    height: int
    transform: Any  # affine.Affine of the block
    area: Any = None

    def inside(self, row0: int, rows: int, col0: int = 0,
               cols: int | None = None) -> np.ndarray | None:
        """``(rows, cols)`` booleans: block pixels inside the AOI, from row ``row0`` and
        column ``col0`` (``cols`` columns: to the block's right edge when None)."""
        if self.area is None:
            return None
        import shapely
        from rasterio.features import geometry_mask
        from rasterio.transform import Affine

        # pixel (c, r) of the block is pixel (col + c, row + r) of the input
        shifted = shapely.affinity.translate(self.area, -self.col - col0, -self.row - row0)
        cols = self.width - col0 if cols is None else cols
        return ~geometry_mask([shifted], out_shape=(rows, cols),
                              transform=Affine.identity(), all_touched=True)


def plan_subset(src: Any, path: Path | str, config: TranslateConfig) -> Subset | None:
    """The part of open raster ``src`` that ``config.bounds``/``config.aoi`` select, or None."""
    if config.bounds is None and config.aoi is None:
        return None
    import shapely

    inv = ~src.transform
    box = (0.0, 0.0, float(src.width), float(src.height))
    what = []
    if config.bounds is not None:
        xmin, ymin, xmax, ymax = config.bounds
        box = _intersect(box, _pixel_box(inv, xmin, ymin, xmax, ymax))
        what.append(f"`bounds` {xmin:g} {ymin:g} {xmax:g} {ymax:g}")
    area = None
    if config.aoi is not None:
        what.append(f"`aoi` {config.aoi}")
        area = _aoi_pixels(Path(config.aoi), src, path, inv)
        if box[0] < box[2] and box[1] < box[3]:
            area = area.intersection(shapely.box(*box))
        box = area.bounds if not area.is_empty else (0.0, 0.0, 0.0, 0.0)
    col, row = math.floor(box[0] + EDGE_TOLERANCE), math.floor(box[1] + EDGE_TOLERANCE)
    end_c, end_r = math.ceil(box[2] - EDGE_TOLERANCE), math.ceil(box[3] - EDGE_TOLERANCE)
    col, row = max(col, 0), max(row, 0)
    end_c, end_r = min(end_c, int(src.width)), min(end_r, int(src.height))
    if end_c <= col or end_r <= row or (area is not None and area.is_empty):
        b = src.bounds
        raise InputError(f"{' and '.join(what)} do not overlap {path} (its extent is "
                         f"{b.left:g} {b.bottom:g} {b.right:g} {b.top:g} in its CRS); check "
                         "the coordinates and their CRS")
    from rasterio.windows import Window

    window = Window(col, row, end_c - col, end_r - row)
    return Subset(col, row, end_c - col, end_r - row, src.window_transform(window), area)


def _pixel_box(inv: Any, xmin: float, ymin: float, xmax: float,
               ymax: float) -> tuple[float, float, float, float]:
    """Map bounds to (col0, row0, col1, row1) in pixels (any axis directions)."""
    corners = [inv * (x, y) for x in (xmin, xmax) for y in (ymin, ymax)]
    cols = [c for c, _ in corners]
    rows = [r for _, r in corners]
    return min(cols), min(rows), max(cols), max(rows)


def _intersect(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, float, float, float]:
    return max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])


def _aoi_pixels(aoi: Path, src: Any, path: Path | str, inv: Any) -> Any:
    """The AOI's polygons in ``src``'s pixel coordinates (a shapely geometry)."""
    import shapely

    from geogan.tiling.aoi import read_aoi

    gdf = read_aoi(aoi, "`aoi`")
    if any(t not in ("Polygon", "MultiPolygon") for t in gdf.geom_type):
        raise InputError(f"`aoi` {aoi} holds non-polygon geometries; give polygons only")
    if gdf.crs is None:
        log.warning("`aoi` %s has no CRS; assuming the CRS of %s", aoi, path)
    elif src.crs is not None:
        gdf = gdf.to_crs(src.crs.to_wkt())
    else:
        log.warning("%s has no CRS; using `aoi` %s coordinates as they are", path, aoi)
    area = shapely.union_all(gdf.geometry.values)
    return shapely.affinity.affine_transform(area, [inv.a, inv.b, inv.d, inv.e, inv.c, inv.f])


def subset_vrt(src: Any, subset: Subset, source_name: str) -> str:
    """A VRT of ``subset`` of ``src``: the block's pixels, nodata, colours and mask, unchanged."""
    sub = subset
    rect = (f'<SrcRect xOff="{sub.col}" yOff="{sub.row}" xSize="{sub.width}" '
            f'ySize="{sub.height}"/><DstRect xOff="0" yOff="0" xSize="{sub.width}" '
            f'ySize="{sub.height}"/>')
    name = f'<SourceFilename relativeToVRT="0">{escape(source_name)}</SourceFilename>'
    parts = [f'<VRTDataset rasterXSize="{sub.width}" rasterYSize="{sub.height}">']
    if src.crs is not None:
        parts.append(f"<SRS>{escape(src.crs.to_wkt())}</SRS>")
    parts.append("<GeoTransform>" + ", ".join(repr(float(v)) for v in sub.transform.to_gdal())
                 + "</GeoTransform>")
    for i, (dtype, ci) in enumerate(zip(src.dtypes, src.colorinterp, strict=True), 1):
        gdal_type = _GDAL_TYPES.get(str(dtype))
        if gdal_type is None:
            raise InputError(f"{source_name} band {i} is {dtype}, which geogan cannot take")
        parts.append(f'<VRTRasterBand dataType="{gdal_type}" band="{i}">')
        nodata = src.nodatavals[i - 1]
        if nodata is not None:
            parts.append(f"<NoDataValue>{_nodata_text(nodata)}</NoDataValue>")
        parts.append(f"<ColorInterp>{ci.name.capitalize()}</ColorInterp>")
        parts.append(f"<SimpleSource>{name}<SourceBand>{i}</SourceBand>{rect}</SimpleSource>")
        parts.append("</VRTRasterBand>")
    if _per_dataset_mask(src):
        parts.append('<MaskBand><VRTRasterBand dataType="Byte"><SimpleSource>'
                     f"{name}<SourceBand>mask,1</SourceBand>{rect}</SimpleSource>"
                     "</VRTRasterBand></MaskBand>")
    parts.append("</VRTDataset>")
    return "".join(parts)


def _nodata_text(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


def _per_dataset_mask(src: Any) -> bool:
    from rasterio.enums import MaskFlags

    return all(MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags
               for flags in src.mask_flag_enums)


def source_name(path: str | os.PathLike[str]) -> str:
    """How a VRT names ``path``: a GDAL path as given, a local file by its absolute path."""
    from geogan.inputs import GdalPath

    if isinstance(path, GdalPath):
        return str(path)
    return str(Path(path).resolve())


@contextlib.contextmanager
def subset_view(path: Path, vrt: str | None) -> Iterator[Path]:
    """``path`` itself without a VRT; else VRT text ``vrt`` as an in-memory file.

    The file keeps the input's suffix (``naip.subset.tif``) for the rules that go by
    it (plain pictures may lack a georeference); GDAL recognises a VRT by its content.
    """
    if vrt is None:
        yield path
        return
    from rasterio.io import MemoryFile

    from geogan.inputs import as_input

    name = Path(str(path))
    with MemoryFile(vrt.encode("utf-8"), filename=f"{name.stem}.subset{name.suffix}") as mem:
        yield as_input(mem.name)  # type: ignore[misc]


def plan_view(src: Any, path: Path, config: TranslateConfig) -> tuple[Subset | None, str | None]:
    """The subset of open ``src`` and the VRT text of its view (None, None without one).

    A palette raster is read as the RGB of its colour table (:mod:`geogan.colortable`):
    its view is that VRT, of the subset or the whole raster.
    """
    from geogan.colortable import expanded_band, expanded_vrt, read_colour_table

    subset = plan_subset(src, path, config)
    band = expanded_band(src, path, config.bands)
    if band is not None:
        table = read_colour_table(src, band, path)
        return subset, expanded_vrt(src, band, table, subset, source_name(path))
    if subset is None:
        return None, None
    return subset, subset_vrt(src, subset, source_name(path))


@contextlib.contextmanager
def subset_views(paths: list[Path], config: TranslateConfig) -> Iterator[list[Path]]:
    """:func:`subset_view` of each of ``paths`` (the inputs themselves without a subset)."""
    with contextlib.ExitStack() as stack:
        views = []
        for path in paths:
            with open_input(path) as src:
                _, vrt = plan_view(src, path, config)
            views.append(stack.enter_context(subset_view(path, vrt)))
        yield views


def inspect_input(path: Path, generator: LoadedGenerator, config: TranslateConfig) -> int:
    """Check an input against the generator before a batch starts; return its pixel count."""
    from geogan.rasterio_io import check_readable
    from geogan.rasterio_meta import check_pixels, data_bands

    check_band_names(generator, config.band_names)
    from geogan.colortable import expanded_band

    with open_input(path) as src:
        check_readable(src)
        if expanded_band(src, path, config.bands) is not None:  # read as RGB
            select_input_bands(3, ("uint8",) * 3, path, generator, None, (1, 2, 3))
        else:
            check_pixels(src, path, config.bands or data_bands(src))
            select_input_bands(src.count, src.dtypes, path, generator, config.bands,
                               data_bands(src))
        subset = plan_subset(src, path, config)
        if subset is not None:
            return subset.width * subset.height
        return int(src.width) * int(src.height)
