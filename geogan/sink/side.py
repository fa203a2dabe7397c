"""Rasters written beside a translation, from the same finished rows, with the same rules.

A side raster (a per-pixel confidence, say) is one :class:`SideRaster` subclass
registered with :func:`register_side_raster`. For each translation it is wanted for
(:meth:`SideRaster.wanted`), :func:`translation_outputs` gives the engine one sink more,
and the raster is written on the output's exact grid (CRS, transform, size) and mask, with
the output's metadata (its provenance: synthetic, which model) and its own band names,
to a temporary renamed together with the output (:func:`geogan.fileio.output_group`):
both files or neither, whatever fails or is cancelled. ``overwrite`` is the output's;
planning checks the side raster's name with the output's before any work starts
(:func:`side_paths`), and a COG output makes it a COG too.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from geogan.contract.formats import COG, GEOTIFF, format_of_driver
from geogan.errors import InputError
from geogan.fileio import atomic_output, check_output_file, output_group
from geogan.sink.gdal import num_threads, output_profile
from geogan.sink.rows import WRITERS, Rows, SinkTarget

if TYPE_CHECKING:
    from geogan.rasterio_meta import RasterMeta

#: Codecs that cannot hold floating-point values: a float side raster uses zstd instead.
_INTEGER_ONLY_CODECS = ("jpeg", "webp")


class SideRaster(ABC):
    """A raster beside each translation: ``<output stem><suffix>`` (``a.tif`` -> ``a.mean.tif``).

    Subclasses set ``name`` (its band description and how messages name it),
    ``suffix``, and ``count``/``dtype`` when not one float32 band, and compute their
    values from the finished rows in :meth:`values`.
    """

    name: ClassVar[str]
    suffix: ClassVar[str]
    count: ClassVar[int] = 1
    dtype: ClassVar[str] = "float32"

    @classmethod
    def wanted(cls, config: Any) -> bool:
        """Whether a translation with ``config`` writes this raster (default: always)."""
        return True

    @classmethod
    def path_for(cls, output: Path) -> Path:
        """Where this raster goes beside ``output``."""
        return output.with_name(Path(output.name).stem + cls.suffix)

    @abstractmethod
    def values(self, rows: Rows) -> np.ndarray:
        """``(count, n, width)`` values of this raster at ``rows``, in :attr:`dtype`."""

    def nodata(self, output_nodata: float | None) -> float | None:
        """This raster's nodata: NaN (float) or the dtype's minimum where the output has one
        (so masks match pixel for pixel), else None (the output's mask is written instead)."""
        if output_nodata is None:
            return None
        if np.issubdtype(np.dtype(self.dtype), np.floating):
            return float("nan")
        return float(np.iinfo(np.dtype(self.dtype)).min)

    def meta(self, output_meta: RasterMeta | None) -> RasterMeta:
        """Its band meaning: described by :attr:`name`; the output's tags (provenance)."""
        from rasterio.enums import ColorInterp

        from geogan.rasterio_meta import BandMeta, RasterMeta

        names = [self.name] if self.count == 1 else [f"{self.name} {i + 1}"
                                                     for i in range(self.count)]
        tags = dict(output_meta.tags) if output_meta is not None else {}
        return RasterMeta(tuple(BandMeta(ColorInterp.undefined, n) for n in names), tags)

    def sidecars(self, path: Path) -> dict[Path, Callable[[Path], None]]:
        """Small files beside this raster at ``path`` (a QGIS style, say), each with the
        function that writes it to the path it is given; committed with the rasters."""
        return {}

    def check_sidecar(self, path: Path, overwrite: bool) -> None:
        """Fail when the sidecar ``path`` cannot be written (default: as an output file)."""
        check_output_file(path, overwrite)


#: The registered side rasters, by name.
SIDE_RASTERS: dict[str, type[SideRaster]] = {}


def register_side_raster(cls: type[SideRaster]) -> type[SideRaster]:
    """Register ``cls`` (also usable as a class decorator); a name registered again is
    replaced."""
    SIDE_RASTERS[cls.name] = cls
    return cls


def side_rasters(config: Any) -> list[SideRaster]:
    """The side rasters a translation with ``config`` writes, in registration order."""
    return [cls() for cls in SIDE_RASTERS.values() if cls.wanted(config)]


def side_paths(output: Path, config: Any) -> list[tuple[str, Path]]:
    """``(name, path)`` of each side raster written beside ``output``."""
    return [(side.name, side.path_for(output)) for side in side_rasters(config)]


@contextlib.contextmanager
def translation_outputs(output: Path, profile: dict[str, Any], meta: RasterMeta | None,
                        driver: str, config: Any, sides: Sequence[SideRaster] | None = None,
                        sidecars: dict[Path, Callable[[Path], None]] | None = None,
                        check_sidecar: Callable[[Path, bool], None] | None = None,
                        main: bool = True) -> Iterator[list[SinkTarget]]:
    """The sinks of one translation into ``output``: the output first, then its side rasters.

    The output is written by the writer of its format (``driver``, or COG with
    ``config.cog``; :data:`geogan.contract.formats.OUTPUT_FORMATS`,
    :data:`~geogan.sink.rows.WRITERS`), each side raster as a GeoTIFF (a COG with
    ``config.cog``). Each goes to a temporary that takes its name only once all are
    complete and checked, together (:func:`geogan.fileio.output_group`); the output
    alone is written as it always was. ``config`` gives ``overwrite``, ``cog``,
    ``compress``, ``creation_options`` and ``threads``; ``sides`` are the side rasters
    (default: :func:`side_rasters`), each with its sidecars (:meth:`SideRaster.sidecars`);
    ``sidecars`` are small files beside the output itself (a QGIS style, say), checked by
    ``check_sidecar(path, overwrite)`` and committed with it. Without ``main`` the output
    (and its ``sidecars``) is left as it is and only ``sides`` are written (beside a kept
    output, :mod:`geogan.translate.resume`); their sidecars then replace earlier ones
    where :meth:`SideRaster.check_sidecar` allows it with ``overwrite``.
    """
    fmt = format_of_driver("COG" if config.cog else driver)
    writer = WRITERS[fmt.writer]
    sides = side_rasters(config) if sides is None else list(sides)
    sidecars = dict(sidecars or {}) if main else {}
    for extra in sidecars:
        (check_sidecar or check_output_file)(extra, config.overwrite)
    if not sides and not sidecars and main:
        with writer.atomic(output, fmt, config) as target:
            yield [writer.target(target, profile, output, meta)]
        return
    side_fmt = COG if config.cog else GEOTIFF
    side_writer = WRITERS[side_fmt.writer]
    replace_sidecars = config.overwrite or not main
    with output_group() as group, contextlib.ExitStack() as stack:
        targets: list[SinkTarget] = []
        if main:
            tmp = stack.enter_context(writer.atomic(output, fmt, config, group))
            targets.append(writer.target(tmp, profile, output, meta))
        for extra, write in sidecars.items():
            write(stack.enter_context(atomic_output(extra, config.overwrite, group=group)))
        for side in sides:
            path = side.path_for(output)
            side_profile = _side_profile(side, profile, config)
            tmp = stack.enter_context(side_writer.atomic(path, side_fmt, config, group,
                                                         compress=side_profile["compress"]))
            targets.append(side_writer.target(tmp, side_profile, path, side.meta(meta),
                                              side.values, side_profile["nodata"]))
            for extra, write in side.sidecars(path).items():
                side.check_sidecar(extra, replace_sidecars)
                write(stack.enter_context(atomic_output(extra, replace_sidecars, group=group)))
        yield targets


def _side_profile(side: SideRaster, profile: dict[str, Any], config: Any) -> dict[str, Any]:
    """A GeoTIFF profile on the grid of the output's ``profile`` for ``side``."""
    compress = config.compress
    floating = np.issubdtype(np.dtype(side.dtype), np.floating)
    if floating and compress in _INTEGER_ONLY_CODECS:
        compress = "zstd"
    out = output_profile(profile, count=side.count, dtype=side.dtype,
                         nodata=side.nodata(profile.get("nodata")), compress=compress,
                         meta=side.meta(None))
    out["num_threads"] = num_threads(getattr(config, "threads", None))
    return out


def check_side_outputs(output: Path | os.PathLike[str], config: Any, local: bool) -> None:
    """Fail when a side raster cannot be written beside ``output``: it exists (without
    ``overwrite``), or ``output`` is not ``local`` (a GDAL path)."""
    for side in side_rasters(config):
        if not local:
            raise InputError(f"the {side.name} raster is written beside the output, which "
                             f"geogan does in local folders only, not at {output}; translate "
                             "to a local file")
        path = side.path_for(Path(output))
        check_output_file(path, config.overwrite)
        for extra in side.sidecars(path):
            side.check_sidecar(extra, config.overwrite)
