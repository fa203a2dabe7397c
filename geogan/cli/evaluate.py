"""``geogan evaluate``: paired metrics of a translated raster against a reference."""

from __future__ import annotations

import json
from pathlib import Path

import click

from geogan.cli._options import parse_bands
from geogan.evaluate import BASELINES, RESAMPLING


@click.command("evaluate")
@click.argument("prediction", type=click.Path(path_type=Path))
@click.argument("reference", type=click.Path(path_type=Path))
@click.option("--bands", metavar="1,2,3",
              help="Bands to compare (1-based, the same in both rasters). Default: all.")
@click.option("--aoi", type=click.Path(path_type=Path), metavar="VECTOR",
              help="Only score pixels inside these polygons (any CRS; reprojected).")
@click.option("--baseline", type=click.Choice(list(BASELINES)),
              help="Also score a classical baseline (needs --source).")
@click.option("--source", type=click.Path(path_type=Path), metavar="SOURCE",
              help="The raster that was translated into PREDICTION (for --baseline).")
@click.option("--delta", type=float,
              help="Accuracy threshold in raster units. Default: 5 on 8-bit data.")
@click.option("--data-range", type=float,
              help="Value range L for PSNR and SSIM. Default: 255 on 8-bit data, else the "
                   "reference's range per band.")
@click.option("--resampling", type=click.Choice(list(RESAMPLING)), default="bilinear",
              show_default=True,
              help="How REFERENCE (and SOURCE) are resampled when their grid differs.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def command(prediction: Path, reference: Path, bands: str | None,
            aoi: Path | None, baseline: str | None, source: Path | None, delta: float | None,
            data_range: float | None, resampling: str, as_json: bool) -> None:
    """Score PREDICTION against REFERENCE over the pixels valid in both.

    Prints per-band and overall RMSE, PSNR, SSIM and pixel accuracy (the share
    of pixels whose largest band difference is under --delta). REFERENCE is
    resampled onto PREDICTION's grid when they differ.
    """
    from geogan.cli._progress import reporter
    from geogan.evaluate import EvaluateConfig, evaluate

    config = EvaluateConfig(bands=parse_bands(bands), aoi=aoi, baseline=baseline, source=source,
                            delta=delta, data_range=data_range, resampling=resampling)
    with reporter("evaluate", unit="block") as rep:
        report = evaluate(prediction, reference, config, progress=rep)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(report.format_table())
