"""Colour-table (palette) rasters read as the RGB of their colour table, and their classes.

A one-band raster of colour indices with a colour table (a land-cover map, a rendered
map GeoTIFF) is read by tiling and training as three bands, red, green and blue: its
colour table's colours, exactly what ``gdal_translate -expand rgb`` writes
(:func:`open_expanded`, a GDAL VRT of ``ColorTableComponent`` sources, so warping and
windows behave as for any RGB raster). Pixels whose index is the nodata value or whose
colour-table entry has alpha 0 are invalid, and so are those of alpha 0 of a raster's
alpha band (index + alpha): the VRT carries a per-dataset mask.

The classes of such a raster (:func:`table_palette`) are the colour-table entries its
pixels use, in index order, with the names GDAL keeps in the raster's PAM sidecar
(``NAME.aux.xml``, ``<CategoryNames>``; rasterio reads no category names), and their
indices, so a translation into the domain writes the same class codes.

Chips that ``geogan tile`` cuts from a palette raster keep its colour indices and its
colour table (one band), and its category names as the band tag :data:`NAMES_TAG`
(inside the chip, not a sidecar per chip); training reads such a chip expanded as
the raster is (:func:`expand`, :func:`table_valid`) and finds the same classes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

import numpy as np
from rasterio.enums import ColorInterp

from geogan.errors import InputError
from geogan.palette import NODATA_INDEX, Palette

log = logging.getLogger(__name__)

#: What :attr:`geogan.palette.Palette.origin` says of a palette read from a colour table.
ORIGIN = "colour table"
#: Files of a domain whose indices are counted for its palette.
_MAX_FILES = 64
#: Pixels of a domain's chips counted for its palette (chips spread over the domain).
_MAX_CHIP_PIXELS = 1 << 28
#: The band tag of a chip of a palette raster naming its categories (a JSON list by index).
NAMES_TAG = "GEOGAN_CATEGORY_NAMES"


@dataclass(frozen=True)
class ColourTable:
    """The colour table of one band: index -> (r, g, b, a), its nodata index and the
    category names by index (None when the raster has none)."""

    entries: dict[int, tuple[int, int, int, int]]
    nodata: int | None
    names: tuple[str, ...] | None

    def invalid(self, index: int) -> bool:
        """Whether pixels of ``index`` hold no data (nodata, alpha 0 or no entry)."""
        entry = self.entries.get(index)
        return index == self.nodata or entry is None or entry[3] == 0

    def lookup(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``(colours, valid)`` by index for indices below ``size``: ``(size, 3)`` uint8
        colours (0 where invalid, as ``gdal_translate -expand rgb``) and ``(size,)`` bools."""
        colours = np.zeros((size, 3), dtype=np.uint8)
        valid = np.zeros(size, dtype=bool)
        for i, c in self.entries.items():
            if 0 <= i < size and not self.invalid(i):
                colours[i], valid[i] = c[:3], True
        return colours, valid

    def free_index(self, dtype: str) -> int | None:
        """An index with no colour-table entry (a nodata value that is no class), or None."""
        top = 256 if str(dtype) == "uint8" else 65536
        return next((i for i in range(top - 1, -1, -1) if i not in self.entries), None)


def expand(indices: np.ndarray, table: ColourTable) -> np.ndarray:
    """``(1, H, W)`` (or ``(H, W)``) colour indices -> ``(3, H, W)`` uint8 colours of
    ``table`` (0 for nodata and alpha-0 entries, as the expanded reads)."""
    idx = indices.reshape(indices.shape[-2:]).astype(np.int64)
    colours, _ = table.lookup(int(idx.max(initial=0)) + 1)
    return np.ascontiguousarray(colours[idx].transpose(2, 0, 1))


def table_valid(indices: np.ndarray, table: ColourTable) -> np.ndarray:
    """``(H, W)`` booleans: pixels whose index is a valid entry of ``table``."""
    idx = indices.reshape(indices.shape[-2:]).astype(np.int64)
    return table.lookup(int(idx.max(initial=0)) + 1)[1][idx]


