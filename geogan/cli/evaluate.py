"""``geogan evaluate``: paired metrics of a translated raster against a reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from geogan.cli._options import config_values, spec_options
from geogan.contract.options import EVALUATE


@click.command("evaluate")
@click.argument("prediction", type=click.Path(path_type=Path))
@click.argument("reference", type=click.Path(path_type=Path))
@spec_options(EVALUATE)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def command(prediction: Path, reference: Path, as_json: bool, **params: Any) -> None:
    """Score PREDICTION against REFERENCE over the pixels valid in both.

    Prints per-band and overall RMSE, PSNR, SSIM, pixel accuracy (the share
    of pixels whose largest band difference is under --delta) and bias, the
    mean spectral angle (SAM, degrees) and ERGAS; with the red and NIR bands
    known (--red/--nir, or the colour interpretation), how NDVI differs. REFERENCE
    is resampled onto PREDICTION's grid when they differ. --error-map writes the
    per-pixel absolute error and spectral angle on REFERENCE's grid.
    """
    from geogan.cli._progress import reporter
    from geogan.contract.messages import for_cli
    from geogan.evaluate import EvaluateConfig, evaluate

    config = EvaluateConfig(**config_values(EVALUATE, params, EvaluateConfig))
    with reporter("evaluate", unit="blocks") as rep:
        report = evaluate(prediction, reference, config, progress=rep)
    def words(text: str) -> str:
        return for_cli(text, "evaluate")

    if as_json:
        click.echo(json.dumps(report.to_json(words), indent=2))
    else:
        click.echo(report.format_table(words))
