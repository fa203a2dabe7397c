"""What a checkpoint or a raster is, and whether a raster fits a checkpoint (``geogan info``).

Reading a checkpoint needs only its safetensors header (no weights, no torch model);
reading a raster only its header and mask flags. Both return plain dictionaries that
the CLI prints as text or JSON.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geogan.contract.checkpoint import DomainMeta
from geogan.contract.choices import NORM_MODES
from geogan.contract.names import RUN_CHECKPOINT_NAME
from geogan.errors import CheckpointError, GeoganError, InputError

log = logging.getLogger(__name__)

#: Architectures whose generators use instance normalisation.
_INSTANCE_NORM_ARCHES = ("resnet", "unet")
#: Short names of the CRS units GDAL/PROJ name in full.
_UNIT_NAMES = {"metre": "m", "meter": "m", "kilometre": "km", "foot": "ft",
               "US survey foot": "US ft", "degree": "degrees", "radian": "radians"}


def is_checkpoint(path: str | os.PathLike[str]) -> bool:
    """True for a ``.safetensors``/``.json`` checkpoint or a run folder holding one."""
    p = Path(path)
    if p.is_dir():
        return (p / RUN_CHECKPOINT_NAME).is_file()
    return p.suffix in (".safetensors",) or (p.suffix == ".json"
                                             and p.with_suffix(".safetensors").is_file())


def describe_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Model, generators (bands, dtype, normalisation of each side), training figures."""
    from geogan.checkpoint import read_checkpoint_meta, resolve_checkpoint_path

    p = resolve_checkpoint_path(path)
    meta = read_checkpoint_meta(p)
    generators = {}
    for direction, gen in sorted(meta.generators.items()):
        src, dst = meta.sides(direction)
        generators[direction] = {
            "arch": gen.arch, "kwargs": gen.kwargs, "input": _side(src), "output": _side(dst),
            "norm_modes": norm_modes(gen.arch, gen.kwargs)}
    return {
        "kind": "checkpoint", "path": str(p), "model": meta.model,
        "generators": generators, "chip_size": meta.chip_size,
        "size_multiple": meta.size_multiple, "step": meta.step,
        "epoch": meta.epoch, "total_steps": meta.total_steps,
        "geogan_version": meta.geogan_version or None,
        "format_version": meta.format_version,
        "inference_only": meta.inference_only,
        "size_bytes": p.stat().st_size,
        "ground": {key: {"name": d.name, "gsd_m": d.gsd_m, "crs": d.crs}
                   for key, d in sorted(meta.domains.items())},
    }


def norm_modes(arch: str, kwargs: dict[str, Any]) -> list[str]:
    """Normalisation-statistics modes ``geogan translate --norm`` offers for a generator."""
    if kwargs.get("norm", "instance") != "instance":
        return ["window"]
    try:  # what the generator itself holds (geogan.models.protocol), when torch is there
        from geogan.models import takes_stats
    except ImportError:
        return list(NORM_MODES) if arch.startswith(_INSTANCE_NORM_ARCHES) else ["window"]
    return list(NORM_MODES) if takes_stats(arch, kwargs) else ["window"]


def _side(domain: DomainMeta) -> dict[str, Any]:
    norm = domain.norm
    return {"name": domain.name, "bands": norm.get("bands", len(norm.get("lo", []))),
            "dtype": norm.get("dtype"), "nodata": norm.get("nodata"),
            "lo": norm.get("lo"), "hi": norm.get("hi"),
            "gsd_m": domain.gsd_m, "crs": domain.crs,  # None: not recorded (older geogan)
            "palette": domain.palette}  # a map domain's colours (geogan.palette), else None


