"""``geogan import``: pytorch-CycleGAN-and-pix2pix generator weights -> a geogan checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from geogan.cli._options import OutputPath
from geogan.cli._result import emit


@click.command("import")
@click.argument("weights", type=click.Path(path_type=Path), metavar="G_A.pth")
@click.option("--b2a", type=click.Path(path_type=Path), metavar="G_B.pth",
              help="The other generator of a CycleGAN (latest_net_G_B.pth).")
@click.option("-o", "--output", required=True, type=OutputPath(what="a checkpoint"),
              help="The geogan checkpoint to write (.safetensors, with its .json).")
@click.option("--name-a", default="A", show_default=True, help="Name of domain A.")
@click.option("--name-b", default="B", show_default=True, help="Name of domain B.")
@click.option("--chip-size", default=256, show_default=True, type=click.IntRange(min=1),
              help="The crop size the model was trained on (their --crop_size).")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def command(weights: Path, b2a: Path | None, output: Path, name_a: str, name_b: str,
            chip_size: int, overwrite: bool) -> None:
    """Import generator weights of pytorch-CycleGAN-and-pix2pix (latest_net_G_A.pth,
    latest_net_G.pth...) as a geogan checkpoint with 8-bit normalisation.

    Only plain tensor state dicts are read (torch's weights-only loader); their
    ResnetGenerator (6 or 9 blocks) and UnetGenerator (128, 256) are recognised from
    the tensor names.
    """
    from geogan.importer import import_generators

    path = import_generators(weights, output, b2a=b2a, name_a=name_a, name_b=name_b,
                             chip_size=chip_size, overwrite=overwrite)
    emit({"checkpoint": path, "sidecar": path.with_suffix(".json")}, f"wrote {path}")
