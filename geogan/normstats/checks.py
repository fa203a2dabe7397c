"""Whether statistics belong to a generator and a raster: the fingerprint of the generator's
weights they carry, and the checks that refuse a file made for another model or raster."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from geogan.errors import InputError
from geogan.normstats.layers import norm_layers
from geogan.normstats.statsfile import NormStats

if TYPE_CHECKING:
    from geogan.checkpoint import LoadedGenerator


def model_identity(generator: LoadedGenerator) -> dict[str, Any]:
    """Fingerprint of the generator: SHA-256 of its weights (names, shapes, bytes) + direction."""
    import torch

    h = hashlib.sha256(generator.direction.encode())
    for name, tensor in sorted(generator.module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    arch = generator.generator_meta.arch if generator.generator_meta else None
    return {"sha256": h.hexdigest(), "direction": generator.direction, "arch": arch}


def check_stats(stats: NormStats, generator: LoadedGenerator, mode: str, source: str) -> None:
    """Refuse statistics made for another generator, or of another mode, in one line."""
    if stats.mode != mode:
        raise InputError(f"{source} holds {stats.mode} statistics but `norm` is {mode}; pass "
                         f"`norm` {stats.mode} or another statistics file")
    ident = model_identity(generator)
    if stats.model.get("sha256") != ident["sha256"]:
        raise InputError(f"{source} was made for another model ({stats.model.get('arch')}, "
                         f"{stats.model.get('direction')}, weights "
                         f"{str(stats.model.get('sha256'))[:12]}) than this checkpoint's "
                         f"{ident['direction']} generator (weights {ident['sha256'][:12]}); "
                         "estimate statistics for this model (drop `stats`)")
    names = dict(norm_layers(generator.module))
    if set(stats.layers) != set(names):
        raise InputError(f"{source} does not list this generator's normalisation layers; "
                         "estimate statistics for this model (drop `stats`)")
    for name, (mean, _) in stats.layers.items():
        if mean.shape[0] != names[name].num_features:
            raise InputError(f"{source} has {mean.shape[0]} channels for layer {name}, the "
                             f"generator {names[name].num_features}; drop `stats`")


def check_dense_fits(stats: NormStats, width: int, height: int, source: str) -> None:
    """Dense statistics belong to one raster's pixel grid."""
    grid = stats.grid or {}
    if (grid.get("width"), grid.get("height")) != (width, height):
        raise InputError(f"{source} holds dense statistics of a {grid.get('width')} x "
                         f"{grid.get('height')} px raster, not {width} x {height}; use `norm` "
                         "global to share statistics between rasters")
