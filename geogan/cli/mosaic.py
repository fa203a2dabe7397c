"""``geogan mosaic``: rebuild one raster from georeferenced chips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geogan.cli._options import OutputPath, co_option, config_values, spec_options, with_listed
from geogan.cli._progress import reporter
from geogan.cli._result import emit
from geogan.mosaic import MosaicConfig, mosaic_chips
from geogan.spec.options import MOSAIC


@click.command(name="mosaic")
@click.argument("inputs", nargs=-1, metavar="CHIPS...")
@click.option("-o", "--output", required=True, type=OutputPath(gdal=True),
              help="Output GeoTIFF, or a writable GDAL path (/vsis3/..., "
                   "/vsizip/out.zip/a.tif).")
@spec_options(MOSAIC)
@co_option(MOSAIC)
def command(inputs: tuple[str, ...], output: Path, **params: Any) -> None:
    """Mosaic chips (files or folders of *.tif) into OUTPUT using each chip's transform.

    Overlapping chips are blended; pixels no chip covers are nodata.
    """
    config = MosaicConfig(**config_values(MOSAIC, params, MosaicConfig),
                          creation_options=params["creation_options"])
    with reporter("mosaic", unit="windows") as rep:
        out = mosaic_chips(with_listed(inputs, params["files_from"]), output, config, progress=rep)
    emit({"output": out}, f"Wrote {out}")
