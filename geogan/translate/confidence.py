"""``confidence``: a raster beside each translation saying, pixel by pixel, how sure the model is.

The measure (:mod:`geogan.confidence`) runs in the engine's infer step on the very windows,
normalisation statistics and blend weights of the translation, and is blended into a
one-band accumulator like the output (:class:`ConfidenceLayer`), so it has no seams and
hardly depends on the tile. The finished rows reach the sinks as
``Rows.layers["confidence"]``; :class:`ConfidenceRaster`, a side raster
(:mod:`geogan.sink.side`), writes them to ``<output stem>.confidence.tif`` with the QGIS
style ``<output stem>.confidence.qml`` beside it, committed with the output: all files or none.

A CycleGAN checkpoint's other generator is loaded for the cycle error (the default
measure); a checkpoint without one falls back to ``feature`` (``tta`` with ``norm`` window).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geogan.contract.names import CONFIDENCE_SUFFIX
from geogan.errors import OutputError
from geogan.fileio import check_output_file
from geogan.sink.side import SideRaster, register_side_raster

if TYPE_CHECKING:
    import torch

    from geogan.blend import AxisLayout
    from geogan.checkpoint import LoadedGenerator
    from geogan.confidence import Models
    from geogan.normstats import NormStats
    from geogan.rasterio_meta import RasterMeta

log = logging.getLogger(__name__)

#: The layer of :class:`~geogan.sink.rows.Rows` that carries the confidence.
LAYER = "confidence"
#: The confidence band's description.
BAND_DESCRIPTION = "geogan confidence (1 = sure, 0 = guessing)"
#: What the confidence raster's ``GEOGAN_PRODUCT`` tag says it is.
PRODUCT = "confidence"
#: Each measure's formula as the ``GEOGAN_CONFIDENCE_FORMULA`` tag states it (scales filled in).
FORMULAS = {
    "cycle": "exp(-mean_bands|b2a(a2b(x)) - x| / {cycle}), x in model units [-1, 1]",
    "feature": "exp(-rms_channels((f - mean) / std) / {feature}), f: the generator's first "
               "instance-norm layer's input, mean and std: the raster's global statistics",
    "tta": "exp(-mean_bands std(a2b(x), rot90^-1 a2b(rot90 x), rot270^-1 a2b(rot270 x)) / {tta}),"
           " model units [-1, 1]",
}
#: The partner generator (b2a of an a2b) of each generator module, loaded once per module.
_PARTNERS: weakref.WeakKeyDictionary[Any, LoadedGenerator | None] = weakref.WeakKeyDictionary()


@register_side_raster
class ConfidenceRaster(SideRaster):
    """``<output stem>.confidence.tif``: float32, 0 (the model is guessing) .. 1 (it is sure)."""

    name = "confidence"
    suffix = CONFIDENCE_SUFFIX

    def __init__(self, measure: str = "cycle") -> None:
        self.measure = measure

    @classmethod
    def wanted(cls, config: Any) -> bool:
        return bool(getattr(config, "confidence", False))

    def values(self, rows: Any) -> np.ndarray:
        return rows.layers[LAYER][None]

    def meta(self, output_meta: RasterMeta | None) -> RasterMeta:
        """The output's provenance; the product, the measure and its formula; the band's
        meaning."""
        import dataclasses

        from geogan.confidence import SCALES
        from geogan.rasterio_meta import BandMeta

        meta = super().meta(output_meta)
        formula = FORMULAS.get(self.measure, self.measure).format(**SCALES)
        tags = {**meta.tags, "GEOGAN_PRODUCT": PRODUCT,
                "GEOGAN_CONFIDENCE_MEASURE": self.measure,
                "GEOGAN_CONFIDENCE_FORMULA": formula}
        bands = tuple(BandMeta(b.colorinterp, BAND_DESCRIPTION) for b in meta.bands)
        return dataclasses.replace(meta, bands=bands, tags=tags)

    def sidecars(self, path: Path) -> dict[Path, Callable[[Path], None]]:
        from geogan.qml import style_path_for, write_confidence_style

        return {style_path_for(path): write_confidence_style}

    def check_sidecar(self, path: Path, overwrite: bool) -> None:
        """Like the rasters, and an existing style is replaced only when geogan wrote it."""
        from geogan.qml import CONFIDENCE_TITLE, style_says

        check_output_file(path, overwrite)
        if path.exists() and not style_says(path, CONFIDENCE_TITLE):
            raise OutputError(f"{path} exists and is not a style geogan wrote; move it away "
                              "to have geogan write the confidence raster's style there")


# ---------------------------------------------------------------- set up per raster


@dataclass
class ConfidenceSetup:
    """What the engine needs for one raster: the networks and the measure they compute."""

    models: Models
    measure: str


def partner_of(generator: LoadedGenerator, device: str) -> LoadedGenerator | None:
    """The checkpoint's generator the other way (b2a for a2b), or None when it has none."""
    from geogan.checkpoint import load_generator

    if generator.module in _PARTNERS:
        return _PARTNERS[generator.module]
    other = "b2a" if generator.direction == "a2b" else "a2b"
    partner = None
    ckpt = generator.checkpoint
    if generator.path is not None and ckpt is not None and other in ckpt.generators:
        partner = load_generator(generator.path, other, device)
        if partner.in_norm.bands != generator.out_bands \
                or partner.out_norm.bands != generator.in_bands:
            partner = None
    _PARTNERS[generator.module] = partner
    return partner


