"""Paired quality metrics between a translated raster and a reference raster.

``evaluate(PREDICTION, REFERENCE)`` scores the pixels valid in both rasters (and
inside an optional area of interest): per-band and overall RMSE, PSNR, SSIM and
pixel accuracy at a threshold. REFERENCE is resampled onto PREDICTION's grid
(through a ``WarpedVRT``) when the CRS, transform or size differ, so rasters of
different extents, resolutions or projections compare pixel for pixel.

Definitions (``x`` the prediction, ``y`` the reference, over the ``N`` valid pixels):

* ``RMSE_b = sqrt(mean((x_b - y_b)^2))``; overall RMSE over all bands and pixels.
* ``PSNR_b = 10 log10(L_b^2 / MSE_b)`` dB, infinite when the bands are identical;
  overall ``10 log10(1 / mean_b(MSE_b / L_b^2))``. ``L_b`` (the data range) is
  255 for 8-bit references, otherwise the reference band's valid range
  (max - min), unless ``data_range`` is given.
* SSIM (Wang, Bovik, Sheikh & Simoncelli 2004): local means, variances and
  covariance under an 11x11 Gaussian window (sigma 1.5, normalised to sum 1),
  ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, population (weighted) moments as in
  the paper's equations 14-16. Only pixels valid in both rasters enter the
  window: the weights are renormalised over the valid neighbours (normalised
  convolution), and pixels beyond the raster edge count as invalid. The SSIM map
  is averaged over the valid pixels; the overall SSIM is the mean of the bands'.
* Accuracy: the share of valid pixels whose largest band difference
  ``max_b |x_b - y_b|`` is below ``delta`` (5 on 8-bit data, the aerial->map
  measure of the CycleGAN literature); per band, the share with ``|x_b - y_b| < delta``.
  For other dtypes the default threshold is ``5 / 255 * L_b`` per band.

A pixel is valid in a raster unless all its selected bands equal the raster's
nodata value, any is NaN/infinite, or its mask/alpha says otherwise (the same
rule as :func:`geogan.rasterio_meta.read_valid`, shared by tile, mosaic and translate).

Baseline ``histogram-match``: each band of SOURCE (the raster that was
translated) is mapped to REFERENCE by matching cumulative histograms over the
evaluated pixels (exact for 8- and 16-bit integers, 65536 bins otherwise), rounded
to the reference dtype, and scored with the same metrics over the same pixels.
It is an optimistic classical baseline: it sees the reference's histogram. When
a baseline is asked for, pixels must also be valid in SOURCE, for both rows.

Memory: rasters are read block by block (``block_size`` pixels square plus a
5-pixel halo for SSIM), so memory stays at a few tens of MB per band whatever
the raster size; only per-band histograms (65536 bins) are kept between passes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geogan.errors import InputError, first_line
from geogan.progress import CancelCheck, ProgressCallback, check_cancel

log = logging.getLogger(__name__)

#: Resampling methods for putting REFERENCE (and SOURCE) onto PREDICTION's grid.
RESAMPLING: tuple[str, ...] = ("nearest", "bilinear", "cubic", "average")

#: Baselines scored beside the prediction: name -> what it is.
BASELINES: dict[str, str] = {
    "histogram-match": "per-band histogram matching of SOURCE to REFERENCE",
}

#: Accuracy threshold on 8-bit data (the aerial->map measure of the CycleGAN papers).
DEFAULT_DELTA_8BIT = 5.0
#: SSIM constants and Gaussian window of Wang et al. (2004).
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # an 11x11 window
#: Histogram bins for float or 32-bit data in the histogram-match baseline.
HIST_BINS = 65536

_EIGHT_BIT = ("uint8", "int8")


@dataclass(frozen=True)
class EvaluateConfig:
    """Options of :func:`evaluate`.

    ``bands``: 1-based bands compared (the same numbers in both rasters; all when
    ``None``). ``aoi``: a polygon vector file limiting the evaluated pixels.
    ``baseline``: a key of :data:`BASELINES`, which needs ``source``, the raster
    that was translated into PREDICTION. ``delta``: the accuracy threshold in
    raster units (default: 5 on 8-bit data, ``5/255 * L`` otherwise).
    ``data_range``: ``L`` of PSNR and SSIM (default: 255 on 8-bit data, the
    reference's valid range per band otherwise). ``resampling``: how REFERENCE
    and SOURCE are resampled when their grid differs from PREDICTION's.
    ``block_size``: pixels per side of the blocks read at a time.
    """

    bands: tuple[int, ...] | None = None
    aoi: Path | None = None
    baseline: str | None = None
    source: Path | None = None
    delta: float | None = None
    data_range: float | None = None
    resampling: str = "bilinear"
    block_size: int = 512

    def __post_init__(self) -> None:
        if self.bands is not None:
            if not self.bands:
                raise InputError("--bands is empty; give band numbers such as 1,2,3")
            if any(b < 1 for b in self.bands):
                raise InputError(f"--bands {_band_text(self.bands)}: band numbers start at 1")
            if len(set(self.bands)) != len(self.bands):
                raise InputError(f"--bands {_band_text(self.bands)} repeats a band; "
                                 "list each band once")
        if self.baseline is not None and self.baseline not in BASELINES:
            raise InputError(f"unknown --baseline {self.baseline!r}; choose one of "
                             f"{', '.join(BASELINES)}")
        if self.baseline is not None and self.source is None:
            raise InputError(f"--baseline {self.baseline} needs --source, the raster that was "
                             "translated into PREDICTION")
        if self.source is not None and self.baseline is None:
            raise InputError("--source is only used by a baseline; add --baseline "
                             "histogram-match or drop --source")
        if self.delta is not None and not self.delta > 0:
            raise InputError(f"--delta must be positive, got {self.delta}")
        if self.data_range is not None and not self.data_range > 0:
            raise InputError(f"--data-range must be positive, got {self.data_range}")
        if self.resampling not in RESAMPLING:
            raise InputError(f"unknown --resampling {self.resampling!r}; choose one of "
                             f"{', '.join(RESAMPLING)}")
        if self.block_size < 2 * SSIM_RADIUS + 1:
            raise InputError(f"block size must be at least {2 * SSIM_RADIUS + 1} pixels, "
                             f"got {self.block_size}")


@dataclass(frozen=True)
class BandScores:
    """Metrics of one band (``band`` is its 1-based number)."""

    band: int
    rmse: float
    psnr: float
    ssim: float
    accuracy: float


@dataclass(frozen=True)
class Scores:
    """Overall and per-band metrics of one candidate (the prediction or a baseline)."""

    name: str
    rmse: float
    psnr: float
    ssim: float
    accuracy: float
    bands: tuple[BandScores, ...]

    def to_json(self) -> dict[str, Any]:
        return {"rmse": self.rmse, "psnr": _finite_or_none(self.psnr), "ssim": self.ssim,
                "accuracy": self.accuracy,
                "bands": [{"band": b.band, "rmse": b.rmse, "psnr": _finite_or_none(b.psnr),
                           "ssim": b.ssim, "accuracy": b.accuracy} for b in self.bands]}


@dataclass(frozen=True)
class EvaluationReport:
    """What :func:`evaluate` measured; ``scores[0]`` is the prediction, then baselines."""

    prediction: str
    reference: str
    source: str | None
    aoi: str | None
    bands: tuple[int, ...]
    valid_pixels: int
    grid_pixels: int
    data_range: tuple[float, ...]
    delta: tuple[float, ...]
    reference_resampled: bool
    resampling: str
    scores: tuple[Scores, ...]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (PSNR is ``null`` where it is infinite: identical bands)."""
        return {
            "prediction": self.prediction, "reference": self.reference,
            "source": self.source, "aoi": self.aoi, "bands": list(self.bands),
            "valid_pixels": self.valid_pixels, "grid_pixels": self.grid_pixels,
            "data_range": list(self.data_range), "delta": list(self.delta),
            "reference_resampled": self.reference_resampled, "resampling": self.resampling,
            "ssim_window": {"type": "gaussian", "sigma": SSIM_SIGMA,
                            "size": 2 * SSIM_RADIUS + 1, "k1": SSIM_K1, "k2": SSIM_K2},
            "scores": {s.name: s.to_json() for s in self.scores},
        }

    def format_table(self) -> str:
        """A plain-text table: one 'all' row and one row per band for each candidate."""
        share = self.valid_pixels / self.grid_pixels if self.grid_pixels else 0.0
        how = (f"resampled onto the prediction grid, {self.resampling}"
               if self.reference_resampled else "same grid")
        delta = _number_text(self.delta)
        lines = [f"prediction:   {self.prediction}",
                 f"reference:    {self.reference} ({how})"]
        if self.source is not None:
            lines.append(f"source:       {self.source}")
        if self.aoi is not None:
            lines.append(f"aoi:          {self.aoi}")
        lines += [f"valid pixels: {self.valid_pixels:,} of {self.grid_pixels:,} "
                  f"({share:.1%}), bands {_band_text(self.bands)}",
                  f"data range:   {_number_text(self.data_range)}; accuracy: share of "
                  f"pixels whose largest band difference < {delta}", ""]
        name_w = max(len("candidate"), *(len(s.name) for s in self.scores))
        header = (f"{'candidate':<{name_w}}  {'band':>4}  {'RMSE':>10}  {'PSNR dB':>8}  "
                  f"{'SSIM':>7}  {'accuracy':>8}")
        lines += [header, "-" * len(header)]
        for s in self.scores:
            rows = [("all", s.rmse, s.psnr, s.ssim, s.accuracy)]
            if len(s.bands) > 1:
                rows += [(str(b.band), b.rmse, b.psnr, b.ssim, b.accuracy) for b in s.bands]
            for band, rmse, psnr, ssim, acc in rows:
                lines.append(f"{s.name:<{name_w}}  {band:>4}  {rmse:>10.4f}  "
                             f"{_psnr_text(psnr):>8}  {ssim:>7.4f}  {acc:>8.4f}")
        return "\n".join(lines)


def evaluate(prediction: str | os.PathLike[str], reference: str | os.PathLike[str],
             config: EvaluateConfig = EvaluateConfig(),
             progress: ProgressCallback | None = None,
             cancel: CancelCheck | None = None) -> EvaluationReport:
    """Score PREDICTION against REFERENCE (and a baseline if ``config`` asks for one).

    Raises :class:`~geogan.errors.InputError` for missing or unreadable files,
    rasters that do not overlap, band counts that differ without ``bands``, an
    unusable AOI, or no pixel valid in all inputs.
    """
    from geogan.rasterio_io import check_readable, open_raster

    with contextlib.ExitStack() as stack:
        pred = stack.enter_context(open_raster(prediction))
        ref_ds = stack.enter_context(open_raster(reference))
        src_ds = (stack.enter_context(open_raster(config.source))
                  if config.source is not None else None)
        for ds in (pred, ref_ds, src_ds):
            if ds is not None:
                check_readable(ds)
        grid_pixels = pred.width * pred.height
        bands = _check_bands(pred, ref_ds, src_ds, config.bands)
        _check_overlap(pred, ref_ds, "REFERENCE")
        ref = _OnGrid(ref_ds, pred, config.resampling, stack)
        src = None
        if src_ds is not None:
            _check_overlap(pred, src_ds, "--source")
            src = _OnGrid(src_ds, pred, config.resampling, stack)
        aoi = _load_aoi(Path(config.aoi), pred) if config.aoi is not None else None
        if ref.resampled:
            log.info("resampling %s onto the grid of %s (%s)", reference, prediction,
                     config.resampling)
        sources = _Inputs(_OnGrid(pred, pred, config.resampling, stack), ref, src, aoi, bands)

        blocks = list(_blocks(pred.width, pred.height, config.block_size))
        passes = 3 if src is not None else 2
        tick = _Ticker(progress, cancel, len(blocks) * passes)

        scan = _scan(sources, blocks, tick)
        if scan.count == 0:
            raise InputError(_no_valid_message(prediction, reference, config))
        data_range = _data_range(config, ref_ds.dtypes[0], scan)
        delta = _delta(config, ref_ds.dtypes[0], data_range)
        matcher = _histogram_matcher(sources, blocks, tick, scan, ref_ds.dtypes[0],
                                     src_ds.dtypes[0]) if src is not None else None
        sums = _score(sources, blocks, tick, data_range, delta, matcher)

    n = scan.count
    scores = [_finish(name, s, n, bands, data_range) for name, s in sums.items()]
    log.info("evaluated %d valid pixels of %s", n, prediction)
    return EvaluationReport(
        prediction=str(prediction), reference=str(reference),
        source=None if config.source is None else str(config.source),
        aoi=None if config.aoi is None else str(config.aoi), bands=bands,
        valid_pixels=n, grid_pixels=grid_pixels, data_range=data_range,
        delta=delta, reference_resampled=ref.resampled, resampling=config.resampling,
        scores=tuple(scores))


# --------------------------------------------------------------------------- reading

class _OnGrid:
    """A raster read on the prediction's grid: directly, or through a WarpedVRT."""

    def __init__(self, ds: Any, target: Any, resampling: str, stack: contextlib.ExitStack):
        self.nodata = ds.nodata
        self.resampled = not (ds.crs == target.crs and ds.width == target.width
                              and ds.height == target.height
                              and ds.transform.almost_equals(target.transform))
        if self.resampled:
            from rasterio.enums import Resampling
            from rasterio.vrt import WarpedVRT

            # Without nodata, an alpha band marks what lies outside the raster.
            self.ds = stack.enter_context(WarpedVRT(
                ds, crs=target.crs, transform=target.transform, width=target.width,
                height=target.height, resampling=Resampling[resampling],
                add_alpha=ds.nodata is None))
        else:
            self.ds = ds
        from geogan.rasterio_meta import has_mask

        self.use_masks = has_mask(self.ds)

    def read(self, window: Any, bands: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(values (C, h, w) as read, valid (h, w) bool)`` for ``window``."""
        from geogan.rasterio_meta import read_valid

        data = self.ds.read(list(bands), window=window)
        return data, read_valid(self.ds, bands, window, data, self.nodata, self.use_masks)


@dataclass
class _Inputs:
    pred: _OnGrid
    ref: _OnGrid
    src: _OnGrid | None
    aoi: list[Any] | None
    bands: tuple[int, ...]

    def read(self, window: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """Prediction, reference, source values and the pixels valid in all, for ``window``."""
        bands = self.bands
        x, valid = self.pred.read(window, bands)
        y, ref_valid = self.ref.read(window, bands)
        valid &= ref_valid
        s = None
        if self.src is not None:
            s, src_valid = self.src.read(window, bands)
            valid &= src_valid
        if self.aoi is not None:
            from rasterio import windows
            from rasterio.features import geometry_mask

            valid &= geometry_mask(self.aoi, out_shape=valid.shape, invert=True,
                                   transform=windows.transform(window, self.pred.ds.transform))
        return x, y, s, valid


class _Ticker:
    """Counts finished blocks for the progress callback and checks for cancellation."""

    def __init__(self, progress: ProgressCallback | None, cancel: CancelCheck | None,
                 total: int) -> None:
        self.progress, self.cancel, self.total, self.done = progress, cancel, total, 0

    def __call__(self, stage: str) -> None:
        check_cancel(self.cancel, "evaluation")
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total, stage=stage)


def _blocks(width: int, height: int, size: int) -> Iterator[Any]:
    from rasterio.windows import Window

    for row in range(0, height, size):
        for col in range(0, width, size):
            yield Window(col, row, min(size, width - col), min(size, height - row))


def _with_halo(window: Any, width: int, height: int, halo: int) -> tuple[Any, tuple[slice, ...]]:
    """``window`` grown by ``halo`` pixels (clipped to the raster) and the core's slices in it."""
    from rasterio.windows import Window

    c0 = max(int(window.col_off) - halo, 0)
    r0 = max(int(window.row_off) - halo, 0)
    c1 = min(int(window.col_off + window.width) + halo, width)
    r1 = min(int(window.row_off + window.height) + halo, height)
    dr, dc = int(window.row_off) - r0, int(window.col_off) - c0
    core = (slice(dr, dr + int(window.height)), slice(dc, dc + int(window.width)))
    return Window(c0, r0, c1 - c0, r1 - r0), core


# ------------------------------------------------------------------ checks and setup

def _check_bands(pred: Any, ref: Any, src: Any | None,
                 bands: tuple[int, ...] | None) -> tuple[int, ...]:
    if bands is None:
        if pred.count != ref.count:
            raise InputError(f"{pred.name} has {pred.count} bands but {ref.name} has "
                             f"{ref.count}; pass --bands to compare bands present in both")
        if src is not None and src.count != pred.count:
            raise InputError(f"--source {src.name} has {src.count} bands but {pred.name} has "
                             f"{pred.count}; pass --bands to compare bands present in all")
        return tuple(range(1, pred.count + 1))
    for ds, label in ((pred, "PREDICTION"), (ref, "REFERENCE"), (src, "--source")):
        if ds is not None and max(bands) > ds.count:
            raise InputError(f"--bands {_band_text(bands)} asks for band {max(bands)} but "
                             f"{label} {ds.name} has {ds.count}")
    return tuple(bands)


def _check_overlap(pred: Any, other: Any, label: str) -> None:
    from rasterio.warp import transform_bounds

    try:
        left, bottom, right, top = transform_bounds(other.crs, pred.crs, *other.bounds,
                                                    densify_pts=21)
    except Exception as exc:  # PROJ raises for areas that do not project
        raise InputError(f"cannot project the bounds of {label} {other.name} into the CRS of "
                         f"{pred.name} ({first_line(exc)}); reproject it first") from exc
    p = pred.bounds
    p_left, p_right = min(p.left, p.right), max(p.left, p.right)
    p_bottom, p_top = min(p.bottom, p.top), max(p.bottom, p.top)
    if not (left < p_right and right > p_left and bottom < p_top and top > p_bottom):
        raise InputError(f"{label} {other.name} does not overlap PREDICTION {pred.name}; "
                         "check that they cover the same area")


def _load_aoi(path: Path, pred: Any) -> list[Any]:
    """Polygons of the vector file ``path`` in the prediction's CRS."""
    import geopandas as gpd
    from shapely.geometry import box

    if not path.exists():
        raise InputError(f"--aoi {path} does not exist; check the path")
    try:
        frame = gpd.read_file(path)
    except Exception as exc:  # pyogrio/fiona raise their own types
        raise InputError(f"--aoi {path} is not a readable vector file "
                         f"({first_line(exc)}); "
                         "give a GeoPackage, GeoJSON or shapefile") from exc
    if frame.crs is None:
        log.warning("--aoi %s has no CRS; assuming the prediction's CRS", path)
    else:
        frame = frame.to_crs(pred.crs.to_wkt())
    geoms = [g for g in frame.geometry if g is not None and not g.is_empty]
    if not geoms:
        raise InputError(f"--aoi {path} holds no geometry; give a file with polygons")
    if any(g.geom_type not in ("Polygon", "MultiPolygon") for g in geoms):
        raise InputError(f"--aoi {path} holds non-polygon geometries; give polygons only")
    footprint = box(*pred.bounds)
    if not any(g.intersects(footprint) for g in geoms):
        raise InputError(f"--aoi {path} does not overlap PREDICTION {pred.name}")
    return geoms


def _no_valid_message(prediction: Any, reference: Any, config: EvaluateConfig) -> str:
    where = " inside --aoi" if config.aoi is not None else ""
    also = " and --source" if config.source is not None else ""
    return (f"no pixel is valid in both {prediction} and {reference}{also}{where}; "
            "check their nodata values and that they cover the same area")


@dataclass
class _Scan:
    count: int
    ref_min: np.ndarray
    ref_max: np.ndarray
    src_min: np.ndarray
    src_max: np.ndarray


def _scan(inputs: _Inputs, blocks: list[Any], tick: _Ticker) -> _Scan:
    """Count the valid pixels and take each band's valid range in REFERENCE and SOURCE."""
    nb = len(inputs.bands)
    scan = _Scan(0, np.full(nb, np.inf), np.full(nb, -np.inf), np.full(nb, np.inf),
                 np.full(nb, -np.inf))
    for window in blocks:
        _, y, s, valid = inputs.read(window)
        n = int(valid.sum())
        if n:
            scan.count += n
            yv = y[:, valid].astype(np.float64)
            scan.ref_min = np.minimum(scan.ref_min, yv.min(axis=1))
            scan.ref_max = np.maximum(scan.ref_max, yv.max(axis=1))
            if s is not None:
                sv = s[:, valid].astype(np.float64)
                scan.src_min = np.minimum(scan.src_min, sv.min(axis=1))
                scan.src_max = np.maximum(scan.src_max, sv.max(axis=1))
        tick("scan")
    return scan


def _data_range(config: EvaluateConfig, ref_dtype: str, scan: _Scan) -> tuple[float, ...]:
    nb = len(scan.ref_min)
    if config.data_range is not None:
        return (float(config.data_range),) * nb
    if ref_dtype in _EIGHT_BIT:
        return (255.0,) * nb
    span = scan.ref_max - scan.ref_min
    return tuple(float(v) if v > 0 else 1.0 for v in span)


def _delta(config: EvaluateConfig, ref_dtype: str,
           data_range: tuple[float, ...]) -> tuple[float, ...]:
    if config.delta is not None:
        return (float(config.delta),) * len(data_range)
    if ref_dtype in _EIGHT_BIT:
        return (DEFAULT_DELTA_8BIT,) * len(data_range)
    return tuple(DEFAULT_DELTA_8BIT / 255.0 * r for r in data_range)


# --------------------------------------------------------------- histogram matching

class _Quantizer:
    """Maps values of one band to histogram bins: exact for <=16-bit integers."""

    def __init__(self, dtype: str, lo: float, hi: float) -> None:
        dt = np.dtype(dtype)
        if dt.kind in "iu" and dt.itemsize <= 2:
            info = np.iinfo(dt)
            self.lo, self.step, self.bins = float(info.min), 1.0, int(info.max) - int(info.min) + 1
        else:
            self.lo, self.bins = float(lo), HIST_BINS
            self.step = (float(hi) - float(lo)) / (HIST_BINS - 1) if hi > lo else 1.0

    def index(self, values: np.ndarray) -> np.ndarray:
        q = np.rint((values.astype(np.float64) - self.lo) / self.step)
        return np.clip(np.nan_to_num(q, nan=0.0), 0, self.bins - 1).astype(np.int64)

    def values(self) -> np.ndarray:
        return self.lo + np.arange(self.bins, dtype=np.float64) * self.step


class _HistogramMatcher:
    """Per-band lookup tables from SOURCE bins to matched REFERENCE values."""

    def __init__(self, quantizers: list[_Quantizer], tables: list[np.ndarray],
                 ref_dtype: str) -> None:
        self.quantizers, self.tables, self.ref_dtype = quantizers, tables, np.dtype(ref_dtype)

    def apply(self, source: np.ndarray) -> np.ndarray:
        """Matched values ``(C, h, w)`` as float64, rounded/clipped to an integer reference."""
        out = np.empty(source.shape, dtype=np.float64)
        for b, (quant, table) in enumerate(zip(self.quantizers, self.tables, strict=True)):
            out[b] = table[quant.index(source[b])]
        if self.ref_dtype.kind in "iu":
            info = np.iinfo(self.ref_dtype)
            np.clip(np.rint(out), info.min, info.max, out=out)
        return out


def _histogram_matcher(inputs: _Inputs, blocks: list[Any], tick: _Ticker, scan: _Scan,
                       ref_dtype: str, src_dtype: str) -> _HistogramMatcher:
    """Histograms of SOURCE and REFERENCE over the valid pixels -> matching tables."""
    nb = len(inputs.bands)
    src_q = [_Quantizer(src_dtype, scan.src_min[b], scan.src_max[b]) for b in range(nb)]
    ref_q = [_Quantizer(ref_dtype, scan.ref_min[b], scan.ref_max[b]) for b in range(nb)]
    src_h = [np.zeros(q.bins, dtype=np.int64) for q in src_q]
    ref_h = [np.zeros(q.bins, dtype=np.int64) for q in ref_q]
    for window in blocks:
        _, y, s, valid = inputs.read(window)
        assert s is not None
        for b in range(nb):
            src_h[b] += np.bincount(src_q[b].index(s[b][valid]), minlength=src_q[b].bins)
            ref_h[b] += np.bincount(ref_q[b].index(y[b][valid]), minlength=ref_q[b].bins)
        tick("histograms")
    tables = []
    for b in range(nb):
        # skimage.exposure.match_histograms: interpolate the source quantiles into the
        # reference's quantile function, over the values present in each.
        s_present = src_h[b] > 0
        r_present = ref_h[b] > 0
        s_quant = np.cumsum(src_h[b][s_present]) / src_h[b].sum()
        r_quant = np.cumsum(ref_h[b][r_present]) / ref_h[b].sum()
        table = np.zeros(src_q[b].bins, dtype=np.float64)
        table[s_present] = np.interp(s_quant, r_quant, ref_q[b].values()[r_present])
        tables.append(table)
    return _HistogramMatcher(src_q, tables, ref_dtype)


# -------------------------------------------------------------------------- scoring

@dataclass
class _Sums:
    sse: np.ndarray  # (C,) sum of squared differences
    ssim: np.ndarray  # (C,) sum of SSIM over valid pixels
    hits: np.ndarray  # (C,) pixels with |difference| < delta per band
    hits_all: int = 0  # pixels with every band's |difference| < delta


def _score(inputs: _Inputs, blocks: list[Any], tick: _Ticker, data_range: tuple[float, ...],
           delta: tuple[float, ...], matcher: _HistogramMatcher | None) -> dict[str, _Sums]:
    nb = len(inputs.bands)
    names = ["prediction"] + (["histogram-match"] if matcher is not None else [])
    sums = {name: _Sums(np.zeros(nb), np.zeros(nb), np.zeros(nb, dtype=np.int64))
            for name in names}
    kernel = gaussian_kernel(SSIM_SIGMA, SSIM_RADIUS)
    delta_arr = np.asarray(delta, dtype=np.float64)[:, None]
    width, height = inputs.pred.ds.width, inputs.pred.ds.height
    for window in blocks:
        big, core = _with_halo(window, width, height, SSIM_RADIUS)
        x, y, s, valid = inputs.read(big)
        core_valid = valid[core]
        if core_valid.any():
            mask = valid.astype(np.float64)
            weight = filter2d(mask, kernel)  # (h, w) sum of window weights over valid pixels
            yf = y.astype(np.float64)
            candidates = {"prediction": x.astype(np.float64)}
            if matcher is not None:
                assert s is not None
                candidates["histogram-match"] = matcher.apply(s)
            for name, xf in candidates.items():
                acc = sums[name]
                diff = (xf[:, core[0], core[1]] - yf[:, core[0], core[1]])[:, core_valid]
                acc.sse += (diff * diff).sum(axis=1)
                close = np.abs(diff) < delta_arr  # (C, N)
                acc.hits += close.sum(axis=1)
                acc.hits_all += int(close.all(axis=0).sum())
                for b in range(nb):
                    smap = ssim_map(xf[b], yf[b], mask, weight, data_range[b], kernel)
                    acc.ssim[b] += smap[core][core_valid].sum()
        tick("metrics")
    return sums


def _finish(name: str, s: _Sums, n: int, bands: tuple[int, ...],
            data_range: tuple[float, ...]) -> Scores:
    mse = s.sse / n
    rng = np.asarray(data_range, dtype=np.float64)
    per_band = tuple(
        BandScores(band=band, rmse=float(math.sqrt(mse[i])), psnr=_psnr(mse[i] / rng[i] ** 2),
                   ssim=float(s.ssim[i] / n), accuracy=float(s.hits[i] / n))
        for i, band in enumerate(bands))
    return Scores(name=name, rmse=float(math.sqrt(mse.mean())),
                  psnr=_psnr(float((mse / rng ** 2).mean())),
                  ssim=float(np.mean(s.ssim / n)), accuracy=float(s.hits_all / n),
                  bands=per_band)


def _psnr(normalised_mse: float) -> float:
    return math.inf if normalised_mse <= 0 else float(-10.0 * math.log10(normalised_mse))


def gaussian_kernel(sigma: float = SSIM_SIGMA, radius: int = SSIM_RADIUS) -> np.ndarray:
    """A 1-D Gaussian of ``2 * radius + 1`` taps summing to 1 (SSIM window: its outer product)."""
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def filter2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable correlation of ``(h, w)`` with ``kernel`` on both axes; zero outside."""
    r = len(kernel) // 2
    h, w = image.shape
    padded = np.pad(image, r)
    rows = np.zeros((h, w + 2 * r), dtype=np.float64)
    for k, c in enumerate(kernel):
        rows += c * padded[k:k + h, :]
    out = np.zeros((h, w), dtype=np.float64)
    for k, c in enumerate(kernel):
        out += c * rows[:, k:k + w]
    return out


def ssim_map(x: np.ndarray, y: np.ndarray, mask: np.ndarray, weight: np.ndarray,
             data_range: float, kernel: np.ndarray) -> np.ndarray:
    """Local SSIM ``(h, w)`` of two bands, using only pixels where ``mask`` is 1.

    ``weight`` is ``filter2d(mask, kernel)``. Moments are Gaussian-weighted over
    the valid neighbours (renormalised); the map is meaningful where ``mask`` is 1.
    """
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    safe = np.where(weight > 0, weight, 1.0)
    mx, my = x * mask, y * mask
    mu_x = filter2d(mx, kernel) / safe
    mu_y = filter2d(my, kernel) / safe
    var_x = np.maximum(filter2d(mx * x, kernel) / safe - mu_x * mu_x, 0.0)
    var_y = np.maximum(filter2d(my * y, kernel) / safe - mu_y * mu_y, 0.0)
    cov = filter2d(mx * y, kernel) / safe - mu_x * mu_y
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return num / den


# -------------------------------------------------------------------------- helpers

def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _psnr_text(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.2f}"


def _band_text(bands: Sequence[int]) -> str:
    return ",".join(str(b) for b in bands)


def _number_text(values: Sequence[float]) -> str:
    if len(set(values)) == 1:
        return f"{values[0]:g}"
    return ", ".join(f"{v:g}" for v in values) + " (per band)"