def describe_raster(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Grid, bands, dtype, nodata, masks and band meaning of a raster; its ground
    resolution (``gsd_m``, m/px); whether geogan generated it (``synthetic``) and how
    (``provenance``, see :mod:`geogan.provenance`)."""
    from rasterio.errors import RasterioIOError

    from geogan.ground import dataset_resolution
    from geogan.provenance import read_provenance
    from geogan.rasterio_io import open_raster
    from geogan.rasterio_meta import alpha_band, data_bands

    try:
        src = open_raster(path, allow_no_crs=True, limits=False)  # describing reads no pixel
    except GeoganError:
        raise
    except RasterioIOError as exc:  # pragma: no cover - open_raster wraps these
        raise InputError(f"{path} is not a readable raster ({exc})") from exc
    with src:
        t = src.transform
        crs = src.crs
        epsg = crs.to_epsg() if crs is not None else None
        provenance = read_provenance(src)
        return {
            "kind": "raster", "path": str(path), "driver": src.driver,
            "width": src.width, "height": src.height, "count": src.count,
            "dtypes": list(src.dtypes),
            "crs": (f"EPSG:{epsg}" if epsg else crs.to_string()) if crs is not None else None,
            "geographic": bool(crs.is_geographic) if crs is not None else None,
            "transform": [t.a, t.b, t.c, t.d, t.e, t.f],
            "bounds": list(src.bounds), "res": list(src.res),
            "units": crs_units(crs)[0] if crs is not None else None,
            "pixel_size_m": ground_pixel_size(src.res, crs, src.bounds),
            "nodata": src.nodata,
            "colorinterp": [ci.name for ci in src.colorinterp],
            "descriptions": list(src.descriptions),
            "mask_flags": [sorted(f.name for f in flags) for flags in src.mask_flag_enums],
            "alpha_band": alpha_band(src), "data_bands": list(data_bands(src)),
            "block_shapes": [list(b) for b in src.block_shapes],
            "overviews": len(src.overviews(1)) if src.count else 0,
            "gsd_m": dataset_resolution(src),
            "synthetic": provenance is not None,
            "provenance": provenance.to_json() if provenance is not None else None,
        }


def crs_units(crs: Any) -> tuple[str, float | None]:
    """The short name of ``crs``'s units (``m``, ``US ft``, ``degrees``) and metres per unit
    (None for angular units)."""
    name, factor = crs.units_factor
    short = _UNIT_NAMES.get(name, name)
    if crs.is_geographic:
        return short, None
    return short, float(factor)


def ground_pixel_size(res: tuple[float, float], crs: Any,
                      bounds: Any) -> list[float] | None:
    """A pixel's width and height on the ground in metres (None without a CRS).

    Exact for projected CRSs; for geographic ones, on the WGS84 ellipsoid at the
    raster's central latitude (an approximation for other ellipsoids).
    """
    if crs is None:
        return None
    _, factor = crs_units(crs)
    if factor is not None:
        return [res[0] * factor, res[1] * factor]
    if crs.units_factor[0] != "degree":
        return None
    lat = math.radians(max(-90.0, min(90.0, (bounds[1] + bounds[3]) / 2)))
    # metres per degree of latitude and of longitude on WGS84 at ``lat``
    per_lat = 111132.954 - 559.822 * math.cos(2 * lat) + 1.175 * math.cos(4 * lat)
    per_lon = 111412.84 * math.cos(lat) - 93.5 * math.cos(3 * lat) + 0.118 * math.cos(5 * lat)
    return [res[0] * per_lon, res[1] * per_lat]


@dataclass(frozen=True)
class _Side:
    """What :func:`geogan.translate.select_input_bands` needs of a generator."""

    in_norm: Any
    direction: str


def check_fit(raster: str | os.PathLike[str], checkpoint: str | os.PathLike[str],
              direction: str = "a2b", bands: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Whether ``raster`` can be translated with ``checkpoint``: ``fits``, ``bands``, ``reason``.

    ``bands`` is the bands value to pass (``None`` when the default bands fit) and
    ``option`` the same as a parameter (```bands` 1,2,3``); ``reason`` and ``option``
    name parameters as messages do (:mod:`geogan.contract.messages`).
    """
    from geogan.checkpoint import read_checkpoint_meta
    from geogan.normalize import BandNorm
    from geogan.rasterio_io import open_raster
    from geogan.rasterio_meta import data_bands
    from geogan.translate import select_input_bands

    meta = read_checkpoint_meta(checkpoint)
    if direction not in meta.generators:
        raise CheckpointError(f"checkpoint {checkpoint} has no '{direction}' generator")
    side = _Side(BandNorm.from_json(meta.sides(direction)[0].norm), direction)
    with open_raster(raster, allow_no_crs=True) as src:
        count, dtypes, default = src.count, list(src.dtypes), data_bands(src)
        georef = src.crs is not None
    try:
        chosen = select_input_bands(count, dtypes, Path(raster), side,  # type: ignore[arg-type]
                                    bands, default)
    except InputError as exc:
        want = side.in_norm.bands
        suggestion = None
        if bands is None and len(default) > want \
                and {str(dtypes[b - 1]) for b in default[:want]} == {side.in_norm.dtype}:
            suggestion = ",".join(str(b) for b in default[:want])
        return {"fits": False, "reason": exc.template,
                "bands": suggestion, "option": f"`bands` {suggestion}" if suggestion else None,
                "georeferenced": georef}
    text = ",".join(str(b) for b in chosen)
    return {"fits": True, "reason": None, "bands": text,
            "option": f"`bands` {text}" if bands else None, "georeferenced": georef}
