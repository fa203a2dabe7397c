"""``geogan mosaic``: rebuild one raster from georeferenced chips, or index a finished batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geogan.cli._options import OutputPath, co_option, config_values, spec_options, with_listed
from geogan.cli._progress import reporter
from geogan.cli._result import emit
from geogan.contract.options import MOSAIC
from geogan.errors import InputError
from geogan.mosaic import MosaicConfig, mosaic_chips


@click.command(name="mosaic")
@click.argument("inputs", nargs=-1, metavar="CHIPS...")
@click.option("-o", "--output", type=OutputPath(gdal=True),
              help="Output GeoTIFF, or a writable GDAL path (/vsis3/..., "
                   "/vsizip/out.zip/a.tif).")
@spec_options(MOSAIC)
@co_option(MOSAIC)
def command(inputs: tuple[str, ...], output: Path | None, **params: Any) -> None:
    """Mosaic chips (files or folders of *.tif) into OUTPUT using each chip's transform.

    Overlapping chips are blended; pixels no chip covers are nodata. With --index FOLDER
    (the output folder of a finished batch), write FOLDER/index.gpkg and FOLDER/mosaic.vrt
    instead, so the whole batch opens as one layer.
    """
    if params["index"]:
        _index(inputs, output, params)
        return
    if output is None:
        raise InputError("give the mosaic's file with -o OUTPUT.tif (or pass `index` FOLDER to "
                         "index a batch)")
    config = MosaicConfig(**config_values(MOSAIC, params, MosaicConfig),
                          creation_options=params["creation_options"])
    with reporter("mosaic", unit="windows") as rep:
        out = mosaic_chips(with_listed(inputs, params["files_from"]), output, config, progress=rep)
    emit({"output": out}, f"Wrote {out}")


def _index(inputs: tuple[str, ...], output: Path | None, params: dict[str, Any]) -> None:
    from geogan.batch_index import index_outputs

    if output is not None or params["cog"] or params["creation_options"] \
            or params["files_from"] is not None:
        raise InputError("`index` writes index.gpkg and mosaic.vrt into FOLDER; drop -o, "
                         "`cog`, `co` and `files_from`")
    if len(inputs) != 1:
        raise InputError(f"`index` takes one FOLDER (the batch's output folder), got "
                         f"{len(inputs)}")
    with reporter("index", unit="rasters") as rep:
        made = index_outputs(Path(inputs[0]), overwrite=params["overwrite"], progress=rep)
    emit({"index": made.index, "vrt": made.vrt, "rasters": made.rasters},
         f"Indexed {made.rasters} raster(s): {made.index} and {made.vrt}")
