"""Spectral fidelity, accumulated block by block: SAM, ERGAS, per-band bias and NDVI.

Definitions (``x`` the candidate, ``y`` the reference, over the ``N`` valid pixels; the
per-pixel maths is in :mod:`geogan.metrics`):

* bias per band: ``mean(x_b - y_b)``; overall, the mean of the bands' biases.
* SAM, the mean spectral angle in degrees: ``mean_i arccos(<x_i, y_i> / (|x_i| |y_i|))``
  over the pixels ``i`` where neither spectrum is all zeros (``sam_pixels``); 0 for
  identical rasters and for a raster against a scaled copy. Only with two bands or more.
* ERGAS (Wald 2000): ``100 * ratio * sqrt(mean_b (RMSE_b / mean_ref_b)^2)``, ``mean_ref_b``
  the reference band's mean over the valid pixels. ``ratio`` is 1 when the rasters share
  a grid; when REFERENCE is resampled, the prediction's pixel size over the reference's
  (:func:`ergas_ratio`, Wald's h/l).
* NDVI = ``(NIR - red) / (NIR + red)`` of each raster, over the valid pixels where
  ``NIR + red`` is not 0 in both: the RMSE and bias (candidate - reference) of the index
  and the share of pixels whose index differs by more than
  :data:`geogan.metrics.NDVI_CHANGE` (0.1).

Every figure is a sum carried from block to block (:class:`SpectralSums`), so memory
does not grow with the raster.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from geogan.errors import InputError
from geogan.evaluate.report import NdviBands, NdviScores, band_text
from geogan.metrics import NDVI_CHANGE, ergas, normalized_difference, spectral_angles


def ndvi_bands(pred: Any, ref: Any, bands: Sequence[int], red: int | None,
               nir: int | None) -> NdviBands:
    """The red and NIR bands, from ``red``/``nir`` or else the colour interpretation of
    REFERENCE, then PREDICTION; a skipped :class:`NdviBands` saying why when not found.

    Raises :class:`InputError` for a ``red``/``nir`` band that is not compared.
    """
    found: dict[str, tuple[int, str] | None] = {}
    for name, given in (("red", red), ("nir", nir)):
        if given is not None:
            if given not in bands:
                raise InputError(f"`{name}` band {given} is not among the bands compared "
                                 f"({band_text(bands)}); add it to `bands` or pick another")
            found[name] = (given, "given")
        else:
            found[name] = _by_colour(name, (("REFERENCE", ref), ("PREDICTION", pred)), bands)
    r, n = found["red"], found["nir"]
    if r is None or n is None:
        missing = " and ".join(w for w, f in (("red", r), ("NIR", n)) if f is None)
        return NdviBands(r[0] if r else None, n[0] if n else None,
                         f"no compared band is marked {missing} in the colour interpretation "
                         "of REFERENCE or PREDICTION; pass `red` and `nir`")
    if r[0] == n[0]:
        raise InputError(f"`red` and `nir` are both band {r[0]}; give two bands")
    how = (f"red {r[1]}, NIR {n[1]}" if r[1] != n[1] else r[1])
    return NdviBands(r[0], n[0], how)


def _by_colour(name: str, rasters: Sequence[tuple[str, Any]],
               bands: Sequence[int]) -> tuple[int, str] | None:
    """The one compared band the first raster that marks any marks as colour ``name``."""
    for label, ds in rasters:
        marked = [b for b in bands if ds.colorinterp[b - 1].name == name]
        if len(marked) == 1:
            return marked[0], f"from the colour interpretation of {label}"
    return None


def ergas_ratio(pred: Any, ref: Any, resampled: bool) -> float:
    """Wald's h/l: 1 on a shared grid, else PREDICTION's pixel size over REFERENCE's
    (the reference's bounds projected into the prediction's CRS, over its pixel count)."""
    if not resampled:
        return 1.0
    from rasterio.warp import transform_bounds

    left, bottom, right, top = transform_bounds(ref.crs, pred.crs, *ref.bounds)
    ref_size = math.sqrt(abs((right - left) * (top - bottom)) / (ref.width * ref.height))
    pred_size = math.sqrt(abs(pred.transform.a * pred.transform.e
                              - pred.transform.b * pred.transform.d))
    return pred_size / ref_size if ref_size > 0 else 1.0


class SpectralSums:
    """Sums over the valid pixels of one candidate for bias, SAM, ERGAS and NDVI."""

    def __init__(self, nb: int, ndvi: tuple[int, int] | None) -> None:
        self.diff = np.zeros(nb)        # sum of x - y per band
        self.ref = np.zeros(nb)         # sum of y per band
        self.angle = 0.0                # sum of spectral angles (degrees)
        self.angle_n = 0
        self.ndvi_at = ndvi             # (red, nir) positions in the compared bands
        self.nd = np.zeros(3)           # sums of d, d^2 and |d| > NDVI_CHANGE
        self.nd_n = 0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add the valid pixels ``x``, ``y`` (``(C, N)`` float64) of one block."""
        self.diff += (x - y).sum(axis=1)
        self.ref += y.sum(axis=1)
        if x.shape[0] > 1:
            angles, defined = spectral_angles(x, y)
            self.angle += float(angles[defined].sum())
            self.angle_n += int(defined.sum())
        if self.ndvi_at is not None:
            r, n = self.ndvi_at
            nx, dx = normalized_difference(x[r], x[n])
            ny, dy = normalized_difference(y[r], y[n])
            d = (nx - ny)[dx & dy]
            self.nd += (d.sum(), (d * d).sum(), float((np.abs(d) > NDVI_CHANGE).sum()))
            self.nd_n += d.size

    def finish(self, n: int, mse: np.ndarray, ratio: float) -> dict[str, Any]:
        """``bias`` per band and the :class:`~geogan.evaluate.report.Scores` fields."""
        bias = self.diff / n
        sam = (self.angle / self.angle_n if self.angle_n else None) if len(bias) > 1 else None
        ndvi = None
        if self.ndvi_at is not None and self.nd_n:
            m = self.nd_n
            ndvi = NdviScores(rmse=math.sqrt(self.nd[1] / m), bias=float(self.nd[0] / m),
                              changed=float(self.nd[2] / m), pixels=m)
        return {"band_bias": bias, "bias": float(bias.mean()), "sam": sam,
                "sam_pixels": self.angle_n,
                "ergas": ergas(np.sqrt(mse), self.ref / n, ratio), "ndvi": ndvi}
