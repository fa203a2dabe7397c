"""The normalisation statistics each raster is translated with: read, shared or estimated."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from geogan import normstats
from geogan.checkpoint import LoadedGenerator
from geogan.normstats import NormStats
from geogan.progress import CancelCheck
from geogan.translate.compat import open_input, select_input_bands
from geogan.translate.config import TranslateConfig
from geogan.translate.runtime import resolve_precision


def batch_stats(generator: LoadedGenerator, files: Sequence[Path], config: TranslateConfig,
                device: str, cancel: CancelCheck | None,
                known: Mapping[Path, list[int]] | None = None) -> NormStats | None:
    """Statistics shared by every input: ``config.stats`` read and checked, or ``shared_stats``.

    ``known`` holds the bands of the inputs already checked (not checked again); the other
    inputs' are checked here, as translation reads them (an alpha band left out).
    """
    from geogan.normstats import check_stats, estimate_stats, load_stats

    if config.norm == "window":
        return None
    if config.stats:
        stats = load_stats(config.stats)
        check_stats(stats, generator, config.norm, f"statistics file {config.stats}")
        return stats
    if not config.shared_stats:
        return None
    from geogan.colortable import expanded_band
    from geogan.rasterio_meta import data_bands
    from geogan.translate.subset import subset_views

    indexes = []
    for path in files:
        if known and path in known:
            indexes.append(known[path])
            continue
        with open_input(path) as src:
            if expanded_band(src, path, config.bands) is not None:
                indexes.append([1, 2, 3])  # its view is the RGB of its colour table
                continue
            indexes.append(select_input_bands(src.count, src.dtypes, path, generator,
                                              config.bands, data_bands(src)))
    with subset_views(list(files), config) as views:  # the parts translated, if parts
        return estimate_stats(generator, views, "global", indexes, device=device,
                              precision=resolve_precision(config.precision, device),
                              cancel=cancel)


def raster_stats(generator: LoadedGenerator, path: Path, indexes: list[int],
                 src_profile: dict[str, Any], config: TranslateConfig, device: str,
                 given: NormStats | None, cancel: CancelCheck | None) -> NormStats | None:
    """The statistics one raster is translated with (None for ``--norm window``)."""
    from geogan.normstats import check_dense_fits, estimate_stats

    if config.norm == "window" or not normstats.norm_layers(generator.module):
        return None  # a generator without instance norm: nothing depends on the windows
    stats = given if given is not None else batch_stats(generator, [path], config, device,
                                                        cancel)
    if stats is None:
        stats = estimate_stats(generator, [path], config.norm, [indexes], device=device,
                               precision=resolve_precision(config.precision, device),
                               cancel=cancel)
    if stats.mode == "dense":
        check_dense_fits(stats, int(src_profile["width"]), int(src_profile["height"]),
                         f"statistics file {config.stats}" if config.stats else str(path))
    return stats
