"""Export a checkpoint's generator to ONNX, with a JSON sidecar that says how to feed it.

``export_onnx(CHECKPOINT, "model.onnx")`` writes ``model.onnx`` (one file, weights
inside) and ``model.onnx.json``, a name no checkpoint's sidecar has (a checkpoint
``model.safetensors`` has ``model.json``; earlier geogan versions wrote the ONNX sidecar
there too, which :func:`find_sidecar` still reads). The ONNX graph maps ``input``
``(batch, bands_in, height, width)`` float32 in ``[-1, 1]`` to ``output`` ``(batch,
bands_out, height, width)`` float32 in ``[-1, 1]``; batch, height and width are dynamic,
and height and width must be multiples of ``size_multiple`` (4 for ResNet generators,
256 for ``unet_256``). The sidecar (also embedded in the ONNX metadata under the key
``geogan``) gives the bands, the per-band normalisation (``lo``/``hi`` and the formula)
of both sides, the direction and the architecture, so onnxruntime scripts and QGIS
plugins can run the model without geogan.

The graph is produced by the ``torch.export``-based exporter
(``torch.onnx.export(..., dynamo=True)``, which needs ``onnxscript``) at opset
:data:`DEFAULT_OPSET`, with height and width declared as multiples of the
generator's ``size_multiple``; the TorchScript exporter is deprecated since
torch 2.9. After writing, onnxruntime (when installed) runs the model on an
input of a different size than the export example and the result is compared
with torch's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from geogan import __version__
from geogan.contract.choices import sides_of
from geogan.contract.names import ONNX_SIDECAR_SUFFIX
from geogan.errors import GeoganError, OutputError, first_line
from geogan.fileio import atomic_output, check_output_file, write_error

log = logging.getLogger(__name__)

#: ONNX opset written by default: opset 18 runs in onnxruntime >= 1.14.
DEFAULT_OPSET = 18
#: Sidecar format name and version.
FORMAT = "geogan-onnx"
FORMAT_VERSION = 1
#: Names of the graph's input and output.
INPUT_NAME = "input"
OUTPUT_NAME = "output"
#: Largest absolute difference between onnxruntime and torch accepted by the check.
VERIFY_TOLERANCE = 1e-3

TO_MODEL_FORMULA = ("model_input[b] = clip((value[b] - lo[b]) / (hi[b] - lo[b]) * 2 - 1, -1, 1); "
                    "NaN -> 0")
FROM_MODEL_FORMULA = ("value[b] = (clip(model_output[b], -1, 1) + 1) / 2 * (hi[b] - lo[b]) + lo[b]"
                      "; rounded and clipped to the dtype's range for integer dtypes")


def sidecar_path(output: str | os.PathLike[str]) -> Path:
    """The JSON sidecar written beside ``output`` (``model.onnx`` -> ``model.onnx.json``)."""
    out = Path(output)
    return out.with_name(out.stem + ONNX_SIDECAR_SUFFIX)


def legacy_sidecar_path(output: str | os.PathLike[str]) -> Path:
    """Where earlier geogan versions wrote the sidecar (``model.onnx`` -> ``model.json``)."""
    return Path(output).with_suffix(".json")


def find_sidecar(output: str | os.PathLike[str]) -> Path | None:
    """The sidecar of an exported ``output``: ``NAME.onnx.json``, else an earlier export's
    ``NAME.json`` when it is one (not a checkpoint's); None when there is neither."""
    current = sidecar_path(output)
    if current.is_file():
        return current
    legacy = legacy_sidecar_path(output)
    if legacy.is_file():
        try:
            data = json.loads(legacy.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if isinstance(data, dict) and data.get("format") == FORMAT:
            return legacy
    return None


def read_sidecar(output: str | os.PathLike[str]) -> dict[str, Any]:
    """The sidecar of an exported ONNX file (see :func:`find_sidecar`)."""
    path = find_sidecar(output)
    if path is None:
        raise OutputError(f"{output} has no geogan sidecar ({sidecar_path(output).name}); "
                          "export the model again with geogan export")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _refuse_checkpoint_sidecar(output: Path, sidecar: Path) -> None:
    """Never write over a checkpoint's sidecar (``X.json`` of ``X.safetensors``), whatever
    ``overwrite`` says: an export is not a checkpoint."""
    weights = sidecar.with_suffix(".safetensors")
    if weights.is_file():
        raise OutputError(f"the sidecar {sidecar} of {output} would replace the metadata of the "
                          f"checkpoint {weights}; export to another name, e.g. -o "
                          f"{output.with_name('generator.onnx')}")


def export_onnx(checkpoint: str | os.PathLike[str], output: str | os.PathLike[str],
                direction: str = "a2b", opset: int | None = None, *, overwrite: bool = False,
                verify: bool = True) -> Path:
    """Write the ``direction`` generator of ``checkpoint`` as ONNX plus a JSON sidecar.

    Returns the ONNX path. Both files are written to temporary names and renamed
    only when complete; existing files are kept unless ``overwrite``. Raises
    :class:`~geogan.errors.CheckpointError` for an unusable checkpoint or a
    missing direction, :class:`~geogan.errors.OutputError` for an output that
    exists or cannot be written, and :class:`~geogan.errors.GeoganError` when the
    ONNX packages are missing, the export fails, or ``verify`` finds onnxruntime
    disagreeing with torch.
    """
    output = Path(output)
    if output.suffix.lower() != ".onnx":
        raise OutputError(f"output {output} must end with .onnx (the sidecar goes beside it "
                          f"as {ONNX_SIDECAR_SUFFIX}), or .safetensors for a generators-only "
                          "geogan checkpoint")
    sidecar = sidecar_path(output)
    _refuse_checkpoint_sidecar(output, sidecar)
    check_output_file(output, overwrite)
    check_output_file(sidecar, overwrite)
    opset = DEFAULT_OPSET if opset is None else int(opset)
    if opset < 18:
        raise GeoganError(f"`opset` {opset} is too old for the torch.export-based exporter; "
                          "use 18 or newer")
    _require_packages()

    import torch

    from geogan.checkpoint import load_generator, resolve_checkpoint_path
    from geogan.models import size_multiple

    ckpt = resolve_checkpoint_path(checkpoint)
    gen = load_generator(ckpt, direction=direction, device="cpu")
    module = gen.module.float().eval()
    multiple = size_multiple(module)
    meta = sidecar_metadata(gen, ckpt, output.name, opset, multiple)

    side = _example_side(multiple, getattr(module, "min_size", 1))
    example = torch.rand(2, gen.in_bands, side, side,
                         generator=torch.Generator().manual_seed(0)) * 2 - 1
    log.info("exporting the %s generator of %s (%s) to ONNX opset %d", direction, ckpt,
             meta["architecture"]["arch"], opset)
    proto = _export_proto(module, example, multiple, opset, ckpt)
    _finish_proto(proto, meta)
    text = json.dumps(meta, indent=2, sort_keys=True)

    import onnx

    with atomic_output(output, overwrite) as tmp_onnx, \
            atomic_output(sidecar, overwrite) as tmp_json:
        try:  # inside the sidecar's block: its failures would be named after the sidecar
            onnx.save_model(proto, str(tmp_onnx))
        except OSError as exc:
            raise write_error(output, exc) from exc
        tmp_json.write_text(text + "\n")
        if verify:
            _verify(tmp_onnx, module, gen.in_bands, multiple)
    log.info("wrote %s and %s", output, sidecar)
    return output


def sidecar_metadata(gen: Any, checkpoint: Path, onnx_name: str, opset: int,
                     multiple: int) -> dict[str, Any]:
    """The sidecar's content for a :class:`~geogan.checkpoint.LoadedGenerator`."""
    meta = gen.checkpoint
    spec = meta.generator(gen.direction)
    src, dst = sides_of(gen.direction)

    def side(key: str, norm: Any, formula: str) -> dict[str, Any]:
        domain = meta.domains.get(key)
        return {"domain": key, "name": domain.name if domain else None, "bands": norm.bands,
                "band_indexes": domain.bands if domain else None,  # as training recorded
                "dtype": norm.dtype,
                "nodata": norm.nodata, "lo": list(norm.lo), "hi": list(norm.hi),
                "formula": formula}

    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "geogan_version": __version__,
        "onnx_file": onnx_name, "opset": opset,
        "direction": gen.direction, "model": meta.model,
        "architecture": {"arch": spec.arch, "kwargs": spec.kwargs},
        "input": {"name": INPUT_NAME, "shape": ["batch", gen.in_bands, "height", "width"],
                  "dtype": "float32", "range": [-1.0, 1.0]},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", gen.out_bands, "height", "width"],
                   "dtype": "float32", "range": [-1.0, 1.0]},
        "size_multiple": multiple, "chip_size": meta.chip_size,
        "bands": {"input": gen.in_bands, "output": gen.out_bands},
        "normalisation": {"input": side(src, gen.in_norm, TO_MODEL_FORMULA),
                          "output": side(dst, gen.out_norm, FROM_MODEL_FORMULA)},
        "nodata": "pixels where every input band equals the input nodata (or any is NaN) "
                  "should be written as the output nodata",
        "norm_statistics": {
            "modes": ["window"],
            "note": "instance norm uses each input window's own statistics (the window mode "
                    "of geogan translate's norm); its global and dense modes are not "
                    "in this graph, so results depend on the window size"},
        "checkpoint": {"file": checkpoint.name, "epoch": meta.epoch,
                       "step": meta.step, "geogan_version": meta.geogan_version or None},
    }


