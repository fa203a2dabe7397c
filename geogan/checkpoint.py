"""Self-describing checkpoints: safetensors weights plus JSON metadata.

A checkpoint is ``NAME.safetensors`` (tensors only, never pickle) with its JSON
metadata both in the safetensors header and in a sidecar ``NAME.json`` for people
and other tools. The metadata names the architecture and its arguments, the
bands and normalisation of each domain, the chip size and the directions, so a
checkpoint rebuilds its generators with nothing but itself, on a machine without
a GPU.

The metadata is a :class:`geogan.contract.checkpoint.CheckpointMeta` (its schema is
stated there), written by :func:`save_checkpoint` and read back typed
(:func:`load_model`, :func:`load_generator`, :func:`read_checkpoint_meta`).

Tensor names are ``<generator or discriminator key>.<state_dict key>``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geogan import __version__
from geogan.contract import checkpoint as schema
from geogan.contract.choices import sides_of
from geogan.errors import CheckpointError, GeoganError, first_line
from geogan.fileio import (
    current_umask,
    fault_point,
    fsync_path,
    remove_leftovers,
    temp_path,
    write_error,
)
from geogan.normalize import BandNorm

log = logging.getLogger(__name__)


@dataclass
class LoadedGenerator:
    """A generator ready for inference with the normalisation of its two sides."""

    module: Any  # torch.nn.Module, in eval mode
    direction: str
    in_norm: BandNorm
    out_norm: BandNorm
    #: The checkpoint's metadata, typed (None for a module not loaded from a checkpoint).
    checkpoint: schema.CheckpointMeta | None = None
    #: The checkpoint file it was loaded from (its SHA-256 goes into the outputs).
    path: Path | None = None

    @property
    def generator_meta(self) -> schema.GeneratorMeta | None:
        """Architecture and arguments of this generator, if its checkpoint names them."""
        if self.checkpoint is None:
            return None
        return self.checkpoint.generators.get(self.direction)

    def sides(self) -> tuple[schema.DomainMeta | None, schema.DomainMeta | None]:
        """The (source, target) domains of this generator, where its checkpoint has them."""
        if self.checkpoint is None:
            return None, None
        src, dst = sides_of(self.direction)
        return self.checkpoint.domains.get(src), self.checkpoint.domains.get(dst)

    @property
    def in_bands(self) -> int:
        return self.in_norm.bands

    @property
    def out_bands(self) -> int:
        return self.out_norm.bands


def resolve_checkpoint_path(path: str | os.PathLike[str]) -> Path:
    """Accept a ``.safetensors`` file, its ``.json`` sidecar, or a training run folder."""
    try:
        return schema.resolve_checkpoint(path)
    except schema.MetadataError as exc:
        raise CheckpointError(str(exc)) from exc


def save_checkpoint(path: str | os.PathLike[str], tensors: dict[str, Any],
                    meta: schema.CheckpointMeta) -> Path:
    """Write a model's tensors and metadata atomically; return the path (see :func:`save_record`).

    The metadata is written as this geogan's (its version and the current format version).
    """
    meta = dataclasses.replace(meta, geogan_version=__version__,
                               format_version=schema.FORMAT_VERSION)
    return save_record(path, tensors, meta.to_json())


def save_record(path: str | os.PathLike[str], tensors: dict[str, Any],
                record: dict[str, Any]) -> Path:
    """Write tensors and a JSON record atomically (temp file, fsync, rename); return the path.

    The record of a model is its :class:`~geogan.contract.checkpoint.CheckpointMeta`
    (:func:`save_checkpoint`); a run's training state (optimisers, pools, step) is a
    record of its own. The previous file at ``path`` stays intact until the new one is
    complete.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    full_meta = {"format": schema.FORMAT, "format_version": schema.FORMAT_VERSION,
                 "geogan_version": __version__, **record}
    text = json.dumps(full_meta, indent=2, sort_keys=True)
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    sidecar = path.with_suffix(".json")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path, exc) from exc
    remove_leftovers(path)
    remove_leftovers(sidecar)
    # safetensors writes a temporary of its own beside the file it saves (".tmpXXXXXX"),
    # which a kill would leave behind; so it saves into a hidden folder named as geogan's
    # temporaries are, which the next save over this path removes if a kill left it.
    tmp_dir, tmp_json = temp_path(path, suffix=""), temp_path(sidecar)
    tmp = tmp_dir / path.name
    try:
        try:
            tmp_dir.mkdir()
            save_file(contiguous, str(tmp), metadata={schema.HEADER_KEY: text})
            os.chmod(tmp, 0o666 & ~current_umask())
            fsync_path(tmp)
            tmp_json.write_text(text + "\n")
            fsync_path(tmp_json)
            fault_point("before-rename", path)
            os.replace(tmp, path)  # the commit point: the header is the metadata
            fault_point("between-renames", path)
            os.replace(tmp_json, sidecar)
        except GeoganError:
            raise
        except Exception as exc:  # OSError, or safetensors' own error for a full disk
            raise write_error(path, exc) from exc
        fault_point("after-rename", path)
    except BaseException:
        tmp_json.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    log.debug("saved checkpoint %s", path)
    return path


