"""``geogan import``: pytorch-CycleGAN-and-pix2pix generator weights -> a geogan checkpoint.

The public models of that project (``latest_net_G_A.pth``, ``latest_net_G.pth`` ...) are
plain state dicts of its ``ResnetGenerator`` or ``UnetGenerator``. This module reads such
a file with torch's weights-only loader (it never unpickles anything else), infers the
architecture from the tensor names and shapes, renames the tensors to geogan's layout and
writes a checkpoint with 8-bit normalisation (their ``(x / 255 - 0.5) / 0.5``), so the
model translates GeoTIFFs like any geogan checkpoint.

Their layouts (``models/networks.py``), with ``n`` residual blocks:

- ResnetGenerator ``model``: ReflectionPad, Conv7 (1), norm, ReLU, Conv3/2 (4), norm, ReLU,
  Conv3/2 (7), norm, ReLU, blocks (10 .. 9+n: ``conv_block`` = pad, conv (1), norm, ReLU,
  [dropout], pad, conv (5 or 6), norm), ConvT (10+n), norm, ReLU, ConvT (13+n), norm, ReLU,
  pad, Conv7 (17+n), Tanh. geogan pads inside its convolutions, so its indices are smaller.
- UnetGenerator: nested ``UnetSkipConnectionBlock``s; the block at depth d has its
  down-convolution at ``model.0`` (outermost) or ``model.1``, its up-convolution at
  ``model.3`` (outermost, innermost) or ``model.5``, its sub-block at ``model.1``
  (outermost) or ``model.3``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from geogan.contract.checkpoint import CheckpointMeta, DomainMeta, GeneratorMeta
from geogan.contract.choices import sides_of
from geogan.contract.limits import WEIGHT_DTYPES, dtype_name, is_weight_dtype
from geogan.errors import CheckpointError, InputError, first_line

log = logging.getLogger(__name__)

#: What the bands of their models are: they train on RGB (3) or grayscale (1) pictures.
PICTURE_BANDS: dict[int, list[str]] = {3: ["red", "green", "blue"], 1: ["gray"]}
#: The tensor names of their generators: ``model.<i>.`` (Resnet, with ``conv_block.<j>.``
#: inside a residual block) or nested ``model.model.<i>.`` (Unet) blocks, then the tensor.
_THEIR_KEY = re.compile(r"model(?:\.\d+\.conv_block|\.model(?:\.\d+\.model)*)?\.\d+\."
                        r"(?:weight|bias|running_mean|running_var|num_batches_tracked)")


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A plain ``{name: tensor}`` state dict from ``path``, read with ``weights_only=True``."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p} does not exist; give a .pth file of pytorch-CycleGAN-and-pix2pix")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for anything but plain tensors and containers
        raise CheckpointError(f"{p} is not a plain tensor state dict ({first_line(exc)}); "
                              "geogan imports only weights saved with torch.save(state_dict)"
                              ) from exc
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise CheckpointError(f"{p} is not a plain tensor state dict of a generator; geogan "
                              "imports only weights saved with torch.save(net.state_dict())")
    state = {k.removeprefix("module."): v for k, v in obj.items()}  # DataParallel saves
    for key in state:
        if not _THEIR_KEY.fullmatch(key):
            raise CheckpointError(f"{p} holds tensor {key[:80]!r}, which is not a layer of a "
                                  "ResnetGenerator or UnetGenerator of pytorch-CycleGAN-and-"
                                  "pix2pix; geogan imports only their generators' state dicts")
    for key, value in state.items():
        if not is_weight_dtype(str(value.dtype)) and not key.endswith(".num_batches_tracked"):
            raise CheckpointError(f"{p}: tensor {key} holds {dtype_name(str(value.dtype))} "
                                  f"values; geogan imports weights stored as "
                                  f"{', '.join(WEIGHT_DTYPES.values())} only (a cast would "
                                  "not give the trained network)")
    return state


def convert_generator(state: dict[str, Any], source: str = "weights"
                      ) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(arch, kwargs, geogan state dict)`` for one of their generator state dicts."""
    if "model.1.weight" in state and any(".conv_block." in k for k in state):
        return _convert_resnet(state, source)
    if "model.model.0.weight" in state:
        return _convert_unet(state, source)
    raise CheckpointError(f"{source} is not a ResnetGenerator or UnetGenerator state dict of "
                          "pytorch-CycleGAN-and-pix2pix (no model.1.weight or "
                          "model.model.0.weight)")


