"""A translation into a map domain written as a map: colour indices and a colour table.

:func:`output_palette` decides from ``config.palette`` and the checkpoint's target
domain whether the output is paletted; :func:`paletted_profile` and
:func:`paletted_meta` make the output one ``uint8`` band of colour indices with
``PHOTOMETRIC=PALETTE``; :class:`PaletteTarget` wraps the output's sink so each block
of finished rows is mapped to the nearest palette colour (:func:`geogan.palette.
nearest_index`) and the colour table is written (:func:`geogan.palette.colormap`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from geogan.errors import InputError
from geogan.palette import NODATA_INDEX, Palette, colormap, nearest_index
from geogan.rasterio_meta import BandMeta, RasterMeta
from geogan.sink.rows import Rows, Sink, SinkTarget

log = logging.getLogger(__name__)

#: Drivers that write a colour table.
_PALETTE_DRIVERS = ("GTiff", "PNG")
#: The description of the band of colour indices.
CLASS_BAND = "class"


def output_palette(generator: Any, config: Any, driver: str) -> Palette | None:
    """The palette the output is mapped to, or None for continuous colours.

    ``auto`` uses the palette the checkpoint recorded for its target domain, if any and
    the output format holds a colour table; ``on`` requires one (InputError otherwise).
    With ``at_model_resolution`` (whose output is resampled) ``auto`` writes continuous
    colours and ``on`` is refused.
    """
    palette_option = config.palette
    if palette_option == "off":
        return None
    if config.at_model_resolution:
        if palette_option == "on":
            raise InputError("`palette` on and `at_model_resolution` cannot be combined (the "
                             "output is resampled); drop one of them")
        return None
    target = generator.sides()[1]
    recorded = getattr(target, "palette", None)
    palette = None
    if recorded is not None:
        try:
            palette = Palette.from_json(recorded)
        except (TypeError, ValueError, KeyError) as exc:
            raise InputError(f"the checkpoint's palette of its target domain is malformed "
                             f"({exc}); pass `palette` off") from exc
        if palette.bands != generator.out_bands:
            palette = None
    if palette_option == "on":
        if palette is None:
            raise InputError("`palette` on needs a checkpoint whose target domain is a map of "
                             "a few flat colours, and this checkpoint records no palette; "
                             "drop `palette` or pass `palette` off")
        if driver not in _PALETTE_DRIVERS:
            raise InputError(f"`palette` on writes a colour table, which {driver} output "
                             "cannot hold; give a .tif output or pass `palette` off")
    elif palette is not None and driver not in _PALETTE_DRIVERS:
        log.info("%s output holds no colour table: continuous colours are written", driver)
        return None
    return palette


def paletted_profile(profile: dict[str, Any]) -> dict[str, Any]:
    """``profile`` made one band of ``uint8`` colour indices (nodata: index 255)."""
    out = dict(profile, count=1, dtype="uint8", photometric="PALETTE", interleave="band")
    if out.get("nodata") is not None:
        out["nodata"] = NODATA_INDEX
    if "predictor" in out:
        out["predictor"] = 2
    return out


def paletted_meta(meta: RasterMeta) -> RasterMeta:
    """One band of colour indices, with the dataset tags of ``meta``."""
    from rasterio.enums import ColorInterp

    return RasterMeta((BandMeta(ColorInterp.palette, CLASS_BAND),), dict(meta.tags))


def paletted_sinks(sinks: Sequence[SinkTarget], palette: Palette | None) -> list[SinkTarget]:
    """The sinks of a translation, the output's (the first) paletted with ``palette``."""
    if palette is None:
        return list(sinks)
    first = sinks[0]
    profile, meta = getattr(first, "profile", None), getattr(first, "meta", None)
    if profile is None:
        raise InputError("`palette` needs a GDAL output; pass `palette` off")
    first = replace(first, profile=paletted_profile(profile),  # type: ignore[type-var]
                    meta=None if meta is None else paletted_meta(meta))
    return [PaletteTarget(first, palette), *sinks[1:]]


class _PaletteSink:
    """Maps each block of rows to colour indices and hands them to ``inner``."""

    def __init__(self, inner: Sink, palette: Palette) -> None:
        self.inner = inner
        self.palette = palette
        self.codes = palette.codes()

    def write(self, rows: Rows) -> None:
        index = self.codes[nearest_index(rows.values, self.palette)]
        if rows.valid is not None:
            index = np.where(rows.valid, index, np.uint8(NODATA_INDEX))
        self.inner.write(replace(rows, values=index[None]))

    def finish(self) -> None:
        self.inner.finish()


