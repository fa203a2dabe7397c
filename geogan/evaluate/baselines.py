"""The ``histogram-match`` baseline: SOURCE mapped onto REFERENCE by matching histograms."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from geogan.evaluate.inputs import Inputs, Ticker
from geogan.evaluate.scan import Scan

#: Histogram bins for float or 32-bit data in the histogram-match baseline.
HIST_BINS = 65536


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


class HistogramMatcher:
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


def histogram_matcher(inputs: Inputs, blocks: Iterable[Any], tick: Ticker, scan: Scan,
                      ref_dtype: str, src_dtype: str) -> HistogramMatcher:
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
    return HistogramMatcher(src_q, tables, ref_dtype)
