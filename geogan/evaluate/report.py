"""What ``geogan evaluate`` is asked and what it reports: options, scores, JSON and text."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geogan.contract.options import EVALUATE
from geogan.errors import InputError, require_choice
from geogan.metrics import SSIM_K1, SSIM_K2, SSIM_RADIUS, SSIM_SIGMA

#: Resampling methods for putting REFERENCE (and SOURCE) onto PREDICTION's grid.
RESAMPLING: tuple[str, ...] = ("nearest", "bilinear", "cubic", "average")

#: Baselines scored beside the prediction: name -> what it is.
BASELINES: dict[str, str] = {
    "histogram-match": "per-band histogram matching of SOURCE to REFERENCE",
}


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
    ``block_size``: pixels per side of the blocks read at a time. ``red``, ``nir``: the
    bands NDVI is computed from (default: those the rasters' colour interpretation
    names). ``error_map``: a GeoTIFF to write the per-pixel absolute error and spectral
    angle to, on REFERENCE's grid; ``overwrite`` lets it replace an existing file.
    """

    bands: tuple[int, ...] | None = EVALUATE.default_of("bands")
    aoi: Path | None = EVALUATE.default_of("aoi")
    baseline: str | None = EVALUATE.default_of("baseline")
    source: Path | None = EVALUATE.default_of("source")
    delta: float | None = EVALUATE.default_of("delta")
    data_range: float | None = EVALUATE.default_of("data_range")
    resampling: str = EVALUATE.default_of("resampling")
    block_size: int = 512
    red: int | None = EVALUATE.default_of("red")
    nir: int | None = EVALUATE.default_of("nir")
    error_map: Path | None = EVALUATE.default_of("error_map")
    overwrite: bool = EVALUATE.default_of("overwrite")

    def __post_init__(self) -> None:
        if self.bands is not None:
            if not self.bands:
                raise InputError("`bands` is empty; give band numbers such as 1,2,3")
            if any(b < 1 for b in self.bands):
                raise InputError(f"`bands` {band_text(self.bands)}: band numbers start at 1")
            if len(set(self.bands)) != len(self.bands):
                raise InputError(f"`bands` {band_text(self.bands)} repeats a band; "
                                 "list each band once")
        if self.baseline is not None and self.baseline not in BASELINES:
            raise InputError(f"unknown `baseline` {self.baseline!r}; choose one of "
                             f"{', '.join(BASELINES)}")
        if self.baseline is not None and self.source is None:
            raise InputError(f"`baseline` {self.baseline} needs `source`, the raster that was "
                             "translated into PREDICTION")
        if self.source is not None and self.baseline is None:
            raise InputError("`source` is only used by a baseline; add `baseline` "
                             "histogram-match or drop `source`")
        if self.delta is not None and not self.delta > 0:
            raise InputError(f"`delta` must be positive, got {self.delta}")
        if self.data_range is not None and not self.data_range > 0:
            raise InputError(f"`data_range` must be positive, got {self.data_range}")
        require_choice("resampling", self.resampling, RESAMPLING)
        for name, band in (("red", self.red), ("nir", self.nir)):
            if band is not None and band < 1:
                raise InputError(f"`{name}` {band}: band numbers start at 1")
        if self.red is not None and self.red == self.nir:
            raise InputError(f"`red` and `nir` are both band {self.red}; give two bands")
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
    bias: float = 0.0  # mean(prediction - reference)


@dataclass(frozen=True)
class NdviBands:
    """The bands NDVI is computed from and how they were found (``how``), or why NDVI was
    skipped (``red`` or ``nir`` None, ``how`` says why)."""

    red: int | None
    nir: int | None
    how: str

    @property
    def usable(self) -> bool:
        return self.red is not None and self.nir is not None

    def to_json(self, words: Callable[[str], str] | None = None) -> dict[str, Any]:
        """``words`` renders the parameter names of the note (the CLI's flags...)."""
        how = self.how if words is None else words(self.how)
        return {"red": self.red, "nir": self.nir,
                ("identified" if self.usable else "skipped"): how}


@dataclass(frozen=True)
class NdviScores:
    """How NDVI = (NIR - red) / (NIR + red) of the candidate differs from the reference's.

    ``rmse`` and ``bias`` (mean of candidate - reference) of the index, ``changed`` the
    share of pixels whose index differs by more than :data:`geogan.metrics.NDVI_CHANGE`,
    over the ``pixels`` valid pixels where both indices are defined.
    """

    rmse: float
    bias: float
    changed: float
    pixels: int

    def to_json(self) -> dict[str, Any]:
        from geogan.metrics import NDVI_CHANGE

        return {"rmse": self.rmse, "bias": self.bias, "changed": self.changed,
                "changed_threshold": NDVI_CHANGE, "pixels": self.pixels}


