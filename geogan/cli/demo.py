"""``geogan demo``: the whole pipeline on the bundled sample orthophotos."""

from __future__ import annotations

from pathlib import Path

import click

from geogan.cli._options import OutputPath, invoked_as, spec_options
from geogan.cli._result import emit
from geogan.contract.options import DEMO


@click.command("demo")
@click.option("-o", "--output", type=OutputPath(what="a folder"), default=Path("demo_output"),
              show_default=True, help="Folder that receives the demo's outputs.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="A folder with the sample rasters (default: geogan/sample_data, installed "
                   "with geogan).")
@spec_options(DEMO)
def command(output: Path, data_dir: Path | None, pretrained: bool, steps: int, threads: int,
            seed: int, device: str, overwrite: bool) -> None:
    """Train a small CycleGAN straight from the western halves of the 2009 and 2020 NAIP
    orthophotos (random windows, no chips), translate the whole 2009 orthophoto to the
    2020 look, and score it on the held-out eastern half against 2020 and against
    histogram matching.
    """
    from geogan.cli._progress import reporter
    from geogan.demo import DemoConfig, run_demo

    config = DemoConfig(output=output, data_dir=data_dir, pretrained=pretrained, steps=steps,
                        threads=threads, seed=seed, device=device, overwrite=overwrite)
    with reporter("train", unit="steps") as rep:
        result = run_demo(config, progress=rep)
    def summary() -> str:
        lines = [f"\ngeogan demo finished in {result.seconds:.0f} s. Outputs in "
                 f"{result.output}/:",
                 f"  {result.translated.name:<28} the 2009 orthophoto in the 2020 look "
                 "(GeoTIFF, same CRS and grid)",
                 f"  {result.preview.name:<28} 2009 input | translated | 2020 reference"
                 " | confidence"]
        if result.confidence is not None:
            lines.append(f"  {result.confidence.name:<28} how sure the model is, 0..1 (QGIS "
                         "colours it red to green with the .qml beside it)")
        if result.loss_plot is not None:
            lines.append(f"  {'run/' + result.loss_plot.name:<28} training losses "
                         "(run/losses.csv, run/previews/)")
        model = result.checkpoint.relative_to(result.output)
        lines.append(f"  {str(model):<28} the model (use: {invoked_as()} translate "
                     f"{result.checkpoint} INPUT.tif -o OUT.tif)")
        lines.append(f"  {result.metrics.name:<28} scores on the held-out eastern half:")
        for name, row in result.scores.get("scores", {}).items():
            texture = "" if row.get("detail") is None else f"   detail {row['detail']:.2f}x"
            spectral = ("" if row.get("sam") is None else
                        f"   SAM {row['sam']:.2f} deg   ERGAS {row['ergas']:.1f}   "
                        f"NDVI RMSE {row['ndvi_rmse']:.3f}")
            lines.append(f"      {name:<20} RMSE {row['rmse']:6.2f}   SSIM {row['ssim']:.3f}"
                         f"{spectral}{texture}")
        nd = result.scores.get("ndvi_bands")
        if nd is not None:
            lines.append(f"      NDVI from red band {nd['red']} and NIR band {nd['nir']}, "
                         f"{nd['identified']}")
        return "\n".join(lines)

    emit({"output": result.output, "translated": result.translated, "preview": result.preview,
          "confidence": result.confidence, "metrics": result.metrics,
          "checkpoint": result.checkpoint,
          "loss_plot": result.loss_plot, "seconds": round(result.seconds, 1),
          "scores": result.scores}, summary)
