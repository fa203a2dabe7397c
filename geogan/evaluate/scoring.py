"""The scoring pass: per-band sums of squared errors, SSIM, hits and the spectral sums
(:mod:`~geogan.evaluate.spectral`), then the scores they give."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from geogan.evaluate.baselines import HistogramMatcher
from geogan.evaluate.inputs import Inputs, Ticker, with_halo
from geogan.evaluate.report import BandScores, Scores
from geogan.evaluate.spectral import SpectralSums
from geogan.metrics import SSIM_RADIUS, SSIM_SIGMA, filter2d, gaussian_kernel, psnr, ssim_map


@dataclass
class _Sums:
    sse: np.ndarray  # (C,) sum of squared differences
    ssim: np.ndarray  # (C,) sum of SSIM over valid pixels
    hits: np.ndarray  # (C,) pixels with |difference| < delta per band
    spectral: SpectralSums  # bias, SAM, ERGAS and NDVI sums
    hits_all: int = 0  # pixels with every band's |difference| < delta


def score_sums(inputs: Inputs, blocks: Iterable[Any], tick: Ticker, data_range: tuple[float, ...],
               delta: tuple[float, ...], matcher: HistogramMatcher | None,
               ndvi: tuple[int, int] | None = None) -> dict[str, _Sums]:
    """The scoring pass: per-candidate sums over the valid pixels, block by block.

    ``ndvi``: the positions of the red and NIR bands among the compared bands, or None.
    """
    nb = len(inputs.bands)
    names = ["prediction"] + (["histogram-match"] if matcher is not None else [])
    sums = {name: _Sums(np.zeros(nb), np.zeros(nb), np.zeros(nb, dtype=np.int64),
                        SpectralSums(nb, ndvi)) for name in names}
    kernel = gaussian_kernel(SSIM_SIGMA, SSIM_RADIUS)
    delta_arr = np.asarray(delta, dtype=np.float64)[:, None]
    width, height = inputs.pred.ds.width, inputs.pred.ds.height
    for window in blocks:
        big, core = with_halo(window, width, height, SSIM_RADIUS)
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
            yv = yf[:, core[0], core[1]][:, core_valid]
            for name, xf in candidates.items():
                acc = sums[name]
                xv = xf[:, core[0], core[1]][:, core_valid]
                acc.spectral.add(xv, yv)
                diff = xv - yv
                acc.sse += (diff * diff).sum(axis=1)
                close = np.abs(diff) < delta_arr  # (C, N)
                acc.hits += close.sum(axis=1)
                acc.hits_all += int(close.all(axis=0).sum())
                for b in range(nb):
                    smap = ssim_map(xf[b], yf[b], mask, weight, data_range[b], kernel)
                    acc.ssim[b] += smap[core][core_valid].sum()
        tick("metrics")
    return sums


def finish_scores(name: str, s: _Sums, n: int, bands: tuple[int, ...],
                  data_range: tuple[float, ...], ergas_ratio: float = 1.0) -> Scores:
    """A candidate's overall and per-band scores from its sums over ``n`` pixels."""
    mse = s.sse / n
    rng = np.asarray(data_range, dtype=np.float64)
    spectral = s.spectral.finish(n, mse, ergas_ratio)
    bias = spectral.pop("band_bias")
    per_band = tuple(
        BandScores(band=band, rmse=float(math.sqrt(mse[i])), psnr=psnr(mse[i] / rng[i] ** 2),
                   ssim=float(s.ssim[i] / n), accuracy=float(s.hits[i] / n),
                   bias=float(bias[i]))
        for i, band in enumerate(bands))
    return Scores(name=name, rmse=float(math.sqrt(mse.mean())),
                  psnr=psnr(float((mse / rng ** 2).mean())),
                  ssim=float(np.mean(s.ssim / n)), accuracy=float(s.hits_all / n),
                  bands=per_band, **spectral)
