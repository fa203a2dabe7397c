"""What the rest of geogan asks of a generator, stated once and checked in one place.

A generator (:class:`Generator`) maps ``(B, in_channels, H, W)`` in ``[-1, 1]`` to
``(B, out_channels, H, W)`` and says

- ``size_multiple``: input height and width must be multiples of it (training crops,
  translate tiles, exports);
- ``min_size``: the smallest input side it takes;
- its normalisation layers: those that normalise each input by its own statistics must
  be ``nn.InstanceNorm2d`` (without running statistics), the layers ``translate --norm
  global|dense`` gives raster-wide statistics to. Any other layer that does so (a
  ``GroupNorm``, a ``LayerNorm``, or a module with ``normalises_per_input = True``)
  would keep per-window statistics under those modes: :func:`foreign_norm_layers` names
  it, and translation refuses those modes for such a generator
  (:func:`geogan.normstats.norm_layers`).

A model that reads encoder features (CUT's PatchNCE) also needs :class:`Encoder`:
``encode(x)`` returning one feature map per layer, with ``nce_channels`` giving their
channel counts before any forward.

:func:`check_generator` runs on every network :func:`geogan.models.build_generator`
returns, so a new architecture that misses one of these fails the first time it is
built, with a message naming what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class Generator(Protocol):
    """A translation network geogan can train, save, translate with and export."""

    size_multiple: int
    min_size: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Encoder(Generator, Protocol):
    """A generator whose encoder features a model reads (CUT's PatchNCE)."""

    nce_channels: Sequence[int]

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]: ...


class GeneratorContractError(TypeError):
    """A generator class that does not provide what :class:`Generator` states."""


#: Layers that normalise each input by its own statistics and that geogan cannot give
#: other statistics to (only ``nn.InstanceNorm2d`` is swapped, see geogan.normstats).
_PER_INPUT_NORMS: tuple[type[nn.Module], ...] = (
    nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm, nn.InstanceNorm1d, nn.InstanceNorm3d)


def instance_norm_layers(module: nn.Module) -> list[tuple[str, nn.InstanceNorm2d]]:
    """The instance-norm layers that normalise by each input's own statistics."""
    return [(name, m) for name, m in module.named_modules()
            if isinstance(m, nn.InstanceNorm2d) and not m.track_running_stats]


def foreign_norm_layers(module: nn.Module) -> list[tuple[str, str]]:
    """``(name, class name)`` of layers normalising by each input's own statistics that are
    not ``nn.InstanceNorm2d``: what ``--norm global|dense`` could not reach."""
    return [(name, type(m).__name__) for name, m in module.named_modules()
            if not isinstance(m, nn.InstanceNorm2d)
            and (isinstance(m, _PER_INPUT_NORMS) or getattr(m, "normalises_per_input", False))]


def size_multiple(module: nn.Module) -> int:
    """Input height and width must be multiples of this (4 for ResNet, 256 for U-Net 256)."""
    value = getattr(module, "size_multiple", None)
    if not isinstance(value, int) or value < 1:
        raise GeneratorContractError(f"{type(module).__name__} has no size_multiple (a positive "
                                     "int): state it as a class or instance attribute")
    return value


def check_generator(net: nn.Module, arch: str, *, encoder: bool = False) -> None:
    """Raise :class:`GeneratorContractError` naming what generator ``arch`` lacks."""
    what = f"generator {arch!r} ({type(net).__module__}.{type(net).__qualname__})"
    for attr in ("size_multiple", "min_size"):
        value = getattr(net, attr, None)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise GeneratorContractError(f"{what} does not state {attr} (a positive int), "
                                         "which geogan.models.protocol.Generator asks for")
    if encoder and not isinstance(net, Encoder):
        raise GeneratorContractError(f"{what} exposes no encoder features (encode and "
                                     "nce_channels), which this model reads")
