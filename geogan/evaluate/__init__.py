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
* Spectral fidelity (:mod:`~geogan.evaluate.spectral`): per-band bias
  ``mean(x_b - y_b)``; SAM, the mean spectral angle
  ``arccos(<x, y> / (|x| |y|))`` in degrees; ERGAS
  ``= 100 * ratio * sqrt(mean_b (RMSE_b / mean_ref_b)^2)`` (ratio 1 on a shared grid);
  and, when the red and NIR bands are known (``red``/``nir``, else the colour
  interpretation), the RMSE and bias of NDVI ``(NIR - red) / (NIR + red)`` and the share
  of pixels whose NDVI differs by more than 0.1.
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
5-pixel halo for SSIM, smaller for rasters of many bands so that a block holds at most
:data:`geogan.limits.BLOCK_VALUES` values), so memory stays at a few tens of MB per band
whatever the raster size; the blocks are made as they are read, and only per-band
histograms (65536 bins) are kept between passes. ``error_map``: one more pass on
REFERENCE's grid writes the per-pixel errors (:mod:`~geogan.evaluate.errormap`).

The steps, one module each: :mod:`~geogan.evaluate.report` (options, scores, JSON and
text), :mod:`~geogan.evaluate.inputs` (the rasters on PREDICTION's grid, AOI, blocks),
:mod:`~geogan.evaluate.scan` (the first pass), :mod:`~geogan.evaluate.baselines` and
:mod:`~geogan.evaluate.scoring`; the SSIM and PSNR maths is :mod:`geogan.metrics`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from geogan.errors import InputError
from geogan.evaluate.baselines import histogram_matcher
from geogan.evaluate.classes import evaluate_classes, paletted_pair
from geogan.evaluate.errormap import check_error_map, error_map_tags, write_error_map
from geogan.evaluate.inputs import (
    Blocks,
    Inputs,
    OnGrid,
    Ticker,
    block_side,
    check_bands,
    check_overlap,
    load_aoi,
)
from geogan.evaluate.report import (
    BASELINES,
    RESAMPLING,
    BandScores,
    EvaluateConfig,
    EvaluationReport,
    NdviBands,
    NdviScores,
    Scores,
)
from geogan.evaluate.scan import data_range_for, delta_for, scan_inputs
from geogan.evaluate.scoring import finish_scores, score_sums
from geogan.evaluate.spectral import ergas_ratio, ndvi_bands
from geogan.metrics import SSIM_K1, SSIM_K2, SSIM_RADIUS, SSIM_SIGMA
from geogan.progress import CancelCheck, ProgressCallback

__all__ = [
    "BASELINES", "RESAMPLING", "SSIM_K1", "SSIM_K2", "SSIM_RADIUS", "SSIM_SIGMA", "BandScores",
    "EvaluateConfig", "EvaluationReport", "NdviBands", "NdviScores", "Scores", "evaluate",
]

log = logging.getLogger(__name__)


def evaluate(prediction: str | os.PathLike[str], reference: str | os.PathLike[str],
             config: EvaluateConfig = EvaluateConfig(),
             progress: ProgressCallback | None = None,
             cancel: CancelCheck | None = None) -> EvaluationReport:
    """Score PREDICTION against REFERENCE (and a baseline if ``config`` asks for one).

    When both are paletted rasters (a colour table, as ``translate --palette`` writes) the
    report is a :class:`~geogan.evaluate.classes.ClassReport`: per-class accuracy and the
    confusion matrix.

    Raises :class:`~geogan.errors.InputError` for missing or unreadable files, palette
    rasters or data types no other command takes either (complex, int64:
    :func:`geogan.rasterio_meta.check_pixels`), rasters that do not overlap, band counts
    that differ without ``bands``, an unusable AOI, a ``red``/``nir`` band not compared,
    or no pixel valid in all inputs; :class:`~geogan.errors.OutputError` for an
    ``error_map`` that exists (without ``overwrite``) or cannot be written.
    """
    if paletted_pair(prediction, reference):  # maps: per-class accuracy and confusion
        return evaluate_classes(prediction, reference, config.block_size)  # type: ignore[return-value]
    with contextlib.ExitStack() as stack:
        pred, ref_ds, src_ds, bands = _open_checked(stack, prediction, reference, config)
        grid_pixels = pred.width * pred.height
        nd_bands = ndvi_bands(pred, ref_ds, bands, config.red, config.nir)
        if not nd_bands.usable:
            log.info("NDVI skipped: %s", nd_bands.how)
        if config.error_map is not None:
            check_error_map(config.error_map, config.overwrite,
                            [p for p in (prediction, reference, config.source) if p])
        ref = OnGrid(ref_ds, pred, config.resampling, stack)
        src = None
        if src_ds is not None:
            check_overlap(pred, src_ds, "`source`")
            src = OnGrid(src_ds, pred, config.resampling, stack)
        aoi = load_aoi(Path(config.aoi), pred) if config.aoi is not None else None
        if ref.resampled:
            log.info("resampling %s onto the grid of %s (%s)", reference, prediction,
                     config.resampling)
        sources = Inputs(OnGrid(pred, pred, config.resampling, stack), ref, src, aoi, bands)

        side = block_side(config.block_size, len(bands))
        blocks = Blocks(pred.width, pred.height, side)
        passes = 3 if src is not None else 2
        map_blocks = (len(Blocks(ref_ds.width, ref_ds.height, side))
                      if config.error_map is not None else 0)
        tick = Ticker(progress, cancel, len(blocks) * passes + map_blocks)

        scan = scan_inputs(sources, blocks, tick)
        if scan.count == 0:
            raise InputError(_no_valid_message(prediction, reference, config))
        data_range = data_range_for(config, ref_ds.dtypes[0], scan)
        delta = delta_for(config, ref_ds.dtypes[0], data_range)
        matcher = histogram_matcher(sources, blocks, tick, scan, ref_ds.dtypes[0],
                                    src_ds.dtypes[0]) if src is not None else None
        ndvi_at = ((bands.index(nd_bands.red), bands.index(nd_bands.nir))
                   if nd_bands.red is not None and nd_bands.nir is not None else None)
        sums = score_sums(sources, blocks, tick, data_range, delta, matcher, ndvi_at)
        ratio = ergas_ratio(pred, ref_ds, ref.resampled)
        if config.error_map is not None:
            write_error_map(config.error_map, pred, ref_ds, bands,
                            Path(config.aoi) if config.aoi is not None else None,
                            config.resampling, config.overwrite, side,
                            error_map_tags(prediction, reference, pred), tick)

    n = scan.count
    scores = [finish_scores(name, s, n, bands, data_range, ratio) for name, s in sums.items()]
    log.info("evaluated %d valid pixels of %s", n, prediction)
    return EvaluationReport(
        prediction=str(prediction), reference=str(reference),
        source=None if config.source is None else str(config.source),
        aoi=None if config.aoi is None else str(config.aoi), bands=bands,
        valid_pixels=n, grid_pixels=grid_pixels, data_range=data_range,
        delta=delta, reference_resampled=ref.resampled, resampling=config.resampling,
        scores=tuple(scores), ndvi_bands=nd_bands, ergas_ratio=ratio,
        error_map=None if config.error_map is None else str(config.error_map))


def _open_checked(stack: contextlib.ExitStack, prediction: Any, reference: Any,
                  config: EvaluateConfig) -> tuple[Any, Any, Any, list[int]]:
    """PREDICTION, REFERENCE and ``config.source`` opened on ``stack`` and checked: readable,
    their ``bands`` of a data type every command takes, REFERENCE overlapping PREDICTION."""
    from geogan.rasterio_io import check_readable, open_raster
    from geogan.rasterio_meta import check_pixels

    pred = stack.enter_context(open_raster(prediction))
    ref_ds = stack.enter_context(open_raster(reference))
    src_ds = (stack.enter_context(open_raster(config.source))
              if config.source is not None else None)
    for ds in (pred, ref_ds, src_ds):
        if ds is not None:
            check_readable(ds)
    bands = check_bands(pred, ref_ds, src_ds, config.bands)
    for ds in (pred, ref_ds, src_ds):  # the data types every command takes
        if ds is not None:
            check_pixels(ds, ds.name, bands, "`bands`")
    check_overlap(pred, ref_ds, "REFERENCE")
    return pred, ref_ds, src_ds, bands


def _no_valid_message(prediction: Any, reference: Any, config: EvaluateConfig) -> str:
    where = " inside `aoi`" if config.aoi is not None else ""
    also = " and `source`" if config.source is not None else ""
    return (f"no pixel is valid in both {prediction} and {reference}{also}{where}; "
            "check their nodata values and that they cover the same area")
