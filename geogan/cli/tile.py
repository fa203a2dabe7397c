"""``geogan tile``: cut georeferenced rasters into chips plus an index.gpkg."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geogan.cli._options import OutputPath, co_option, config_values, spec_options, with_listed
from geogan.cli._progress import reporter
from geogan.cli._result import emit
from geogan.contract.options import TILE
from geogan.inputs import expand_inputs
from geogan.tiling import TileConfig, tile_rasters


@click.command(name="tile")
@click.argument("inputs", nargs=-1, metavar="INPUT...")
@click.option("-o", "--output", "outdir", required=True, type=OutputPath(what="chips and an index"),
              help="Output folder for the chips and index.gpkg.")
@spec_options(TILE)
@co_option(TILE)
def command(inputs: tuple[str, ...], outdir: Path, **params: Any) -> None:
    """Cut INPUT rasters into SIZE x SIZE GeoTIFF chips plus OUTDIR/index.gpkg.

    Chips are named <stem>__c<col>_r<row>.tif after their source and pixel offset.
    Edge chips are shifted inward so no pixel is dropped; only a raster smaller than
    one chip is padded with nodata. With --pair, chips go to OUTDIR/A and OUTDIR/B
    under identical names. As task I of a job array of N (--shard I/N, or Slurm's,
    Kubernetes' or AWS Batch's array index), it tiles its share of the inputs into
    OUTDIR/part-I-of-N.
    """
    config = TileConfig(**config_values(TILE, params, TileConfig),
                        creation_options=params["creation_options"])
    with reporter("tile", unit="chips") as rep:
        result = tile_rasters(expand_inputs(with_listed(inputs, params["files_from"])), outdir,
                              config, progress=rep)
    skipped = result.skipped_nodata + result.skipped_std
    if result.existing or not result.sources:
        text = (f"{result.outdir} is complete from an earlier try ({result.chips} chips); left "
                "it alone" if result.existing else "No input is this task's; nothing to do")
    else:
        text = (f"Wrote {result.chips} chips to {result.outdir} ({skipped} skipped by "
                f"--max-nodata/--min-std, {result.skipped_aoi} outside the AOI); "
                f"index: {result.index}")
    emit({"output": result.outdir, "index": result.index, "chips": result.chips,
          "candidates": result.candidates, "skipped_nodata": result.skipped_nodata,
          "skipped_std": result.skipped_std, "skipped_aoi": result.skipped_aoi,
          "paired": result.paired, "sources": list(result.sources),
          "existing": result.existing}, text)
