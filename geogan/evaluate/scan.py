"""The first pass: valid pixels and value ranges, and the PSNR/SSIM range and accuracy threshold."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from geogan.evaluate.inputs import Inputs, Ticker
from geogan.evaluate.report import EvaluateConfig

#: Accuracy threshold on 8-bit data (the aerial->map measure of the CycleGAN papers).
DEFAULT_DELTA_8BIT = 5.0

_EIGHT_BIT = ("uint8", "int8")


@dataclass
class Scan:
    """What the first pass found: the valid pixel count, per-band REFERENCE/SOURCE ranges."""

    count: int
    ref_min: np.ndarray
    ref_max: np.ndarray
    src_min: np.ndarray
    src_max: np.ndarray


def scan_inputs(inputs: Inputs, blocks: Iterable[Any], tick: Ticker) -> Scan:
    """Count the valid pixels and take each band's valid range in REFERENCE and SOURCE."""
    nb = len(inputs.bands)
    scan = Scan(0, np.full(nb, np.inf), np.full(nb, -np.inf), np.full(nb, np.inf),
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


def data_range_for(config: EvaluateConfig, ref_dtype: str, scan: Scan) -> tuple[float, ...]:
    """``L`` per band: ``--data-range``, else 255 on 8-bit data, else the valid range."""
    nb = len(scan.ref_min)
    if config.data_range is not None:
        return (float(config.data_range),) * nb
    if ref_dtype in _EIGHT_BIT:
        return (255.0,) * nb
    span = scan.ref_max - scan.ref_min
    return tuple(float(v) if v > 0 else 1.0 for v in span)


def delta_for(config: EvaluateConfig, ref_dtype: str,
              data_range: tuple[float, ...]) -> tuple[float, ...]:
    """The accuracy threshold per band: ``--delta``, else 5 on 8-bit data, else ``5/255 L``."""
    if config.delta is not None:
        return (float(config.delta),) * len(data_range)
    if ref_dtype in _EIGHT_BIT:
        return (DEFAULT_DELTA_8BIT,) * len(data_range)
    return tuple(DEFAULT_DELTA_8BIT / 255.0 * r for r in data_range)
