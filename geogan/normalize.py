"""Per-band normalisation between raster values and the model's [-1, 1] range.

Each band is mapped linearly from ``[lo, hi]`` to ``[-1, 1]`` (values outside
are clipped). For 8-bit data the default range is the full 0..255, as in the
CycleGAN and pix2pix papers; for 16-bit and float data ``lo``/``hi`` are robust
percentiles of the training chips, ignoring nodata. The statistics are stored in
the checkpoint, so translation inverts exactly what training applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from geogan.contract.limits import norm_problem
from geogan.errors import InputError

#: A numpy array or a torch tensor (:func:`unit_scale` takes either).
ArrayT = TypeVar("ArrayT")

#: Percentiles used for ``lo``/``hi`` on data that is not 8-bit.
ROBUST_PERCENTILES = (0.5, 99.5)

_INT_DTYPES = {"uint8", "uint16", "int16", "uint32", "int32"}


@dataclass(frozen=True)
class BandNorm:
    """Linear per-band scaling of one domain's rasters to and from ``[-1, 1]``."""

    dtype: str
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    nodata: float | None = None

    def __post_init__(self) -> None:
        if len(self.lo) != len(self.hi):
            raise ValueError("lo and hi must have one value per band")
        problem = norm_problem(self.dtype, list(self.lo), list(self.hi))
        if problem is not None:  # NaN, lo >= hi, or beyond float32: a constant image
            raise ValueError(f"unusable normalisation: {problem}")

    @property
    def bands(self) -> int:
        return len(self.lo)

    @classmethod
    def full_range(cls, dtype: str, bands: int, nodata: float | None = None) -> BandNorm:
        """The whole range of an integer dtype (0..255 for uint8) for every band."""
        info = np.iinfo(np.dtype(dtype))
        return cls(str(np.dtype(dtype)), (float(info.min),) * bands, (float(info.max),) * bands,
                   nodata)

    @classmethod
    def from_samples(cls, samples: Iterable[np.ndarray | tuple[np.ndarray, np.ndarray | None]],
                     dtype: str, nodata: float | None = None,
                     max_values: int = 2_000_000) -> BandNorm:
        """Statistics from chips shaped ``(C, H, W)``; nodata pixels are ignored.

        A sample may also be ``(chip, valid)`` with ``valid`` ``(H, W)`` booleans from
        the chip's mask (see :func:`geogan.rasterio_meta.read_valid`); pixels it marks
        invalid are ignored too. uint8 data keeps the full 0..255 range; other
        dtypes use robust percentiles.
        """
        dtype = str(np.dtype(dtype))
        per_band: list[list[np.ndarray]] = []
        bands = 0
        for sample in samples:
            chip, extra = sample if isinstance(sample, tuple) else (sample, None)
            if chip.ndim != 3:
                raise InputError(f"expected chips shaped (bands, height, width), got {chip.shape}")
            if not per_band:
                bands = chip.shape[0]
                per_band = [[] for _ in range(bands)]
            valid = valid_mask(chip, nodata)
            if extra is not None:
                valid &= extra
            for b in range(bands):
                per_band[b].append(chip[b][valid].astype(np.float64).ravel())
        if not per_band:
            raise InputError("no chips to compute normalisation statistics from")
        if dtype == "uint8":
            return cls.full_range(dtype, bands, nodata)
        rng = np.random.default_rng(0)
        lo: list[float] = []
        hi: list[float] = []
        for b in range(bands):
            values = np.concatenate(per_band[b]) if per_band[b] else np.empty(0)
            values = values[np.isfinite(values)]
            if values.size == 0:
                raise InputError(f"band {b + 1} has no valid (non-nodata) pixels in the chips")
            if values.size > max_values:
                values = rng.choice(values, max_values, replace=False)
            p_lo, p_hi = np.percentile(values, ROBUST_PERCENTILES)
            if p_hi <= p_lo:
                p_lo, p_hi = float(values.min()), float(values.max())
            if p_hi <= p_lo:
                p_hi = p_lo + max(1.0, abs(p_lo) * 2.0 ** -20)  # apart in float32 too
            lo.append(float(p_lo))
            hi.append(float(p_hi))
        problem = norm_problem(dtype, lo, hi)
        if problem is not None:
            raise InputError(f"the chips' values cannot be normalised in float32 ({problem}); "
                             "rescale the rasters or mask their extreme values as nodata")
        return cls(dtype, tuple(lo), tuple(hi), nodata)

    def to_model(self, x: np.ndarray) -> np.ndarray:
        """Raster values ``(C, H, W)`` or ``(N, C, H, W)`` -> float32 in ``[-1, 1]``."""
        lo, span = self._broadcast(x.ndim)
        y = unit_scale(x.astype(np.float32), lo, span)
        np.clip(y, -1.0, 1.0, out=y)
        return np.nan_to_num(y, copy=False, nan=0.0)

    def from_model(self, y: np.ndarray) -> np.ndarray:
        """Model output in ``[-1, 1]`` -> raster values of :attr:`dtype` (rounded, clipped)."""
        lo, span = self._broadcast(y.ndim)
        x = (np.clip(y.astype(np.float32), -1.0, 1.0) + 1.0) * 0.5 * span + lo
        if self.dtype in _INT_DTYPES:
            info = np.iinfo(np.dtype(self.dtype))
            x = np.clip(np.rint(x), info.min, info.max)
        return x.astype(self.dtype)

    def scale(self) -> tuple[np.ndarray, np.ndarray]:
        """``lo`` and ``hi - lo`` per band in float32: the numbers of the mapping to and from
        ``[-1, 1]`` (:func:`unit_scale`), wherever (numpy, torch) it is computed."""
        lo = np.asarray(self.lo, dtype=np.float32)
        return lo, np.asarray(self.hi, dtype=np.float32) - lo

    def _broadcast(self, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        shape = (-1,) + (1,) * 2 if ndim == 3 else (1, -1, 1, 1)
        lo, span = self.scale()
        return lo.reshape(shape), span.reshape(shape)

    def to_json(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "lo": list(self.lo), "hi": list(self.hi),
                "nodata": self.nodata}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BandNorm:
        return cls(str(data["dtype"]), tuple(float(v) for v in data["lo"]),
                   tuple(float(v) for v in data["hi"]),
                   None if data.get("nodata") is None else float(data["nodata"]))


def unit_scale(x: ArrayT, lo: Any, span: Any) -> ArrayT:
    """Float32 raster values -> the generator's scale, ``[lo, lo + span]`` -> ``[-1, 1]``
    (before clipping): the normalisation's one formula, for numpy arrays and torch tensors
    alike (:meth:`BandNorm.to_model`, :func:`geogan.translate.tensors.to_model`)."""
    return (x - lo) / span * 2.0 - 1.0


def nodata_mask(data: np.ndarray, nodata: float | None) -> np.ndarray:
    """``(H, W)`` booleans, true where every band of ``data`` ``(C, H, W)`` equals ``nodata``.

    A pixel is nodata only when all its bands are (rasterio's dataset-mask rule);
    a NaN ``nodata`` matches NaN values. With ``nodata=None`` nothing is nodata.
    """
    if nodata is None:
        return np.zeros(data.shape[1:], dtype=bool)
    if np.isnan(nodata):
        if not np.issubdtype(data.dtype, np.floating):
            return np.zeros(data.shape[1:], dtype=bool)
        mask = np.isnan(data[0])
        for band in data[1:]:
            mask &= np.isnan(band)
        return mask
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        if not (info.min <= nodata <= info.max and float(nodata).is_integer()):
            return np.zeros(data.shape[1:], dtype=bool)  # no value can equal it
    value = np.array(nodata).astype(data.dtype)
    mask = data[0] == value
    for band in data[1:]:
        if not mask.any():
            break
        mask &= band == value
    return mask


def valid_mask(chip: np.ndarray, nodata: float | None) -> np.ndarray:
    """``(H, W)`` booleans: pixels of a ``(C, H, W)`` chip that hold data.

    A pixel is invalid when it is nodata (see :func:`nodata_mask`) or, for float
    data, when any band is NaN or infinite.
    """
    valid = ~nodata_mask(chip, nodata)
    if np.issubdtype(chip.dtype, np.floating):
        valid &= np.isfinite(chip).all(axis=0)
    return valid


def select_bands(array: np.ndarray, bands: Sequence[int] | None) -> np.ndarray:
    """Pick 1-based ``bands`` from a ``(C, H, W)`` array (all when ``None``)."""
    if bands is None:
        return array
    return array[[b - 1 for b in bands]]
