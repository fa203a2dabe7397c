"""Ground resolution: the metres on the ground one pixel spans, whatever the CRS.

A model learns shapes at one ground resolution: fields, roads and roofs of so many
pixels. Training records, per domain, the ground sampling distance (GSD) of the data
it learned from and its CRS (:class:`DomainGround`, in the checkpoint's ``domains``);
``geogan translate`` compares an input's GSD with the source domain's
(:func:`ratio_warning`) and can translate at the model's resolution
(``--at-model-resolution``, :mod:`geogan.translate.resolution`).

The GSD is measured on the ellipsoid at the raster's centre (:func:`ground_resolution`):
one pixel step along each grid axis, converted to longitude and latitude and measured
on the ellipsoid, the geometric mean of the two. So a geographic CRS (degrees) gets a
figure in metres, and a projected one its true ground figure (Web Mercator's nominal
metres are not ground metres away from the equator).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: Ratios of an input's GSD to the model's within which translate says nothing.
RATIO_RANGE = (0.8, 1.25)
#: Rasters of one training domain whose GSDs differ by more than this are warned about.
SPREAD_LIMIT = 1.25


#: WGS84's semi-major axis (m) and first eccentricity squared.
_A, _E2 = 6378137.0, 6.69437999014e-3


def ground_resolution(crs: Any, transform: Any, width: int, height: int) -> float | None:
    """Metres per pixel at the centre of a ``width`` x ``height`` grid; None without a CRS.

    The centre pixel's two steps are projected to longitude and latitude by GDAL (not
    pyproj, whose own PROJ clashes with QGIS's inside QGIS) and measured on the WGS84
    ellipsoid with its local radii of curvature (exact for steps this small).
    """
    if crs is None or transform is None:
        return None
    from rasterio.warp import transform as to_lonlat

    t = transform
    cols, rows = (width / 2.0, width / 2.0 + 1, width / 2.0), (height / 2.0,) * 2 + (
        height / 2.0 + 1,)
    xs = [t.a * c + t.b * r + t.c for c, r in zip(cols, rows, strict=True)]
    ys = [t.d * c + t.e * r + t.f for c, r in zip(cols, rows, strict=True)]
    try:
        lons, lats = to_lonlat(crs, "EPSG:4326", xs, ys)
    except Exception as exc:  # GDAL/PROJ raise several types for CRSs they cannot handle
        log.debug("no ground resolution for CRS %s: %s", crs, exc)
        return None
    if not all(map(math.isfinite, [*lons, *lats])):
        return None
    steps = [_metres(lons[0], lats[0], lons[k], lats[k]) for k in (1, 2)]
    gsd = math.sqrt(steps[0] * steps[1])
    return gsd if math.isfinite(gsd) and gsd > 0 else None


def _metres(lon0: float, lat0: float, lon1: float, lat1: float) -> float:
    """Ground distance of a small step on the WGS84 ellipsoid (local radii of curvature)."""
    phi = math.radians((lat0 + lat1) / 2.0)
    w = 1.0 - _E2 * math.sin(phi) ** 2
    meridian = _A * (1.0 - _E2) / w ** 1.5  # north-south radius
    normal = _A / math.sqrt(w)  # east-west radius (of the parallel: times cos(phi))
    dlon = math.radians((lon1 - lon0 + 180.0) % 360.0 - 180.0)
    dlat = math.radians(lat1 - lat0)
    return math.hypot(normal * math.cos(phi) * dlon, meridian * dlat)


def dataset_resolution(src: Any) -> float | None:
    """:func:`ground_resolution` of an open rasterio dataset (or a view with the same fields)."""
    return ground_resolution(src.crs, src.transform, src.width, src.height)


def crs_label(crs: Any) -> str | None:
    """``EPSG:26914`` where the CRS has an EPSG code, else its WKT; None without a CRS."""
    if crs is None:
        return None
    try:
        epsg = crs.to_epsg()
    except Exception:  # noqa: BLE001 - PROJ's lookups raise several types
        epsg = None
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def format_gsd(metres: float | None) -> str:
    """``5.0`` -> ``"5 m"``, ``0.6`` -> ``"0.6 m"``, ``30.12`` -> ``"30.1 m"``."""
    if metres is None:
        return "unknown"
    return f"{metres:.3g} m"


@dataclass(frozen=True)
class DomainGround:
    """The ground resolution (m/px) and CRS of the data one domain was trained on."""

    gsd_m: float | None = None
    crs: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"gsd_m": None if self.gsd_m is None else round(self.gsd_m, 6), "crs": self.crs}


def domain_ground(grids: Sequence[tuple[Any, Any, int, int]], names: Sequence[str],
                  option: str,
                  fix: str = "pass `res` to read them all at one pixel size") -> DomainGround:
    """The median GSD and the commonest CRS of a domain's rasters ``(crs, transform, w, h)``.

    Logs one warning when the rasters' GSDs differ by more than :data:`SPREAD_LIMIT`
    times, ending with ``fix`` (what brings them to one pixel size).
    """
    found = [(ground_resolution(*g), crs_label(g[0]), n)
             for g, n in zip(grids, names, strict=True)]
    gsds = sorted((g, n) for g, _, n in found if g is not None)
    crss = Counter(c for _, c, _ in found if c is not None)
    if not gsds:
        return DomainGround(None, crss.most_common(1)[0][0] if crss else None)
    (low, low_name), (high, high_name) = gsds[0], gsds[-1]
    if high / low > SPREAD_LIMIT:
        log.warning("rasters of %s differ in ground resolution: %s is %s per pixel, %s %s "
                    "(%.3g times); %s", option,
                    low_name, format_gsd(low), high_name, format_gsd(high), high / low, fix)
    median = gsds[len(gsds) // 2][0] if len(gsds) % 2 else \
        (gsds[len(gsds) // 2 - 1][0] + gsds[len(gsds) // 2][0]) / 2
    return DomainGround(median, crss.most_common(1)[0][0] if crss else None)


def ratio(input_gsd: float | None, model_gsd: float | None) -> float | None:
    """``input_gsd / model_gsd``, None when either is unknown."""
    if not input_gsd or not model_gsd:
        return None
    return input_gsd / model_gsd


def ratio_warning(name: str, input_gsd: float | None, model_gsd: float | None,
                  domain: str, fix: str = "`at_model_resolution`") -> str | None:
    """One line when the input's GSD is outside :data:`RATIO_RANGE` of the model's; else None."""
    r = ratio(input_gsd, model_gsd)
    if r is None or RATIO_RANGE[0] <= r <= RATIO_RANGE[1]:
        return None
    scale = f"{1 / r:.3g} times larger" if r < 1 else f"{r:.3g} times smaller"
    return (f"{name} has {format_gsd(input_gsd)} pixels but the model learned {domain} at "
            f"{format_gsd(model_gsd)} per pixel: everything on the ground is {scale} in "
            f"pixels than the model has seen; pass {fix} to translate at "
            f"{format_gsd(model_gsd)} and resample back onto the input's grid")
