"""QGIS style files (``.qml``) that geogan writes beside its rasters.

QGIS loads ``NAME.qml`` with ``NAME.tif`` when the layer is added, so a confidence
raster opens coloured from red (the model is guessing) to green (it is sure), with a
legend that says what the values mean. The file is a QGIS 3.22 layer style with a
``singlebandpseudocolor`` renderer on band 1 and a fixed 0..1 range.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from xml.etree import ElementTree as ET

#: QGIS version the style is written for (later versions read it too).
QGIS_VERSION = "3.22.0-Białowieża"
#: The confidence ramp: (value, RGB hex, legend label), red to yellow to green.
CONFIDENCE_RAMP: tuple[tuple[float, str, str], ...] = (
    (0.0, "#d7191c", "0 = guessing (geogan confidence)"),
    (0.25, "#fdae61", "0.25"),
    (0.5, "#ffffbf", "0.5"),
    (0.75, "#a6d96a", "0.75"),
    (1.0, "#1a9641", "1 = the model is sure"),
)
#: What the legend and the layer's abstract say the values are.
CONFIDENCE_TITLE = "geogan confidence: 1 = the model is sure, 0 = guessing"


def _rgba(hex_colour: str) -> str:
    h = hex_colour.lstrip("#")
    return ",".join(str(int(h[i:i + 2], 16)) for i in (0, 2, 4)) + ",255"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: str(v) for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def _colour_ramp(shader: ET.Element, ramp: Sequence[tuple[float, str, str]], lo: float,
                 hi: float) -> None:
    """The gradient (for QGIS's ramp editor) and the items (colours and legend labels)."""
    first, last = ramp[0][1], ramp[-1][1]
    stops = ":".join(f"{(v - lo) / (hi - lo):g};{_rgba(c)}" for v, c, _ in ramp[1:-1])
    cr = _sub(shader, "colorramp", type="gradient", name="[source]")
    opts = _sub(cr, "Option", type="Map")
    props = {"color1": _rgba(first), "color2": _rgba(last), "discrete": "0",
             "rampType": "gradient", "stops": stops}
    for k, v in props.items():
        _sub(opts, "Option", type="QString", name=k, value=v)
    for k, v in props.items():
        _sub(cr, "prop", k=k, v=v)
    for value, colour, label in ramp:
        _sub(shader, "item", alpha="255", value=f"{value:g}", label=label, color=colour)
    _sub(shader, "rampLegendSettings", minimumLabel="", maximumLabel="", prefix="",
         suffix="", direction="0", useContinuousLegend="0", orientation="2")


def pseudocolor_style(ramp: Sequence[tuple[float, str, str]] = CONFIDENCE_RAMP,
                      title: str = CONFIDENCE_TITLE, band: int = 1) -> str:
    """A QGIS layer style (QML text): band ``band`` coloured through ``ramp``, interpolated.

    ``ramp`` is ``(value, "#rrggbb", label)`` from the lowest value to the highest; its
    ends are the renderer's minimum and maximum; the labels are the legend's, and
    ``title`` goes into the layer's abstract.
    """
    lo, hi = float(ramp[0][0]), float(ramp[-1][0])
    if not hi > lo:
        raise ValueError("the ramp must rise from its first value to its last")
    rr, finish = _layer_style("singlebandpseudocolor", band, classificationMin=f"{lo:g}",
                              classificationMax=f"{hi:g}")
    shader = _sub(_sub(rr, "rastershader"), "colorrampshader", colorRampType="INTERPOLATED",
                  classificationMode="1", clip="0", minimumValue=f"{lo:g}",
                  maximumValue=f"{hi:g}", labelPrecision="2")
    _colour_ramp(shader, ramp, lo, hi)
    return finish(title)


def _layer_style(renderer: str, band: int, **attrs: str
                 ) -> tuple[ET.Element, Callable[[str], str]]:
    """The start of a QGIS 3.22 raster layer style with a ``renderer`` of band ``band``
    (extra renderer ``attrs`` after the common ones): the renderer element, to fill, and
    ``finish(title)``, which adds the rest of the pipe and the abstract and returns the
    QML text."""
    root = ET.Element("qgis", version=QGIS_VERSION, styleCategories="AllStyleCategories",
                      hasScaleBasedVisibilityFlag="0", minScale="1e+08", maxScale="0")
    pipe = _sub(root, "pipe")
    rr = _sub(pipe, "rasterrenderer", type=renderer, band=str(band), opacity="1",
              alphaBand="-1", **attrs, nodataColor="")
    _sub(rr, "rasterTransparency")
    mmo = _sub(rr, "minMaxOrigin")
    for tag, text in (("limits", "None"), ("extent", "WholeRaster"),
                      ("statAccuracy", "Estimated"), ("cumulativeCutLower", "0.02"),
                      ("cumulativeCutUpper", "0.98"), ("stdDevFactor", "2")):
        _sub(mmo, tag, text)

    def finish(title: str) -> str:
        _sub(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
        _sub(pipe, "huesaturation", saturation="0", colorizeOn="0", colorizeRed="255",
             colorizeGreen="128", colorizeBlue="128", colorizeStrength="100",
             grayscaleMode="0")
        _sub(pipe, "rasterresampler", maxOversampling="2")
        _sub(root, "blendMode", "0")
        meta = _sub(root, "layerMetadata")
        _sub(meta, "abstract", title)
        ET.indent(root, space="  ")
        return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
                + ET.tostring(root, encoding="unicode") + "\n")

    return rr, finish


def style_path_for(raster: str | os.PathLike[str]) -> Path:
    """The style file QGIS loads with ``raster``: same name, ``.qml``."""
    return Path(raster).with_suffix(".qml")


def style_says(path: str | os.PathLike[str], title: str) -> bool:
    """Whether the style file ``path`` carries ``title`` in its first 64 KiB (a style geogan
    wrote with that title); False when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return title in fh.read(65536).decode("utf-8", "replace")
    except OSError:
        return False


def write_confidence_style(path: str | os.PathLike[str]) -> Path:
    """Write the confidence raster's style to ``path`` (a ``.qml``); return the path.

    Plain write: the caller (the output sink) decides about existing files and
    temporaries, as for the raster itself.
    """
    p = Path(path)
    p.write_text(pseudocolor_style(), encoding="utf-8")
    return p


#: What the layer's abstract says of a paletted translation's style (geogan wrote it).
PALETTED_TITLE = "geogan map classes: colours and names of the checkpoint's target domain"


def paletted_style(entries: Sequence[tuple[int, tuple[int, ...], str]],
                   title: str = PALETTED_TITLE, band: int = 1) -> str:
    """A QGIS layer style (QML text): band ``band`` as a paletted (classified) raster.

    ``entries`` are ``(value, (r, g, b), label)``: each class's pixel value, colour and
    legend label; ``title`` goes into the layer's abstract.
    """
    rr, finish = _layer_style("paletted", band)
    palette = _sub(rr, "colorPalette")
    for value, colour, label in entries:
        hex_colour = "#" + "".join(f"{int(v):02x}" for v in colour[:3])
        _sub(palette, "paletteEntry", value=str(int(value)), color=hex_colour, alpha="255",
             label=label)
    return finish(title)
