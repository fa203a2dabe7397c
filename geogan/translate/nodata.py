"""The output's nodata: which value it is, and stamping it where the input is nodata."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from geogan.normalize import BandNorm


def output_nodata(src_nodata: float | None, out_norm: BandNorm) -> float | None:
    """Nodata value of the output: None when the input has none, else one the dtype holds.

    The target domain's nodata is preferred, then the input's, then 0 / the
    dtype's minimum for integers and NaN for floats.
    """
    if src_nodata is None:
        return None
    dtype = np.dtype(out_norm.dtype)
    for candidate in (out_norm.nodata, src_nodata):
        if candidate is not None and _fits(float(candidate), dtype):
            return float(candidate)
    if np.issubdtype(dtype, np.floating):
        return float("nan")
    return float(np.iinfo(dtype).min)


def _fits(value: float, dtype: np.dtype) -> bool:
    if np.issubdtype(dtype, np.floating):
        return True
    if not math.isfinite(value) or value != int(value):
        return False
    info = np.iinfo(dtype)
    return info.min <= value <= info.max


def apply_nodata(rows: np.ndarray, mask: np.ndarray | None, nodata: float | None) -> np.ndarray:
    """Output nodata where the input is nodata; nudge valid values off the nodata value.

    GDAL reads nodata band by band (``gdalinfo -stats``, per-band masks, QGIS), so a valid
    pixel whose value equals nodata in any one band would read as a hole in that band.
    Like GDAL's warper, each such value is nudged to the nearest value that is not nodata
    (nodata + 1 for integers, or - 1 at the dtype's maximum; the next float up).
    """
    if nodata is None:
        return rows
    if not math.isnan(nodata):
        value = rows.dtype.type(nodata)
        nudged = _nudge(nodata, rows.dtype)
        for band in rows:  # (H, W) views: edited in place
            clash = band == value
            if mask is not None:
                clash &= mask
            if clash.any():
                band[clash] = nudged
    if mask is not None:
        rows[:, ~mask] = nodata
    return rows


def _nudge(nodata: float, dtype: np.dtype) -> Any:
    """The nearest value to ``nodata`` that is not ``nodata``, in ``dtype``."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return dtype.type(nodata + 1 if nodata < info.max else nodata - 1)
    return np.nextafter(dtype.type(nodata), dtype.type(np.inf))


def given_nodata(value: float, out_norm: BandNorm) -> float:
    """The ``nodata`` VALUE a user gave for the output, checked against its dtype."""
    from geogan.errors import InputError

    dtype = np.dtype(out_norm.dtype)
    if not _fits(float(value), dtype):
        hint = (f"a whole number from {np.iinfo(dtype).min} to {np.iinfo(dtype).max}"
                if np.issubdtype(dtype, np.integer) else "a number")
        raise InputError(f"`nodata` {value:g} does not fit the output's {dtype} pixels; "
                         f"choose {hint}")
    return float(value)