def _conv_weight(state: dict[str, Any], key: str, source: str) -> Any:
    """The 4-D convolution weight ``key`` the architecture is read from, or one line."""
    weight = state.get(key)
    if weight is None or weight.dim() != 4:
        raise CheckpointError(f"{source}: {key} is " + ("missing" if weight is None else
                              f"shaped {tuple(weight.shape)}, not a convolution's weight") +
                              "; geogan imports only generators of pytorch-CycleGAN-and-pix2pix")
    return weight


def _norm_kind(state: dict[str, Any], prefix: str) -> str:
    return "batch" if f"{prefix}.running_mean" in state else "instance"


def _convert_resnet(state: dict[str, Any], source: str) -> tuple[str, dict[str, Any],
                                                                 dict[str, Any]]:
    blocks = sorted({int(m.group(1)) for k in state
                     if (m := re.match(r"model\.(\d+)\.conv_block\.", k))})
    n = len(blocks)
    if blocks != list(range(10, 10 + n)) or n not in (6, 9):
        raise CheckpointError(f"{source}: a ResnetGenerator with {n} residual blocks; geogan "
                              "has resnet_6blocks and resnet_9blocks")
    dropout = "model.10.conv_block.6.weight" in state
    second = 6 if dropout else 5
    w0 = _conv_weight(state, "model.1.weight", source)
    ngf, in_channels = int(w0.shape[0]), int(w0.shape[1])
    out_channels = int(_conv_weight(state, f"model.{17 + n}.weight", source).shape[0])
    norm = _norm_kind(state, "model.2")
    # their index -> geogan's index in ``model``; norms follow their convolution
    mapping = {1: 0, 4: 3, 7: 6, 10 + n: 9 + n, 13 + n: 12 + n, 17 + n: 15 + n}
    renamed: dict[str, Any] = {}
    for key, value in state.items():
        parts = key.split(".")
        i = int(parts[1])
        if ".conv_block." in key:
            j = int(parts[3])
            inner = {1: 0, 2: 1, second: (4 if dropout else 3), second + 1: (5 if dropout else 4)}
            if j not in inner:
                raise CheckpointError(f"{source}: unexpected tensor {key}")
            renamed[f"model.{i - 1}.block.{inner[j]}.{'.'.join(parts[4:])}"] = value
            continue
        base = i if i in mapping else i - 1  # a norm right after a mapped convolution
        if base not in mapping:
            raise CheckpointError(f"{source}: unexpected tensor {key}")
        shift = 0 if i in mapping else 1
        renamed[f"model.{mapping[base] + shift}.{'.'.join(parts[2:])}"] = value
    arch = f"resnet_{n}blocks"
    kwargs = {"in_channels": in_channels, "out_channels": out_channels, "ngf": ngf,
              "norm": norm, "use_dropout": dropout}
    return arch, kwargs, renamed


def _convert_unet(state: dict[str, Any], source: str) -> tuple[str, dict[str, Any],
                                                               dict[str, Any]]:
    prefixes = ["model.model."]
    while f"{prefixes[-1]}{1 if len(prefixes) == 1 else 3}.model.1.weight" in state:
        prefixes.append(f"{prefixes[-1]}{1 if len(prefixes) == 1 else 3}.model.")
    num_downs = len(prefixes)
    if num_downs not in (7, 8):
        raise CheckpointError(f"{source}: a UnetGenerator with {num_downs} levels; geogan has "
                              "unet_128 (7) and unet_256 (8)")
    w0 = _conv_weight(state, "model.model.0.weight", source)
    ngf, in_channels = int(w0.shape[0]), int(w0.shape[1])
    # ConvTranspose: (in, out, ...)
    out_channels = int(_conv_weight(state, "model.model.3.weight", source).shape[1])
    norm = _norm_kind(state, f"{prefixes[1]}2")
    dropout = False
    renamed: dict[str, Any] = {}
    for d, prefix in enumerate(prefixes):
        outer, inner = d == 0, d == num_downs - 1
        down = 0 if outer else 1
        up = 3 if (outer or inner) else 5
        layout = {down: f"downs.{d}.{0 if outer else 1}", up: f"ups.{d}.1"}
        if not outer and not inner:
            layout[2] = f"downs.{d}.2"       # down norm
            layout[6] = f"ups.{d}.2"         # up norm
        if inner:
            layout[4] = f"ups.{d}.2"
        sub = None if inner else (1 if outer else 3)
        for key, value in state.items():
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix):].split(".")
            idx = int(rest[0])
            if idx == sub:
                continue  # the sub-block's tensors, taken at the next depth
            if idx == 7 and not outer and not inner:
                dropout = True
            if idx not in layout:
                raise CheckpointError(f"{source}: unexpected tensor {key}")
            renamed[f"{layout[idx]}.{'.'.join(rest[1:])}"] = value
    arch = "unet_256" if num_downs == 8 else "unet_128"
    kwargs = {"in_channels": in_channels, "out_channels": out_channels, "ngf": ngf,
              "norm": norm, "use_dropout": dropout}
    return arch, kwargs, renamed


