"""``geogan export``: a checkpoint's generator as ONNX plus a JSON sidecar."""

from __future__ import annotations

from pathlib import Path

import click

from geogan.cli._options import OutputPath, spec_options
from geogan.cli._result import emit
from geogan.contract.options import EXPORT


@click.command("export")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=OutputPath(what="the model"), required=True,
              metavar="MODEL.onnx|MODEL.safetensors",
              help="ONNX file to write (the sidecar MODEL.onnx.json goes beside it), or a "
                   ".safetensors file for a generators-only geogan checkpoint.")
@spec_options(EXPORT)
def command(checkpoint: Path, output: Path, direction: str, opset: int | None,
            overwrite: bool, verify: bool) -> None:
    """Export the generator of CHECKPOINT to ONNX with dynamic batch, height and width.

    With an output ending in .safetensors, write instead a geogan checkpoint that
    keeps only the generators (no discriminators, no training state): a smaller
    file to share, which 'geogan translate' uses like the original.

    CHECKPOINT is a .safetensors file written by 'geogan train' or its run folder.
    The JSON sidecar lists the bands, the per-band normalisation of input and
    output, the direction and the architecture.
    """
    from geogan.export import export_onnx, sidecar_path

    if output.suffix == ".safetensors":
        from geogan.checkpoint import save_inference_checkpoint

        path = save_inference_checkpoint(checkpoint, output, overwrite=overwrite)
        emit({"outputs": [path, path.with_suffix(".json")], "kind": "safetensors"},
             f"wrote {path} and {path.with_suffix('.json')} (generators only)")
        return
    path = export_onnx(checkpoint, output, direction=direction, opset=opset,
                       overwrite=overwrite, verify=verify)
    emit({"outputs": [path, sidecar_path(path)], "kind": "onnx"},
         f"wrote {path} and {sidecar_path(path)}")