def chip_table(src: Any) -> ColourTable | None:
    """The colour table of a chip of one palette band (alpha aside), or None."""
    from geogan.rasterio_meta import data_bands

    if data_bands(src) != (1,) or palette_bands(src) != (1,):
        return None
    return read_colour_table(src, 1)


def names_tag(names: Sequence[str] | None) -> dict[str, str]:
    """The band tag naming a chip's categories (none without names)."""
    return {} if not names else {NAMES_TAG: json.dumps(list(names), ensure_ascii=False)}


def _tag_names(src: Any, band: int) -> tuple[str, ...] | None:
    raw = src.tags(band).get(NAMES_TAG)
    if not raw:
        return None
    try:
        names = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    return tuple(names) if any(names) else None


def palette_bands(src: Any) -> tuple[int, ...]:
    """The 1-based bands of ``src`` that hold colour indices."""
    return tuple(i for i, ci in enumerate(src.colorinterp, 1) if ci == ColorInterp.palette)


def expanded_band(src: Any, path: str | os.PathLike[str], bands: Sequence[int] | None,
                  option: str = "`bands`") -> int | None:
    """The palette band of ``src`` to read expanded to RGB, or None (read it as it is).

    ``bands`` is the user's choice (None: all but an alpha band). Expansion reads one
    palette band alone; picking it with other bands is refused in one line.
    """
    paletted = palette_bands(src)
    if not paletted:
        return None
    if bands is None:
        from geogan.rasterio_meta import data_bands

        bands = data_bands(src)
    picked = [b for b in bands if b in paletted]
    if not picked:
        return None
    if len(bands) != 1:
        what = f"{option} {','.join(str(b) for b in bands)}" if bands else "its bands"
        raise InputError(f"{path} band {picked[0]} is a palette (colour table) band, read as "
                         f"the RGB of its colour table, so {what} cannot pick it with other "
                         f"bands; pass {option} {picked[0]} (or leave {option} out for a "
                         "one-band palette raster), or expand it first: gdal_translate "
                         f"-expand rgb {Path(path).name} expanded.tif")
    return picked[0]


def category_names(path: str | os.PathLike[str], band: int = 1) -> tuple[str, ...] | None:
    """Category names of ``band`` of the raster at ``path``, by colour index, from its PAM
    sidecar ``<path>.aux.xml`` (GDAL's ``<CategoryNames>``); None when there are none."""
    aux = Path(os.fspath(path) + ".aux.xml")
    if not aux.is_file():
        return None
    try:
        root = ET.parse(aux).getroot()
    except (ET.ParseError, OSError) as exc:
        log.warning("%s could not be read (%s): its category names are left out", aux, exc)
        return None
    for el in root.iter("PAMRasterBand"):
        if el.get("band", "1") != str(band):
            continue
        cats = el.find("CategoryNames")
        if cats is not None:
            names = tuple((c.text or "") for c in cats.iter("Category"))
            return names if any(names) else None
    return None


def read_colour_table(src: Any, band: int, path: str | os.PathLike[str] | None = None
                      ) -> ColourTable:
    """The colour table of ``band`` of ``src`` with its nodata index and category names."""
    try:
        entries = {int(k): tuple(int(v) for v in c) for k, c in src.colormap(band).items()}
    except ValueError as exc:
        raise InputError(f"{src.name} band {band} is marked as palette but has no colour "
                         "table; set one or its colour interpretation (gdal_edit.py "
                         "-colorinterp_1 gray)") from exc
    nodata = src.nodatavals[band - 1]
    names = category_names(path if path is not None else src.name, band)
    return ColourTable(entries, None if nodata is None else int(nodata),  # type: ignore
                       names if names is not None else _tag_names(src, band))


# ------------------------------------------------------------------------ expanded reads


