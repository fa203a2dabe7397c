"""``geogan translate``: convert orthophotos with a trained checkpoint, window by window."""

from __future__ import annotations

import os
from pathlib import Path

import click

from geogan.blend import BLEND_PROFILES
from geogan.cli._options import co_option, parse_bands, with_listed
from geogan.cli._result import emit
from geogan.normstats import DEFAULT_NORM, NORM_MODES
from geogan.translate import COMPRESSIONS, PRECISIONS


@click.command("translate")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("inputs", nargs=-1, metavar="INPUT...")
@click.option("--files-from", type=click.Path(path_type=Path), metavar="LIST",
              help="A text file listing more inputs, one path per line.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Output GeoTIFF (one input file, name ending in .tif) or folder.")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b",
              show_default=True, help="Which generator of the checkpoint to use.")
@click.option("--tile", type=int, default=512, show_default=True,
              help="Window size in pixels (a multiple of the generator's, e.g. 4 for ResNet).")
@click.option("--overlap", type=int, default=64, show_default=True,
              help="Pixels shared by neighbouring windows and blended (at most tile/2).")
@click.option("--blend", type=click.Choice(list(BLEND_PROFILES)), default="cosine",
              show_default=True,
              help="How overlapping windows are merged: cosine or linear cross-fade, or none "
                   "(hard crop).")
@click.option("--norm", type=click.Choice(list(NORM_MODES)), default=DEFAULT_NORM,
              show_default=True,
              help="Instance-norm statistics: global (the whole raster's, so the result does "
                   "not depend on the tiling), dense (a smooth grid over the raster) or window "
                   "(each window its own).")
@click.option("--stats", "stats", type=click.Path(path_type=Path), default=None,
              metavar="FILE",
              help="Use these statistics (from --save-stats) for every input instead of "
                   "estimating them.")
@click.option("--save-stats", is_flag=True,
              help="Write each output's statistics beside it as <output>.stats.json.")
@click.option("--shared-stats", is_flag=True,
              help="Estimate one set of global statistics over all inputs together (one look "
                   "for a whole batch).")
@click.option("--batch-size", type=int, default=None,
              help="Windows per generator call. Default: 8 on CUDA, 1 on the CPU.")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(list(PRECISIONS)), default="auto",
              show_default=True,
              help="auto is bf16 on CUDA and on CPUs with native bf16 (AVX512-BF16, AMX), "
                   "fp32 on other CPUs.")
@click.option("--cog", is_flag=True, help="Write Cloud Optimized GeoTIFFs with overviews.")
@click.option("--compress", type=click.Choice(list(COMPRESSIONS)), default="zstd",
              show_default=True, help="GeoTIFF compression.")
@click.option("--bands", metavar="1,2,3",
              help="Input bands to feed the generator (1-based). Default: all.")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile the generator (faster on GPUs after a warm-up).")
@click.option("--skip-existing", is_flag=True,
              help="Leave outputs that already exist alone (resume an interrupted batch).")
@click.option("--overwrite", is_flag=True, help="Replace outputs that already exist.")
@co_option
@click.option("-j", "--threads", type=click.IntRange(min=1), default=None,
              help="Threads for the generator on the CPU and for GDAL's compression "
                   "(default: all cores, or $GDAL_NUM_THREADS for GDAL).")
def command(checkpoint: Path, inputs: tuple[str, ...], files_from: Path | None, output: Path,
            direction: str, tile: int, overlap: int, blend: str, norm: str, stats: Path | None,
            save_stats: bool, shared_stats: bool, batch_size: int | None, device: str,
            precision: str,
            cog: bool, compress: str, bands: str | None, compile_: bool, skip_existing: bool,
            overwrite: bool, creation_options: tuple[tuple[str, str], ...],
            threads: int | None) -> None:
    """Translate INPUT rasters (files, folders or globs) with CHECKPOINT.

    Outputs keep each input's CRS, transform, size and nodata mask, with the
    band count and dtype of the target domain. With several inputs, OUTPUT is a
    folder that receives <input name>.tif for each. Under torchrun the files are
    shared out across the GPUs.
    """
    from geogan.cli._progress import reporter
    from geogan.translate import TranslateConfig, translate_files

    config = TranslateConfig(tile=tile, overlap=overlap, blend=blend, batch_size=batch_size,
                             device=device, precision=precision, cog=cog, compress=compress,
                             bands=parse_bands(bands), skip_existing=skip_existing,
                             overwrite=overwrite, compile=compile_,
                             creation_options=creation_options, threads=threads, norm=norm,
                             stats=str(stats) if stats else None, save_stats=save_stats,
                             shared_stats=shared_stats)
    desc = "translate"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        desc = f"translate (rank {os.environ.get('RANK', '0')})"
    with reporter(desc, unit="Mpx") as rep:
        paths = translate_files(checkpoint, with_listed(inputs, files_from), output, config,
                                progress=rep,
                                direction=direction)
    emit({"outputs": paths}, lambda: "\n".join(str(p) for p in paths))
