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
    from geogan.contract.messages import for_cli
    from geogan.info import check_fit, describe_checkpoint, describe_raster, is_checkpoint

    items: list[dict[str, Any]] = []
    for path in paths:
        if is_checkpoint(path):
            items.append(describe_checkpoint(path))
            continue
        item = describe_raster(path)
        if checkpoint is not None:
            fit = check_fit(path, checkpoint, direction, parse_bands(bands))
            item["fit"] = {**fit, **{k: for_cli(fit[k], "translate") for k in ("reason", "option")
                                     if fit[k] is not None}}
        items.append(item)
    emit({"items": items}, lambda: "\n\n".join(_text(i) for i in items))


def _coord(value: float) -> str:
    """A coordinate without float noise (``5209247``, ``-73.19573``)."""
    return f"{round(value, 9):.12g}"


def pixel_text(item: dict[str, Any]) -> str:
    """``pixel 5 x 5 m``; ``pixel 0.000808 x 0.000808 degrees (about 89.8 x 89.4 m)``."""
    rx, ry = item["res"]
    units = item.get("units")
    text = f"pixel {rx:g} x {ry:g}" + (f" {units}" if units else " (no CRS: units unknown)")
    ground = item.get("pixel_size_m")
    if ground and units != "m":
        about = "about " if item.get("geographic") else ""
        text += f" ({about}{ground[0]:.3g} x {ground[1]:.3g} m)"
    return text


def extent_text(item: dict[str, Any]) -> str:
    """``x 485900 to 486235, y 5209022 to 5209247 m (335 x 225 m)``: left to right, bottom
    to top, and the size on the ground."""
    left, bottom, right, top = item["bounds"]
    units = f" {item['units']}" if item.get("units") else ""
    text = f"x {_coord(left)} to {_coord(right)}, y {_coord(bottom)} to {_coord(top)}{units}"
    ground = item.get("pixel_size_m")
    if ground:
        w, h = ground[0] * item["width"], ground[1] * item["height"]
        size = (f"{w / 1000:.3g} x {h / 1000:.3g} km" if max(w, h) >= 1000
                else f"{w:.3g} x {h:.3g} m")
        text += f" ({'about ' if item.get('geographic') else ''}{size})"
    return text


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
        return "\n".join(lines + _ground_lines(item))
    lines = [f"{item['path']}: {item['driver']} {item['width']} x {item['height']} px, "
             f"{item['count']} band(s) {', '.join(sorted(set(item['dtypes'])))}, "
             f"CRS {item['crs'] or 'none'}, {pixel_text(item)}",
             f"  extent: {extent_text(item)}",
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
    return "\n".join(lines + _provenance_lines(item))


def _ground_lines(item: dict[str, Any]) -> list[str]:
    """What ground resolution each domain of a checkpoint was trained at."""
    from geogan.ground import format_gsd

    ground = item.get("ground") or {}
    known = [d for d in ground.values() if d.get("gsd_m") is not None]
    if not known:
        return ["  ground resolution: not recorded (a checkpoint of an older geogan; translate "
                "cannot check its inputs' pixel size)"]
    return ["  ground resolution: " + ", ".join(
        f"{d['name']} {format_gsd(d['gsd_m'])}/px" + (f" ({d['crs']})" if d.get("crs") else "")
        if d.get("gsd_m") is not None else f"{d['name']} not recorded" for d in ground.values())]


def _provenance_lines(item: dict[str, Any]) -> list[str]:
    """Whether geogan generated a raster, and how."""
    from geogan.ground import format_gsd

    lines = [f"  ground resolution: {format_gsd(item['gsd_m'])}/px"] if item.get("gsd_m") else []
    prov = item.get("provenance")
    if prov is None:
        return [*lines, "  not generated by geogan (no geogan provenance)"]
    lines.append(f"  generated by geogan, synthetic: {prov['description']}")
    labels = (("model", "model"), ("generator", "generator"), ("checkpoint", "checkpoint"),
              ("checkpoint_sha256", "checkpoint SHA-256"), ("direction", "direction"),
              ("input", "input"), ("input_size", "input bytes"),
              ("input_modified", "input modified"), ("norm", "normalisation"),
              ("norm_stats", "statistics"), ("precision", "precision"), ("tile", "tile"),
              ("overlap", "overlap"), ("at_model_resolution", "at model resolution"),
              ("version", "geogan"), ("torch_version", "torch"), ("created", "created"))
    for key, label in labels:
        value = prov.get(key)
        if value not in (None, "", False):
            lines.append(f"    {label}: {'yes' if value is True else value}")
    return lines