@dataclass(frozen=True)
class Scores:
    """Overall and per-band metrics of one candidate (the prediction or a baseline)."""

    name: str
    rmse: float
    psnr: float
    ssim: float
    accuracy: float
    bands: tuple[BandScores, ...]
    bias: float = 0.0  # the mean of the bands' biases
    sam: float | None = None  # mean spectral angle, degrees (None: one band)
    sam_pixels: int = 0  # pixels where the angle is defined
    ergas: float | None = None
    ndvi: NdviScores | None = None

    def to_json(self) -> dict[str, Any]:
        return {"rmse": self.rmse, "psnr": _finite_or_none(self.psnr), "ssim": self.ssim,
                "accuracy": self.accuracy, "bias": self.bias, "sam": self.sam,
                "sam_pixels": self.sam_pixels, "ergas": self.ergas,
                "ndvi": None if self.ndvi is None else self.ndvi.to_json(),
                "bands": [{"band": b.band, "rmse": b.rmse, "psnr": _finite_or_none(b.psnr),
                           "ssim": b.ssim, "accuracy": b.accuracy, "bias": b.bias}
                          for b in self.bands]}


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
    ndvi_bands: NdviBands | None = None
    ergas_ratio: float = 1.0
    error_map: str | None = None

    def to_json(self, words: Callable[[str], str] | None = None) -> dict[str, Any]:
        """A JSON-ready dict (PSNR is ``null`` where it is infinite: identical bands);
        ``words`` renders parameter names in notes (:mod:`geogan.contract.messages`)."""
        return {
            "prediction": self.prediction, "reference": self.reference,
            "source": self.source, "aoi": self.aoi, "bands": list(self.bands),
            "valid_pixels": self.valid_pixels, "grid_pixels": self.grid_pixels,
            "data_range": list(self.data_range), "delta": list(self.delta),
            "reference_resampled": self.reference_resampled, "resampling": self.resampling,
            "ssim_window": {"type": "gaussian", "sigma": SSIM_SIGMA,
                            "size": 2 * SSIM_RADIUS + 1, "k1": SSIM_K1, "k2": SSIM_K2},
            "scores": {s.name: s.to_json() for s in self.scores},
            "spectral": {"sam_unit": "degrees", "ergas_ratio": self.ergas_ratio,
                         "ndvi_bands": None if self.ndvi_bands is None
                         else self.ndvi_bands.to_json(words)},
            "error_map": self.error_map,
        }

    def format_table(self, words: Callable[[str], str] | None = None) -> str:
        """A plain-text table: one 'all' row and one row per band for each candidate (with
        bias, and SAM and ERGAS on the 'all' row), then the NDVI rows. ``words`` renders
        parameter names in notes (:func:`geogan.contract.messages.for_cli`)."""
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
                  f"({share:.1%}), bands {band_text(self.bands)}",
                  f"data range:   {_number_text(self.data_range)}; accuracy: share of "
                  f"pixels whose largest band difference < {delta}",
                  f"spectral:     bias = mean(prediction - reference); SAM: mean spectral "
                  f"angle in degrees; ERGAS with resolution ratio {self.ergas_ratio:.4g}", ""]
        name_w = max(len("candidate"), *(len(s.name) for s in self.scores))
        header = (f"{'candidate':<{name_w}}  {'band':>4}  {'RMSE':>10}  {'PSNR dB':>8}  "
                  f"{'SSIM':>7}  {'accuracy':>8}  {'bias':>9}  {'SAM':>7}  {'ERGAS':>8}")
        lines += [header, "-" * len(header)]
        for s in self.scores:
            rows = [("all", s.rmse, s.psnr, s.ssim, s.accuracy, s.bias)]
            if len(s.bands) > 1:
                rows += [(str(b.band), b.rmse, b.psnr, b.ssim, b.accuracy, b.bias)
                         for b in s.bands]
            for i, (band, rmse, psnr, ssim, acc, bias) in enumerate(rows):
                spectral = (f"  {_optional(s.sam, '7.3f')}  {_optional(s.ergas, '8.3f')}"
                            if i == 0 else "")
                lines.append(f"{s.name:<{name_w}}  {band:>4}  {rmse:>10.4f}  "
                             f"{_psnr_text(psnr):>8}  {ssim:>7.4f}  {acc:>8.4f}  "
                             f"{bias:>+9.4f}{spectral}")
        lines += ["", *self._ndvi_lines(name_w, words or (lambda text: text))]
        if self.error_map is not None:
            lines += ["", f"error map:    {self.error_map}"]
        return "\n".join(lines)

    def _ndvi_lines(self, name_w: int, words: Callable[[str], str]) -> list[str]:
        """Which bands NDVI used and how they were found, and one row per candidate."""
        nd = self.ndvi_bands
        if nd is None or not nd.usable:
            return [f"NDVI:         skipped: {words(nd.how) if nd is not None else 'no bands'}"]
        from geogan.metrics import NDVI_CHANGE

        lines = [f"NDVI:         red band {nd.red}, NIR band {nd.nir} ({nd.how}); changed: "
                 f"share of pixels whose NDVI differs by more than {NDVI_CHANGE:g}", ""]
        header = (f"{'index':<5}  {'candidate':<{name_w}}  {'RMSE':>7}  {'bias':>8}  "
                  f"{'changed':>7}  {'pixels':>11}")
        lines += [header, "-" * len(header)]
        for s in self.scores:
            if s.ndvi is None:
                lines.append(f"{'NDVI':<5}  {s.name:<{name_w}}  no pixel where NDVI is defined")
            else:
                lines.append(f"{'NDVI':<5}  {s.name:<{name_w}}  {s.ndvi.rmse:>7.4f}  "
                             f"{s.ndvi.bias:>+8.4f}  {s.ndvi.changed:>7.4f}  "
                             f"{s.ndvi.pixels:>11,}")
        return lines


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _optional(v: float | None, fmt: str) -> str:
    width = fmt.split(".")[0]
    return f"{'-':>{width}}" if v is None else format(v, fmt)


def _psnr_text(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.2f}"


def band_text(bands: Sequence[int]) -> str:
    """Band numbers as ``--bands`` takes them: ``1,2,3``."""
    return ",".join(str(b) for b in bands)


def _number_text(values: Sequence[float]) -> str:
    if len(set(values)) == 1:
        return f"{values[0]:g}"
    return ", ".join(f"{v:g}" for v in values) + " (per band)"