def _require_packages() -> None:
    missing = [name for name in ("onnx", "onnxscript")
               if _find_spec(name) is None]
    if missing:
        raise GeoganError(f"ONNX export needs {' and '.join(missing)}; install them with "
                          "pip install 'geogan[onnx]'")


def _find_spec(name: str) -> Any:
    import importlib.util

    return importlib.util.find_spec(name)


def _example_side(multiple: int, min_size: int = 1) -> int:
    """Example height/width: at least 2 multiples (no size-1 feature maps), 32 px and the
    generator's ``min_size``."""
    return multiple * max(2, math.ceil(32 / multiple), math.ceil(min_size / multiple))


def _export_proto(module: Any, example: Any, multiple: int, opset: int, ckpt: Path) -> Any:
    """The ONNX ``ModelProto`` of ``module`` with dynamic batch, height and width."""
    import torch
    from torch.export import Dim

    def side(name: str) -> Any:
        return Dim(name) if multiple == 1 else multiple * Dim(f"{name}_blocks")

    dynamic = {"x": {0: Dim("batch"), 2: side("height"), 3: side("width")}}
    try:
        with torch.no_grad(), _quiet_torch_logs():
            program = torch.onnx.export(module, (example,), dynamo=True, opset_version=opset,
                                        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                        dynamic_shapes=dynamic, external_data=False,
                                        optimize=True, verbose=False)
        return program.model_proto
    except Exception as exc:  # torch.export / onnxscript raise many types
        raise GeoganError(f"ONNX export of the generator in {ckpt} failed ({first_line(exc)}); "
                          "report this with the checkpoint's .json") from exc


