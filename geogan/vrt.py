"""A GDAL VRT mosaic over rasters of one CRS and pixel size (``gdalbuildvrt``'s simple case).

rasterio cannot build a VRT and GDAL's Python bindings are often missing, so geogan
writes the XML itself: one ``VRTRasterBand`` per band, with one source per raster
placed at its pixel offset in the union of their extents (later rasters are drawn over
earlier ones, nodata pixels showing through as with ``gdalbuildvrt``), and a mask band
over the rasters' masks when they carry masks instead of a nodata value. Rasters in
different CRSs, of different pixel sizes, band counts, data types or nodata values
are refused in one line.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geogan.errors import InputError

#: numpy dtype name -> GDAL data type name.
GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16",
              "uint32": "UInt32", "int32": "Int32", "uint64": "UInt64", "int64": "Int64",
              "float32": "Float32", "float64": "Float64"}
#: How far (in pixels) a raster may sit off the first one's pixel grid and still count as on it.
GRID_TOLERANCE = 1e-6


@dataclass(frozen=True)
class VrtSource:
    """What the VRT needs to know of one raster (see :func:`read_source`)."""

    path: Path
    width: int
    height: int
    transform: tuple[float, float, float, float, float, float]  # a, b, c, d, e, f (Affine)
    crs_wkt: str
    count: int
    dtype: str
    nodata: float | None
    block: tuple[int, int]  # block width, height
    colorinterp: tuple[str, ...] = ()
    masked: bool = False  # a per-dataset mask instead of a nodata value

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        a, _, c, _, e, f = self.transform
        return c, f + e * self.height, c + a * self.width, f


def read_source(path: Path, dataset: Any) -> VrtSource:
    """The :class:`VrtSource` of an open rasterio ``dataset`` read from ``path``."""
    from rasterio.enums import MaskFlags

    t = dataset.transform
    flags = dataset.mask_flag_enums[0] if dataset.count else ()
    block = dataset.block_shapes[0] if dataset.block_shapes else (dataset.height, dataset.width)
    return VrtSource(path=Path(path), width=dataset.width, height=dataset.height,
                     transform=(t.a, t.b, t.c, t.d, t.e, t.f),
                     crs_wkt=dataset.crs.to_wkt() if dataset.crs is not None else "",
                     count=dataset.count, dtype=dataset.dtypes[0], nodata=dataset.nodata,
                     block=(int(block[1]), int(block[0])),
                     colorinterp=tuple(c.name.capitalize() for c in dataset.colorinterp),
                     masked=MaskFlags.per_dataset in flags and dataset.nodata is None)


def check_same_grid(sources: Sequence[VrtSource]) -> None:
    """One CRS, pixel size, band count, data type and nodata, north-up: or one line of error."""
    first = sources[0]
    for src in sources:
        a, b, _, d, e, _ = src.transform
        if b or d or a <= 0 or e >= 0:
            raise InputError(f"{src.path} is rotated or not north-up; a VRT mosaic needs "
                             "north-up rasters: warp it (gdalwarp) first")
        fa, _, _, _, fe, _ = first.transform
        differ = [what for what, same in (
            ("CRS", src.crs_wkt == first.crs_wkt),
            ("pixel size", math.isclose(a, fa, rel_tol=1e-9) and math.isclose(e, fe, rel_tol=1e-9)),
            ("band count", src.count == first.count),
            ("data type", src.dtype == first.dtype),
            ("nodata", src.nodata == first.nodata or (src.nodata is not None
                                                      and first.nodata is not None
                                                      and math.isnan(src.nodata)
                                                      and math.isnan(first.nodata)))) if not same]
        if differ:
            raise InputError(f"{src.path} and {first.path} differ in {' and '.join(differ)}, so "
                             "they do not make one mosaic; translate them to one grid "
                             "(`tile.align_to`, or gdalwarp) or index them separately")
    if first.dtype not in GDAL_TYPES:
        raise InputError(f"{first.path} has data type {first.dtype}, which a geogan VRT does not "
                         f"hold; use one of {', '.join(GDAL_TYPES)}")


def off_grid(sources: Sequence[VrtSource]) -> list[Path]:
    """The rasters whose pixels do not line up with the first one's (to be resampled)."""
    a, _, c, _, e, f = sources[0].transform
    out = []
    for src in sources[1:]:
        x = (src.transform[2] - c) / a
        y = (src.transform[5] - f) / e
        if abs(x - round(x)) > GRID_TOLERANCE or abs(y - round(y)) > GRID_TOLERANCE:
            out.append(src.path)
    return out