def repair_sidecar(path: str | os.PathLike[str]) -> bool:
    """Rewrite ``NAME.json`` from the safetensors header when they differ; True if it did.

    A kill between the two renames of :func:`save_checkpoint` leaves the new weights with
    the old sidecar; the header, written in the same file as the weights, is the truth.
    """
    from safetensors import safe_open

    from geogan.fileio import atomic_output

    p = resolve_checkpoint_path(path)
    with safe_open(str(p), framework="pt") as fh:
        text = (fh.metadata() or {}).get(schema.HEADER_KEY)
    sidecar = p.with_suffix(".json")
    remove_leftovers(p)
    remove_leftovers(sidecar)
    if text is None or (sidecar.is_file() and sidecar.read_text() == text + "\n"):
        return False
    with atomic_output(sidecar, overwrite=True) as tmp:
        tmp.write_text(text + "\n")
    return True


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a checkpoint, read from its safetensors header (no tensors loaded)."""
    from safetensors import safe_open

    p = resolve_checkpoint_path(path)
    try:
        with safe_open(str(p), framework="pt") as fh:
            header = fh.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"checkpoint {p} is truncated or not a safetensors file ({exc}); "
                              "use another checkpoint or retrain") from exc
    return _parse_meta(p, header.get(schema.HEADER_KEY))


def load_checkpoint(path: str | os.PathLike[str],
                    prefix: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load ``(tensors, metadata)`` on the CPU; with ``prefix``, only tensors under it."""
    from safetensors import safe_open

    p = resolve_checkpoint_path(path)
    try:
        with safe_open(str(p), framework="pt", device="cpu") as fh:
            meta = _parse_meta(p, (fh.metadata() or {}).get(schema.HEADER_KEY))
            keys = [k for k in fh.keys() if prefix is None or k.startswith(prefix + ".")]
            tensors = {k: fh.get_tensor(k) for k in keys}
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"checkpoint {p} is truncated or not a safetensors file ({exc}); "
                              "use another checkpoint or retrain") from exc
    return tensors, meta


def _parse_meta(p: Path, text: str | None) -> dict[str, Any]:
    """The checked metadata JSON (geogan.contract.checkpoint.parse_meta) as a CheckpointError.

    The metadata of a model (one with generators) is also checked for values geogan
    refuses (:func:`geogan.contract.checkpoint.typed_meta`): a network wider than it builds, a
    normalisation that is not finite in float32.
    """
    try:
        meta = schema.parse_meta(p, text)
        if "generators" in meta:
            schema.typed_meta(p, meta)
    except schema.MetadataError as exc:
        raise CheckpointError(str(exc)) from exc
    return meta


def _typed_meta(p: Path, text: str | None) -> schema.CheckpointMeta:
    """The checked, typed metadata of model checkpoint ``p`` (a CheckpointError if none)."""
    try:
        return schema.typed_meta(p, schema.parse_meta(p, text))
    except schema.MetadataError as exc:
        raise CheckpointError(str(exc)) from exc


def load_model(path: str | os.PathLike[str]
               ) -> tuple[dict[str, Any], schema.CheckpointMeta]:
    """``(tensors, typed metadata)`` of a model checkpoint, on the CPU."""
    tensors, meta = load_checkpoint(path)
    try:
        return tensors, schema.typed_meta(Path(path), meta)
    except schema.MetadataError as exc:
        raise CheckpointError(str(exc)) from exc


def read_checkpoint_meta(path: str | os.PathLike[str]) -> schema.CheckpointMeta:
    """The typed metadata of a checkpoint (file, sidecar or run folder), without tensors."""
    try:
        return schema.read_checkpoint_meta(path)
    except schema.MetadataError as exc:
        raise CheckpointError(str(exc)) from exc