@contextlib.contextmanager
def _quiet_torch_logs() -> Any:
    """Silence the exporter's chatter: its passes log at INFO and torch warns about itself."""
    import warnings

    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _finish_proto(proto: Any, meta: dict[str, Any]) -> None:
    """Name the dynamic axes batch/height/width and embed the sidecar as metadata."""
    inp, out = proto.graph.input[0], proto.graph.output[0]
    names = {}
    for tensor in (inp, out):
        dims = tensor.type.tensor_type.shape.dim
        for axis, label in ((0, "batch"), (2, "height"), (3, "width")):
            if dims[axis].dim_param:
                names[dims[axis].dim_param] = label
    for value in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in names:
                dim.dim_param = names[dim.dim_param]
    del proto.metadata_props[:]
    for key, value in (("geogan", json.dumps(meta, sort_keys=True)),
                       ("geogan_direction", meta["direction"]),
                       ("geogan_size_multiple", str(meta["size_multiple"]))):
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    proto.producer_name = "geogan"
    proto.producer_version = __version__
    proto.doc_string = (f"geogan {meta['direction']} generator ({meta['architecture']['arch']}); "
                        "see the metadata key 'geogan' for bands and normalisation")


def _verify(path: Path, module: Any, bands: int, multiple: int) -> None:
    """Run onnxruntime on an input shaped unlike the export example; compare with torch."""
    if _find_spec("onnxruntime") is None:
        log.warning("onnxruntime is not installed; the exported model was not checked")
        return
    import numpy as np
    import onnxruntime as ort
    import torch

    smallest = multiple * math.ceil(getattr(module, "min_size", 1) / multiple)
    side = _example_side(multiple, smallest)
    h, w = side + multiple, max(side - multiple, smallest)  # unlike the example's side x side
    x = (torch.rand(1, bands, h, w, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    with torch.no_grad():
        expected = module(x).numpy()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
    diff = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else math.inf
    log.info("onnxruntime vs torch on a %dx%d input: max abs difference %.2g", h, w, diff)
    if not diff <= VERIFY_TOLERANCE:
        raise GeoganError(f"the exported model disagrees with torch (max difference {diff:.3g} "
                          f"on a {h}x{w} input); nothing was written")