def _source_xml(name: str, band: int, rect: tuple[int, int, int, int], extra: str) -> str:
    col, row, w, h = rect
    return (f"<ComplexSource><SourceFilename relativeToVRT=\"0\">{escape(name)}"
            f"</SourceFilename><SourceBand>{band}</SourceBand>"
            f"<SrcRect xOff=\"{col}\" yOff=\"{row}\" xSize=\"{w}\" ySize=\"{h}\"/>"
            f"<DstRect xOff=\"0\" yOff=\"0\" xSize=\"{w}\" ySize=\"{h}\"/>{extra}"
            "</ComplexSource>")


def expanded_vrt(src: Any, band: int, table: ColourTable, subset: Any = None,
                 source_name: str | None = None) -> str:
    """A VRT (XML) of ``band`` of ``src`` expanded to RGB through its colour table, with a
    per-dataset mask of 0 where the index is nodata or its colour has alpha 0 (or where
    ``src``'s alpha band, if it has one, is 0).

    ``subset`` (``col``, ``row``, ``width``, ``height``, ``transform``, as
    :class:`geogan.translate.subset.Subset`) limits it to a block; ``source_name`` is the
    name GDAL opens the source by (default: ``src.name``, made absolute)."""
    name = source_name or (os.path.abspath(src.name) if os.path.exists(src.name)
                           else src.name)
    rect = (0, 0, src.width, src.height) if subset is None else (
        subset.col, subset.row, subset.width, subset.height)
    transform = src.transform if subset is None else subset.transform
    dtype = "UInt16" if str(src.dtypes[band - 1]) == "uint16" else "Byte"
    nodata = "" if table.nodata is None else f"<NODATA>{table.nodata}</NODATA>"
    bands = []
    for i, interp in enumerate(("Red", "Green", "Blue"), 1):
        source = _source_xml(name, band, rect, f"{nodata}<ColorTableComponent>{i}"
                                               "</ColorTableComponent>")
        bands.append(f"<VRTRasterBand dataType=\"Byte\" band=\"{i}\"><ColorInterp>{interp}"
                     f"</ColorInterp>{source}</VRTRasterBand>")
    crs = "" if src.crs is None else f"<SRS>{escape(src.crs.to_wkt())}</SRS>"
    gt = ", ".join(repr(float(v)) for v in transform.to_gdal())
    return (f"<VRTDataset rasterXSize=\"{rect[2]}\" rasterYSize=\"{rect[3]}\">{crs}"
            f"<GeoTransform>{gt}</GeoTransform>{''.join(bands)}"
            f"<MaskBand>{_mask_xml(src, name, band, rect, table, dtype)}</MaskBand>"
            "</VRTDataset>")


def _mask_xml(src: Any, name: str, band: int, rect: tuple[int, int, int, int],
              table: ColourTable, dtype: str) -> str:
    """The expanded VRT's mask band: 255 where the index is a valid entry and, for a raster
    with an alpha band, its alpha is not 0 (the product of the two, GDAL's ``mul``)."""
    from geogan.rasterio_meta import alpha_band

    alpha = alpha_band(src)
    on = 255 if alpha is None or alpha == band else 1
    top = max([*table.entries, table.nodata or 0]) + 1
    lut = ",".join(f"{i}:{0 if table.invalid(i) else on}" for i in range(top))
    lut += f",{top}:0"
    mask = _source_xml(name, band, rect, f"<LUT>{lut}</LUT>")
    if on == 255:
        return f"<VRTRasterBand dataType=\"{dtype}\">{mask}</VRTRasterBand>"
    opaque = _source_xml(name, alpha, rect, "<LUT>0:0,1:255,65535:255</LUT>")
    return ("<VRTRasterBand dataType=\"Byte\" subClass=\"VRTDerivedRasterBand\">"
            "<PixelFunctionType>mul</PixelFunctionType><SourceTransferType>UInt16"
            f"</SourceTransferType>{mask}{opaque}</VRTRasterBand>")


def open_expanded(src: Any, band: int, path: str | os.PathLike[str],
                  stack: contextlib.ExitStack) -> Any:
    """``band`` of ``src`` (opened from ``path``) as an RGB dataset (see the module doc),
    entered into ``stack``."""
    from rasterio.io import MemoryFile

    table = read_colour_table(src, band, path)
    memfile = stack.enter_context(MemoryFile(expanded_vrt(src, band, table).encode(),
                                             ext=".vrt"))
    log.info("%s: band %d is read as the RGB of its colour table (%d entries)", path, band,
             len(table.entries))
    return stack.enter_context(memfile.open())


