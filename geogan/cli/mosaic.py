"""``geogan mosaic``: rebuild one raster from georeferenced chips."""

from __future__ import annotations

from pathlib import Path

import click

from geogan.cli._options import co_option, with_listed
from geogan.cli._progress import reporter
from geogan.cli._result import emit
from geogan.formats import COMPRESSIONS
from geogan.mosaic import BLENDS, MosaicConfig, mosaic_chips


@click.command(name="mosaic")
@click.argument("inputs", nargs=-1, metavar="CHIPS...")
@click.option("--files-from", type=click.Path(path_type=Path), metavar="LIST",
              help="A text file listing more inputs, one path per line.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Output GeoTIFF.")
@click.option("--blend", type=click.Choice(list(BLENDS)), default="mean", show_default=True,
              help="How overlapping chips are combined.")
@click.option("--cog", is_flag=True, help="Write a Cloud Optimized GeoTIFF with overviews.")
@click.option("--compress", type=click.Choice(list(COMPRESSIONS)), default="zstd",
              show_default=True, help="Output compression.")
@co_option
@click.option("--allow-no-crs", is_flag=True, help="Accept chips without a CRS.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def command(inputs: tuple[str, ...], files_from: Path | None, output: Path, blend: str,
            cog: bool, compress: str, creation_options: tuple[tuple[str, str], ...],
            allow_no_crs: bool, overwrite: bool) -> None:
    """Mosaic chips (files or folders of *.tif) into OUTPUT using each chip's transform.

    Overlapping chips are blended; pixels no chip covers are nodata.
    """
    config = MosaicConfig(blend=blend, cog=cog, compress=compress, allow_no_crs=allow_no_crs,
                          overwrite=overwrite,
                          creation_options=creation_options)
    with reporter("mosaic", unit="window") as rep:
        out = mosaic_chips(with_listed(inputs, files_from), output, config, progress=rep)
    emit({"output": out}, f"Wrote {out}")