def import_generators(a2b: str | os.PathLike[str], output: str | os.PathLike[str], *,
                      b2a: str | os.PathLike[str] | None = None, name_a: str = "A",
                      name_b: str = "B", chip_size: int = 256, overwrite: bool = False) -> Path:
    """Write a geogan checkpoint from their ``G_A`` (``a2b``) and optional ``G_B`` weights."""
    from geogan.checkpoint import save_checkpoint
    from geogan.fileio import check_output_file
    from geogan.models import build_generator
    from geogan.normalize import BandNorm
    from geogan.weights import check_weights, expected_state

    out = Path(output)
    if out.suffix != ".safetensors":
        raise InputError(f"-o {out} must end in .safetensors")
    check_output_file(out, overwrite)
    check_output_file(out.with_suffix(".json"), overwrite)
    generators: dict[str, GeneratorMeta] = {}
    tensors: dict[str, Any] = {}
    bands: dict[str, int] = {}
    for direction, key, path in (("a2b", "G_A2B", a2b), ("b2a", "G_B2A", b2a)):
        if path is None:
            continue
        arch, kwargs, renamed = convert_generator(load_state_dict(path), str(path))
        # names, shapes and types checked against the network built on the meta device
        # (no memory), and ngf bounded, before the real one is built
        check_weights(str(path), arch, {k: (v.shape, str(v.dtype)) for k, v in renamed.items()},
                      expected_state(str(path), arch, kwargs))
        net = build_generator(arch, **kwargs)
        try:
            net.load_state_dict(renamed, strict=True)
        except RuntimeError as exc:  # pragma: no cover - check_weights has compared them
            raise CheckpointError(f"{path}: the weights do not fit {arch} "
                                  f"({first_line(exc)})") from exc
        generators[direction] = GeneratorMeta(key, arch, kwargs)
        tensors.update({f"{key}.{k}": v for k, v in net.state_dict().items()})
        src, dst = sides_of(direction)
        for side, count in ((src, kwargs["in_channels"]), (dst, kwargs["out_channels"])):
            if bands.setdefault(side, count) != count:
                raise CheckpointError(f"{a2b} and {b2a} disagree on the bands of domain "
                                      f"{side.upper()} ({bands[side]} vs {count})")
    domains = {side: DomainMeta(name=name,
                                norm=BandNorm.full_range("uint8", bands[side]).to_json(),
                                bands=bands[side], dtype="uint8", nodata=None,
                                band_names=PICTURE_BANDS.get(bands[side]))
               for side, name in (("a", name_a), ("b", name_b))}
    arch = generators["a2b"].arch
    meta = CheckpointMeta(
        model="cyclegan" if b2a is not None else "pix2pix", generators=generators,
        domains=domains, chip_size=chip_size,
        size_multiple=4 if arch.startswith("resnet") else 2 ** (8 if arch == "unet_256" else 7),
        inference_only=True, step=0, epoch=0,
        extra={"imported_from": "pytorch-CycleGAN-and-pix2pix"})
    path = save_checkpoint(out, tensors, meta)
    log.info("imported %s into %s", ", ".join(str(p) for p in (a2b, b2a) if p), path)
    return path