def prepare_confidence(generator: LoadedGenerator, src: Any, indexes: list[int],
                       nodata: float | None, stats: NormStats | None,
                       device: str) -> ConfidenceSetup:
    """The confidence networks for the raster open as ``src`` (what the translation reads),
    translated with ``stats`` (None: ``norm`` window). A CycleGAN's ``b2a`` normalises
    with statistics estimated on the ``a2b`` translation of the statistics sample."""
    from geogan.confidence import cycle_stats, default_measure, file_reader, load_models

    b2a = partner_of(generator, device)
    measure = default_measure(b2a is not None, stats is not None)
    if b2a is None or stats is None:
        log.info("%s: confidence by the %s measure", src.name, measure)
        return ConfidenceSetup(load_models(generator, b2a, stats, device), measure)
    first = load_models(generator, None, stats, device)
    b2a_stats = cycle_stats(first.a2b, b2a, file_reader(src, indexes, first, nodata),
                            int(src.width), int(src.height), device)
    log.info("%s: confidence by the cycle error through the checkpoint's %s generator",
             src.name, b2a.direction)
    return ConfidenceSetup(load_models(generator, b2a, stats, device, b2a_stats), measure)


def with_measure(sides: Sequence[SideRaster], setup: ConfidenceSetup | None
                 ) -> list[SideRaster]:
    """``sides`` with the confidence raster told the measure it holds."""
    out = list(sides)
    for side in out:
        if isinstance(side, ConfidenceRaster) and setup is not None:
            side.measure = setup.measure
    return out


# ---------------------------------------------------------------- in the engine


class ConfidenceLayer:
    """The confidence of a translation, blended window by window like its output.

    The engine calls :meth:`weigh` with each batch (its model-space windows and the
    generator's outputs), :meth:`add` with each window as it adds the output's, and
    :meth:`finish` as it finishes a window row: the same windows and weights in a
    one-band accumulator of ``tile`` rows by the raster width
    (:class:`~geogan.translate.stitch.Stitcher`).
    """

    def __init__(self, setup: ConfidenceSetup, ax: AxisLayout, ay: AxisLayout, blend: str,
                 device: str) -> None:
        from geogan.normalize import BandNorm
        from geogan.translate.stitch import Stitcher

        self.setup = setup
        # confidence in [0, 1] is kept as it is: from_model of lo -1, hi 1 is the identity
        self.stitch = Stitcher(ax, ay, blend, BandNorm("float32", (-1.0,), (1.0,)), device)

    def weigh(self, x: torch.Tensor, y: torch.Tensor,
              origins: Sequence[tuple[int, int]]) -> torch.Tensor:
        """Weighted confidence ``(n, 1, T, T)`` of windows ``x`` with outputs ``y`` (clamped
        to ``[-1, 1]`` here, in place, as the output's blending does anyway)."""
        from geogan.confidence import window_confidence

        y.clamp_(-1.0, 1.0)
        measure = self.setup.measure
        conf = window_confidence(self.setup.models, x, measure,
                                 y=None if measure == "feature" else y, origins=origins)
        return self.stitch.weigh(conf.float()[:, None])

    def add(self, c: int, window: torch.Tensor) -> None:
        self.stitch.add(c, window)

    def finish(self) -> dict[str, np.ndarray]:
        """The finished rows ``{"confidence": (n, W) float32}`` of the current window row."""
        _, _, rows = self.stitch.finish()
        return {LAYER: rows[0]}
