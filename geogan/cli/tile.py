"""``geogan tile``: cut georeferenced rasters into chips plus an index.gpkg."""

from __future__ import annotations

from pathlib import Path

import click

from geogan.cli._options import bands_option, co_option, with_listed
from geogan.cli._progress import reporter
from geogan.cli._result import emit
from geogan.inputs import expand_inputs
from geogan.tiling import CHIP_COMPRESSIONS, RESAMPLING, TileConfig, tile_rasters


@click.command(name="tile")
@click.argument("inputs", nargs=-1, metavar="INPUT...")
@click.option("--files-from", type=click.Path(path_type=Path), metavar="LIST",
              help="A text file listing more inputs, one path per line.")
@click.option("-o", "--output", "outdir", required=True, type=click.Path(path_type=Path),
              help="Output folder for the chips and index.gpkg.")
@click.option("--size", default=256, show_default=True, type=click.IntRange(min=1),
              help="Chip width and height in pixels.")
@click.option("--overlap", default=0, show_default=True, type=click.IntRange(min=0),
              help="Pixels shared by neighbouring chips.")
@click.option("--bands", callback=bands_option, metavar="1,2,3",
              help="Bands to keep, numbered from 1 (default: all).")
@click.option("--aoi", type=click.Path(path_type=Path), metavar="VECTOR_FILE",
              help="Keep only chips that intersect these polygons (any CRS).")
@click.option("--max-nodata", default=0.0, show_default=True,
              type=click.FloatRange(0.0, 1.0),
              help="Skip chips with a larger fraction of nodata pixels.")
@click.option("--min-std", default=0.0, show_default=True, type=click.FloatRange(min=0.0),
              help="Skip near-constant chips: every band's std under this value.")
@click.option("--crs", metavar="EPSG:XXXX", help="Warp the inputs to this CRS.")
@click.option("--res", type=float, metavar="R", help="Warp the inputs to this pixel size.")
@click.option("--align-to", type=click.Path(path_type=Path), metavar="REF.tif",
              help="Warp the inputs onto the CRS and pixel grid of this raster.")
@click.option("--pair", type=click.Path(path_type=Path), metavar="B.tif",
              help="Write A/B chip pairs with this raster resampled onto the input's grid.")
@click.option("--pair-bands", callback=bands_option, metavar="1,2,3",
              help="Bands of the --pair raster to keep (default: all).")
@click.option("--resampling", type=click.Choice(list(RESAMPLING)), default="bilinear",
              show_default=True, help="Resampling for warped views and --pair.")
@click.option("--compress", type=click.Choice(list(CHIP_COMPRESSIONS)), default="none",
              show_default=True, help="Chip compression.")
@co_option
@click.option("-j", "--threads", default=1, show_default=True, type=click.IntRange(min=0),
              help="Chip-writing threads (0: write in the main thread).")
@click.option("--allow-no-crs", is_flag=True, help="Accept rasters without a CRS.")
@click.option("--overwrite", is_flag=True, help="Replace OUTDIR if it exists.")
def command(inputs: tuple[str, ...], files_from: Path | None, outdir: Path, size: int, overlap: int,
            bands: tuple[int, ...] | None, aoi: Path | None, max_nodata: float,
            min_std: float, crs: str | None, res: float | None, align_to: Path | None,
            pair: Path | None, pair_bands: tuple[int, ...] | None, resampling: str,
            compress: str, creation_options: tuple[tuple[str, str], ...], threads: int,
            allow_no_crs: bool, overwrite: bool) -> None:
    """Cut INPUT rasters into SIZE x SIZE GeoTIFF chips plus OUTDIR/index.gpkg.

    Chips are named <stem>__c<col>_r<row>.tif after their source and pixel offset.
    Edge chips are shifted inward so no pixel is dropped; only a raster smaller than
    one chip is padded with nodata. With --pair, chips go to OUTDIR/A and OUTDIR/B
    under identical names.
    """
    config = TileConfig(size=size, overlap=overlap, bands=bands, aoi=aoi,
                        max_nodata=max_nodata, min_std=min_std, crs=crs, res=res,
                        align_to=align_to, pair=pair, pair_bands=pair_bands,
                        resampling=resampling, compress=compress, allow_no_crs=allow_no_crs,
                        overwrite=overwrite, threads=threads,
                        creation_options=creation_options)
    with reporter("tile", unit="chip") as rep:
        result = tile_rasters(expand_inputs(with_listed(inputs, files_from)), outdir, config,
                              progress=rep)
    skipped = result.skipped_nodata + result.skipped_std
    emit({"output": result.outdir, "index": result.index, "chips": result.chips,
          "candidates": result.candidates, "skipped_nodata": result.skipped_nodata,
          "skipped_std": result.skipped_std, "skipped_aoi": result.skipped_aoi,
          "paired": result.paired, "sources": list(result.sources)},
         f"Wrote {result.chips} chips to {result.outdir} ({skipped} skipped by "
         f"--max-nodata/--min-std, {result.skipped_aoi} outside the AOI); "
         f"index: {result.index}")
