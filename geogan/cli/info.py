"""``geogan info``: what a checkpoint or a raster is, and whether a raster fits a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geogan.cli._options import parse_bands
from geogan.cli._result import emit


@click.command("info")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--checkpoint", type=click.Path(path_type=Path),
              help="Also say whether each raster fits this checkpoint, and how.")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b",
              show_default=True, help="The checkpoint's generator to check rasters against.")
@click.option("--bands", metavar="1,2,3", help="Bands you would pass to translate.")
def command(paths: tuple[str, ...], checkpoint: Path | None, direction: str,
            bands: str | None) -> None:
    """Describe checkpoints (or run folders) and rasters.

    For a checkpoint: the model, each generator's bands, dtype and normalisation, chip
    size, steps and the statistics modes translate offers. For a raster: its grid, bands,
    dtype, nodata, masks and band meaning; with --checkpoint, whether it fits and the
    --bands to pass.
    """
    from geogan.info import check_fit, describe_checkpoint, describe_raster, is_checkpoint

    items: list[dict[str, Any]] = []
    for path in paths:
        if is_checkpoint(path):
            items.append(describe_checkpoint(path))
            continue
        item = describe_raster(path)
        if checkpoint is not None:
            item["fit"] = check_fit(path, checkpoint, direction, parse_bands(bands))
        items.append(item)
    emit({"items": items}, lambda: "\n\n".join(_text(i) for i in items))


def _text(item: dict[str, Any]) -> str:
    if item["kind"] == "checkpoint":
        lines = [f"{item['path']}: geogan {item['model']} checkpoint, step {item['step']}, "
                 f"chip size {item['chip_size']}, geogan {item['geogan_version']}"
                 + (" (generators only)" if item["inference_only"] else "")]
        for direction, g in item["generators"].items():
            i, o = g["input"], g["output"]
            lines.append(f"  {direction}: {g['arch']} {i['name']} ({i['bands']} x {i['dtype']})"
                         f" -> {o['name']} ({o['bands']} x {o['dtype']}); --norm "
                         f"{'|'.join(g['norm_modes'])}")
        return "\n".join(lines)
    lines = [f"{item['path']}: {item['driver']} {item['width']} x {item['height']} px, "
             f"{item['count']} band(s) {', '.join(sorted(set(item['dtypes'])))}, "
             f"CRS {item['crs'] or 'none'}, pixel {item['res'][0]:g} x {item['res'][1]:g}",
             f"  bands: {', '.join(item['colorinterp'])}; nodata {item['nodata']}; "
             f"masks: {', '.join('/'.join(f) for f in item['mask_flags'])}"]
    fit = item.get("fit")
    if fit is not None:
        if fit["fits"]:
            lines.append("  fits the checkpoint" + (f" with {fit['option']}" if fit["option"]
                                                   else f" (bands {fit['bands']})"))
        else:
            hint = f"; pass {fit['option']}" if fit["option"] else ""
            lines.append(f"  does not fit: {fit['reason']}{hint}")
    return "\n".join(lines)
