"""Which chips are kept: the ``--max-nodata``/``--min-std`` rule shared by tile and training."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def nodata_fraction(valid: np.ndarray) -> float:
    """The fraction of a chip's pixels that hold no data (``valid`` from :meth:`View.valid`)."""
    return 1.0 - float(np.count_nonzero(valid)) / valid.size


def rejection(chips: Sequence[np.ndarray], valids: Sequence[np.ndarray], max_nodata: float,
              min_std: float) -> str | None:
    """Why a chip (and its pair) is dropped: ``"nodata"``, ``"std"`` or None (kept).

    The ``--max-nodata``/``--min-std`` rule of ``geogan tile``, shared with the random
    windows of :mod:`geogan.samplers`: every side must have a nodata fraction of at
    most ``max_nodata`` and, when ``min_std`` > 0, a band whose std reaches it.
    """
    if any(nodata_fraction(ok) > max_nodata for ok in valids):
        return "nodata"
    if min_std > 0 and any(_chip_std(ch, ok) < min_std
                           for ch, ok in zip(chips, valids, strict=True)):
        return "std"
    return None


def _chip_std(chip: np.ndarray, valid: np.ndarray) -> float:
    """The largest per-band standard deviation over the chip's ``valid`` pixels."""
    values = chip[:, valid]
    if values.shape[1] == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        return float(np.nanmax(values.astype(np.float64).std(axis=1)))