@dataclass(frozen=True)
class PaletteTarget:
    """A :class:`~geogan.sink.rows.SinkTarget` writing ``inner``'s raster paletted."""

    inner: SinkTarget
    palette: Palette

    @contextlib.contextmanager
    def open(self) -> Iterator[Sink]:
        with self.inner.open() as sink:
            dst = getattr(sink, "dst", None)
            if dst is not None:
                dst.write_colormap(1, colormap(self.palette))
            yield _PaletteSink(sink, self.palette)


def palette_sidecars(output: Any, palette: Palette | None
                     ) -> dict[Path, Callable[[Path], None]]:
    """The files beside a paletted ``output``, each with the function writing it to the
    path it is given: the QGIS style ``OUT.qml`` (a paletted renderer of the palette's
    classes, labelled with their names, else their colour index; QGIS loads it with the
    layer) and, when the palette names its classes, GDAL's PAM sidecar
    ``OUT.tif.aux.xml`` (``<CategoryNames>``, which GDAL-based tools read). None for
    continuous output or an output outside local folders (a ``/vsi`` path)."""
    from geogan.colortable import category_pam
    from geogan.inputs import GdalPath
    from geogan.qml import paletted_style, style_path_for

    if palette is None or isinstance(output, GdalPath):
        return {}
    codes = palette.codes().tolist()
    names = palette.names or ("",) * len(codes)
    labels = [name or str(code) for code, name in zip(codes, names, strict=True)]
    files = {style_path_for(output): _writer(
        paletted_style(list(zip(codes, palette.colours, labels, strict=True))))}
    if palette.names is not None:
        pam = category_pam(dict(zip(codes, palette.names, strict=True)))
        files[Path(f"{output}.aux.xml")] = _writer(pam)
    return files


def palette_outputs(output: Any, palette: Palette | None) -> dict[str, Any]:
    """``sidecars`` and ``check_sidecar`` of :func:`geogan.sink.translation_outputs` for a
    translation into ``output`` with ``palette``."""
    return {"sidecars": palette_sidecars(output, palette),
            "check_sidecar": check_palette_sidecar}


def _writer(text: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        Path(path).write_text(text, encoding="utf-8")
    return write


def check_palette_sidecar(path: Path, overwrite: bool) -> None:
    """Fail when ``path`` (a sidecar of :func:`palette_sidecars`) cannot be written: it
    exists without ``overwrite``, or is a style geogan did not write."""
    from geogan.errors import OutputError
    from geogan.fileio import check_output_file
    from geogan.qml import PALETTED_TITLE, style_says

    check_output_file(path, overwrite)
    if path.suffix == ".qml" and path.exists():
        if not style_says(path, PALETTED_TITLE):
            raise OutputError(f"{path} exists and is not a style geogan wrote; move it away "
                              "to have geogan write the map classes' style there")


def remove_stale_sidecars(output: Any, palette: Palette | None, overwrite: bool) -> None:
    """After ``output`` was overwritten: remove the style and names files geogan wrote
    beside the raster it replaced that :func:`palette_sidecars` did not write now (a
    paletted style beside a continuous output would misdraw it)."""
    from geogan.inputs import GdalPath
    from geogan.qml import PALETTED_TITLE, style_path_for, style_says

    if not overwrite or isinstance(output, GdalPath):
        return
    kept = palette_sidecars(output, palette)
    style, pam = style_path_for(output), Path(f"{output}.aux.xml")
    stale = []
    if style not in kept and style.is_file() and style_says(style, PALETTED_TITLE):
        stale.append(style)
    if pam not in kept and pam.is_file() and _only_category_names(pam):
        stale.append(pam)
    for path in stale:
        log.info("removing %s, written for the raster %s replaced", path, output)
        with contextlib.suppress(OSError):
            path.unlink()


def _only_category_names(path: Path) -> bool:
    """Whether PAM file ``path`` holds category names and nothing else (what geogan writes)."""
    from xml.etree import ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return False
    bands = list(root)
    return root.tag == "PAMDataset" and bool(bands) and all(
        b.tag == "PAMRasterBand" and [c.tag for c in b] == ["CategoryNames"] for b in bands)
