"""The output formats geogan translate writes, in one table.

Each row says which file name endings pick the format, which GDAL driver writes it,
whether the file holds its own georeference, and how it is written: ``create``
(written row by row as the translation goes) or ``copy`` (a GeoTIFF is written first
and GDAL copies it into the format once complete). Everything else derives from it:
which output names are files rather than folders (:func:`output_suffixes`), which
inputs are read without a georeference (:func:`readable_without_crs`), the writer a
translation uses (:func:`format_for`), the CLI's help and messages
(:func:`default_format`, :func:`picture_names`) and the QGIS plugin's file filters
(:func:`qgis_extensions`).

Standard library only: the QGIS plugin vendors this package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: How a format is written: row by row into the file, or by copy of a finished GeoTIFF.
WRITE_MODES = ("create", "copy")


@dataclass(frozen=True)
class OutputFormat:
    """One row of :data:`OUTPUT_FORMATS`.

    ``suffixes`` are lower-case name endings, the first the one geogan gives new files;
    ``option`` is the option that picks this format for those endings instead of the
    format listed first for them (``cog``); ``writer`` names the sink that writes it
    (:data:`geogan.sink.WRITERS`: ``gdal`` for every format GDAL writes).
    """

    name: str
    driver: str
    suffixes: tuple[str, ...]
    georeferenced: bool
    write: str
    option: str | None = None
    writer: str = "gdal"

    def __post_init__(self) -> None:
        if self.write not in WRITE_MODES:
            raise ValueError(f"{self.name}: write must be one of {WRITE_MODES}")
        if not self.suffixes or any(s != s.lower() or not s.startswith(".")
                                    for s in self.suffixes):
            raise ValueError(f"{self.name}: suffixes must be lower-case and start with a dot")

    @property
    def extension(self) -> str:
        """The ending geogan gives new files, without its dot (``tif``)."""
        return self.suffixes[0][1:]


GEOTIFF = OutputFormat("GeoTIFF", "GTiff", (".tif", ".tiff"), georeferenced=True,
                       write="create")
COG = OutputFormat("Cloud Optimized GeoTIFF", "COG", (".tif", ".tiff"), georeferenced=True,
                   write="copy", option="cog")
#: Plain pictures: no georeference of their own (GDAL keeps it in ``NAME.aux.xml``).
PNG = OutputFormat("PNG", "PNG", (".png",), georeferenced=False, write="copy")
JPEG = OutputFormat("JPEG", "JPEG", (".jpg", ".jpeg"), georeferenced=False, write="copy")

#: Every output format, the default (written into output folders) first.
OUTPUT_FORMATS: tuple[OutputFormat, ...] = (GEOTIFF, COG, PNG, JPEG)


def default_format() -> OutputFormat:
    """The format of outputs named by geogan (``<input stem>.tif`` in an output folder)."""
    return OUTPUT_FORMATS[0]


def output_suffixes() -> tuple[str, ...]:
    """Name endings that make an output a file rather than a folder, in table order."""
    seen: dict[str, None] = {}
    for fmt in OUTPUT_FORMATS:
        seen.update(dict.fromkeys(fmt.suffixes))
    return tuple(seen)


def _suffix(path: str | os.PathLike[str]) -> str:
    return os.path.splitext(os.fspath(path))[1].lower()


def format_for(path: str | os.PathLike[str], options: tuple[str, ...] = ()) -> OutputFormat:
    """The format an output named ``path`` is written in, with the options given.

    The first row whose suffixes hold ``path``'s ending and whose option is among
    ``options`` (or that needs none) wins, in reverse order so that an option-selected
    row (COG) beats the plain one; an unknown ending is the default format.
    """
    suffix = _suffix(path)
    for fmt in reversed(OUTPUT_FORMATS):
        if suffix in fmt.suffixes and (fmt.option is None or fmt.option in options):
            return fmt
    return default_format()


def format_of_driver(driver: str) -> OutputFormat:
    """The row of GDAL's ``driver`` (``GTiff``, ``COG``, ``PNG``...)."""
    for fmt in OUTPUT_FORMATS:
        if fmt.driver == driver:
            return fmt
    raise KeyError(f"geogan writes no {driver} outputs")


def picture_drivers() -> dict[str, str]:
    """``{suffix: driver}`` of the formats without a georeference of their own."""
    return {s: fmt.driver for fmt in OUTPUT_FORMATS if not fmt.georeferenced
            for s in fmt.suffixes}


def picture_names() -> tuple[str, ...]:
    """Names of the formats without a georeference of their own (``PNG``, ``JPEG``)."""
    return tuple(fmt.name for fmt in OUTPUT_FORMATS if not fmt.georeferenced)


def readable_without_crs(path: str | os.PathLike[str]) -> bool:
    """Whether an input named ``path`` may lack a georeference (a plain picture)."""
    return _suffix(path) in picture_drivers()


def qgis_extensions() -> list[str]:
    """The endings (without dot) the QGIS plugin offers for its raster outputs.

    A QGIS layer is a map layer: the formats that hold their own georeference and
    that an ending alone selects.
    """
    return [fmt.extension for fmt in OUTPUT_FORMATS if fmt.georeferenced and fmt.option is None]