def _number(value: float) -> str:
    """A float as XML text that reads back to the same float (integers without ``.0``)."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(value)


def _source_name(path: Path, folder: Path) -> tuple[str, str]:
    """``(name, relativeToVRT)``: relative to the VRT's folder when the raster is inside it."""
    full, base = path.resolve(), folder.resolve()
    if full.is_relative_to(base):
        return full.relative_to(base).as_posix(), "1"
    return str(full), "0"


def _offset(value: float) -> float:
    """A pixel offset, snapped to the integer it is within :data:`GRID_TOLERANCE` of."""
    return float(round(value)) if abs(value - round(value)) <= GRID_TOLERANCE else value


def vrt_xml(sources: Sequence[VrtSource], vrt_path: Path) -> str:
    """The XML of a VRT at ``vrt_path`` over ``sources`` (checked with :func:`check_same_grid`)."""
    if not sources:
        raise InputError("a VRT needs at least one raster")
    check_same_grid(sources)
    first = sources[0]
    xres, yres = first.transform[0], first.transform[4]
    left = min(s.bounds[0] for s in sources)
    top = max(s.bounds[3] for s in sources)
    right = max(s.bounds[2] for s in sources)
    bottom = min(s.bounds[1] for s in sources)
    width = int(0.5 + (right - left) / xres)
    height = int(0.5 + (bottom - top) / yres)
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    if first.crs_wkt:
        ET.SubElement(root, "SRS").text = first.crs_wkt
    ET.SubElement(root, "GeoTransform").text = ", ".join(
        _number(v) for v in (left, xres, 0.0, top, 0.0, yres))
    places = [(_offset((s.transform[2] - left) / xres), _offset((s.transform[5] - top) / yres))
              for s in sources]
    names = [_source_name(s.path, vrt_path.parent) for s in sources]
    for band in range(1, first.count + 1):
        node = ET.SubElement(root, "VRTRasterBand", dataType=GDAL_TYPES[first.dtype],
                             band=str(band))
        if first.nodata is not None:
            ET.SubElement(node, "NoDataValue").text = _number(first.nodata) \
                if not math.isnan(first.nodata) else "nan"
        if len(first.colorinterp) >= band:
            ET.SubElement(node, "ColorInterp").text = first.colorinterp[band - 1]
        for src, place, name in zip(sources, places, names, strict=True):
            _add_source(node, src, place, name, str(band), first.nodata)
    if any(s.masked for s in sources):
        mask = ET.SubElement(ET.SubElement(root, "MaskBand"), "VRTRasterBand", dataType="Byte")
        for src, place, name in zip(sources, places, names, strict=True):
            _add_source(mask, src, place, name, "mask,1", None, dtype="Byte")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _add_source(band: ET.Element, src: VrtSource, place: tuple[float, float],
                name: tuple[str, str], source_band: str, nodata: float | None,
                dtype: str | None = None) -> None:
    kind = "ComplexSource" if nodata is not None else "SimpleSource"
    node = ET.SubElement(band, kind)
    ET.SubElement(node, "SourceFilename", relativeToVRT=name[1]).text = name[0]
    ET.SubElement(node, "SourceBand").text = source_band
    ET.SubElement(node, "SourceProperties", RasterXSize=str(src.width),
                  RasterYSize=str(src.height), DataType=dtype or GDAL_TYPES[src.dtype],
                  BlockXSize=str(src.block[0]), BlockYSize=str(src.block[1]))
    ET.SubElement(node, "SrcRect", xOff="0", yOff="0", xSize=str(src.width),
                  ySize=str(src.height))
    ET.SubElement(node, "DstRect", xOff=_number(place[0]), yOff=_number(place[1]),
                  xSize=str(src.width), ySize=str(src.height))
    if nodata is not None:
        ET.SubElement(node, "NODATA").text = _number(nodata) if not math.isnan(nodata) else "nan"