# ------------------------------------------------------------------------ the classes used


def _used(path: Path, band: int) -> np.ndarray:
    """How many valid pixels (alpha not 0) of each index ``band`` of ``path`` holds (all of
    them, by blocks)."""
    import rasterio

    from geogan.rasterio_meta import alpha_band

    counts = np.zeros(1 << 16, dtype=np.int64)
    with rasterio.open(path) as src:
        alpha = alpha_band(src)
        for _, win in src.block_windows(band):
            data = src.read(band, window=win)
            if alpha is not None:
                data = data[src.read(alpha, window=win) != 0]
            counts += np.bincount(data.reshape(-1), minlength=1 << 16)
    return counts


def _counted(files: Sequence[Path], pixels: Sequence[int]) -> list[Path]:
    """The files whose indices are counted: all of up to :data:`_MAX_FILES` rasters, or
    many chips (small files) spread over the domain up to :data:`_MAX_CHIP_PIXELS` pixels."""
    if len(files) <= _MAX_FILES or sum(pixels) <= _MAX_CHIP_PIXELS:
        return list(files)
    n = max(_MAX_FILES, _MAX_CHIP_PIXELS // max(max(pixels), 1))
    return list(dict.fromkeys(files[round(k * (len(files) - 1) / max(n - 1, 1))]
                              for k in range(n)))


def table_palette(files: Sequence[Path]) -> Palette | None:
    """The classes of a domain of one-band palette rasters (or chips cut from them, an
    alpha band aside): the colour-table entries their valid pixels use, in index order,
    with their names and indices; None when the domain is not one-band palette rasters,
    or uses more colours than a palette holds."""
    import rasterio

    if not files:
        return None
    tables, pixels = [], []
    try:
        for p in files[:_MAX_FILES]:
            with rasterio.open(p) as src:
                table = chip_table(src)
                if table is None:
                    return None
                tables.append(read_colour_table(src, 1, p))
                pixels.append(src.width * src.height)
        if len(files) > _MAX_FILES:  # chips: small files of one source, alike
            pixels += [pixels[-1]] * (len(files) - _MAX_FILES)
        counts = sum(_used(Path(p), 1) for p in _counted(files, pixels))
    except (rasterio.errors.RasterioError, InputError, OSError) as exc:
        log.debug("no colour table read from %s: %s", files[0], exc)
        return None
    table = tables[0]
    used = [i for i in np.flatnonzero(counts).tolist() if not table.invalid(i)]
    if not used or len(used) >= NODATA_INDEX:
        return None
    if any(t.entries.get(i) != table.entries[i] for t in tables[1:] for i in used):
        log.warning("the domain's palette rasters have different colour tables: its palette "
                    "is detected from the colours instead")
        return None
    colours = tuple(table.entries[i][:3] for i in used)
    names = None
    if table.names is not None:
        names = tuple(table.names[i] if i < len(table.names) else "" for i in used)
    indices = tuple(used) if max(used) < NODATA_INDEX else None
    log.info("the domain's rasters are palette rasters using %d colours of their colour "
             "table%s: the checkpoint records them as its palette", len(used),
             " (with their category names)" if names else "")
    return Palette(colours, names, origin=ORIGIN, indices=indices)


# ------------------------------------------------------------------------ names written


def category_pam(names: dict[int, str], band: int = 1) -> str:
    """A GDAL PAM sidecar (``.aux.xml`` text) naming ``band``'s categories: ``names`` by
    colour index (indices without a name get an empty one)."""
    root = ET.Element("PAMDataset")
    el = ET.SubElement(ET.SubElement(root, "PAMRasterBand", band=str(band)), "CategoryNames")
    for i in range(max(names) + 1 if names else 0):
        ET.SubElement(el, "Category").text = names.get(i, "")
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"