def strip_prefix(tensors: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``{"G_A2B.conv.weight": t}`` -> ``{"conv.weight": t}`` for keys under ``prefix``."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def load_generator(path: str | os.PathLike[str], direction: str = "a2b",
                   device: str = "cpu") -> LoadedGenerator:
    """Rebuild the generator for ``direction`` ("a2b" or "b2a") from a checkpoint alone.

    The metadata is checked first (:func:`_parse_meta`), then the stored names, shapes and
    types of the generator's tensors against the network it names, read from the
    safetensors header (:mod:`geogan.weights`); only then are its tensors read and the
    network built, so a file that claims a huge network is refused without allocating it.
    """
    from geogan.models import build_generator

    p = resolve_checkpoint_path(path)
    typed, state = _read_generator(p, direction)
    spec = typed.generators[direction]
    module = build_generator(spec.arch, **spec.kwargs)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # pragma: no cover - check_weights has compared them
        raise CheckpointError(f"weights in {p} do not fit architecture {spec.arch}: "
                              f"{first_line(exc)}") from exc
    module.eval().to(device)
    src, dst = typed.sides(direction)
    return LoadedGenerator(module, direction, BandNorm.from_json(src.norm),
                           BandNorm.from_json(dst.norm), typed, path=p)


def _read_generator(p: Path, direction: str) -> tuple[schema.CheckpointMeta, dict[str, Any]]:
    """``(typed metadata, state dict)`` of the ``direction`` generator of ``p``,
    its tensors read only once their names, shapes and types fit the network it names."""
    from safetensors import safe_open

    from geogan.weights import check_weights, expected_state

    try:
        with safe_open(str(p), framework="pt", device="cpu") as fh:
            typed = _typed_meta(p, (fh.metadata() or {}).get(schema.HEADER_KEY))
            if direction not in typed.generators:
                raise CheckpointError(f"checkpoint {p} has no '{direction}' generator; "
                                      f"available: {', '.join(typed.directions) or 'none'}")
            spec = typed.generators[direction]
            prefix = spec.key + "."
            keys = {k[len(prefix):]: k for k in fh.keys() if k.startswith(prefix)}
            stored = {name: (fh.get_slice(k).get_shape(), fh.get_slice(k).get_dtype())
                      for name, k in keys.items()}
            check_weights(f"checkpoint {p}", spec.arch, stored,
                          expected_state(f"checkpoint {p}", spec.arch, spec.kwargs))
            state = {name: fh.get_tensor(k) for name, k in keys.items()}
    except GeoganError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"metadata of checkpoint {p} does not describe a geogan model "
                              f"({type(exc).__name__}: {first_line(exc)}); use a checkpoint "
                              "written by geogan") from exc
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"checkpoint {p} is truncated or not a safetensors file ({exc}); "
                              "use another checkpoint or retrain") from exc
    return typed, state


# -- training state (for ``geogan train --resume``) --------------------------------------


def optimizer_state_to_tensors(state_dict: dict[str, Any],
                               prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors ``{prefix}.{param}.{name}`` and JSON.

    Tensors go to safetensors; numbers and the param groups go to the JSON part,
    so nothing needs pickle.
    """
    import torch

    tensors: dict[str, Any] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state_dict["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{idx}.{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
              for g in state_dict["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_state_from_tensors(tensors: dict[str, Any], meta: dict[str, Any],
                                 prefix: str) -> dict[str, Any]:
    """Inverse of :func:`optimizer_state_to_tensors`: a dict for ``load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            idx, name = key[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    for idx, entries in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(entries)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()}
              for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def save_inference_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str],
                              overwrite: bool = False) -> Path:
    """Copy a checkpoint keeping only its generators: a smaller file to share or ship.

    The discriminators and the training state are dropped; the metadata (bands,
    normalisation, architecture) is kept, so ``dst`` translates exactly like ``src``.
    """
    from geogan.fileio import check_output_file

    dst = Path(dst)
    if dst.suffix != ".safetensors":
        raise CheckpointError(f"{dst} must end in .safetensors")
    check_output_file(dst, overwrite)
    check_output_file(dst.with_suffix(".json"), overwrite)
    tensors, meta = load_model(src)
    keys = [spec.key for spec in meta.generators.values()]
    if not keys:
        raise CheckpointError(f"checkpoint {src} holds no generator")
    kept = {k: v for k, v in tensors.items() if any(k.startswith(p + ".") for p in keys)}
    return save_checkpoint(dst, kept, dataclasses.replace(meta, discriminators={},
                                                          inference_only=True))
