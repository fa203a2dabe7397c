"""The normalisation layers: the generator's instance-norm layers found, and a copy of it whose
layers normalise with statistics given from outside (:class:`PreparedModule`); the layer
itself and its estimators are in :mod:`geogan.normstats.statsnorm`."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from geogan.errors import InputError
from geogan.normstats.statsfile import NormStats

if TYPE_CHECKING:
    import torch
    from torch import nn


def norm_layers(module: nn.Module) -> list[tuple[str, nn.InstanceNorm2d]]:
    """The generator's instance-norm layers that normalise by each input's own statistics:
    the layers ``global`` and ``dense`` statistics replace.

    Raises :class:`InputError` when the generator also normalises by each input's own
    statistics with layers of another kind (:func:`geogan.models.protocol.foreign_norm_layers`),
    which those modes could not reach: they would silently stay per window.
    """
    from geogan.models.protocol import foreign_norm_layers, instance_norm_layers

    foreign = foreign_norm_layers(module)
    if foreign:
        names = ", ".join(repr(n) for n, _ in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise InputError(f"the generator normalises each window by its own statistics with "
                         f"{foreign[0][1]} layers ({names}), which `norm` global and dense "
                         "cannot give statistics to; pass `norm` window")
    return instance_norm_layers(module)


def stats_norm_class() -> type:
    """The :class:`~geogan.normstats.statsnorm.StatsNorm` module class (imported on first
    use, so importing this module needs no torch)."""
    from geogan.normstats.statsnorm import StatsNorm

    return StatsNorm


@dataclass
class PreparedModule:
    """A copy of a generator whose instance-norm layers take given statistics."""

    module: Any  # nn.Module
    layers: dict[str, Any]  # name -> StatsNorm
    context: Any

    def load(self, stats: NormStats, device: str) -> None:
        """Put ``stats`` into the layers' buffers, on ``device``, and freeze the layers."""
        import torch

        dense = stats.mode == "dense"
        for name, layer in self.layers.items():
            mean, var = stats.layers[name]
            layer.mean = torch.as_tensor(mean, dtype=torch.float32, device=device)
            layer.var = torch.as_tensor(var, dtype=torch.float32, device=device)
            layer.dense = dense
            layer.mode = "frozen"
        if dense:
            assert stats.grid is not None
            self.context.grid_y = torch.as_tensor(stats.grid["y"], dtype=torch.float32,
                                                  device=device)
            self.context.grid_x = torch.as_tensor(stats.grid["x"], dtype=torch.float32,
                                                  device=device)

    def set_mode(self, mode: str) -> None:
        """Every layer ``frozen`` (window statistics off) or measuring as ``mode`` says."""
        for layer in self.layers.values():
            layer.mode = mode
            layer.dense = False

    def measure(self, x: torch.Tensor, weights: torch.Tensor) -> None:
        """One estimation pass over ``x`` with pixel weights (stops after the last measurement)."""
        self.context.set_weights(weights)
        self.context.pending = sum(layer.mode in ("estimate", "measure")
                                   for layer in self.layers.values())
        from geogan.normstats.statsnorm import SampleDone

        try:
            self.module(x)
        except SampleDone:
            pass

    def set_windows(self, origins: Sequence[tuple[int, int]], tile: int) -> None:
        """Raster ``(row, col)`` of each window's first pixel, for ``dense`` statistics."""
        import torch

        device = self.context.grid_y.device if self.context.grid_y is not None else "cpu"
        self.context.origins = torch.tensor(origins, dtype=torch.float32, device=device)
        self.context.tile = tile


_PREPARED: dict[int, tuple[Any, PreparedModule]] = {}


def prepared_for(module: nn.Module) -> PreparedModule:
    """The prepared copy of ``module``, made once and reused (a compiled one too)."""
    key = id(module)
    if key not in _PREPARED or _PREPARED[key][0] is not module:
        _PREPARED.clear()
        _PREPARED[key] = (module, prepare(module))
    return _PREPARED[key][1]


def prepare(module: nn.Module) -> PreparedModule:
    """A deep copy of ``module`` with each instance-norm layer replaced by a :class:`StatsNorm`."""
    cls = stats_norm_class()
    copied = copy.deepcopy(module)
    context = cls.Context()
    layers: dict[str, Any] = {}
    for name, old in norm_layers(copied):
        new = cls(old.num_features, old.eps, old.weight if old.affine else None,
                  old.bias if old.affine else None)
        new.context = context
        new.to(next((p.device for p in old.parameters()), _device_of(copied)))
        parent_name, _, child = name.rpartition(".")
        parent = copied.get_submodule(parent_name) if parent_name else copied
        setattr(parent, child, new)
        layers[name] = new
    return PreparedModule(copied, layers, context)


def _device_of(module: nn.Module) -> Any:
    import torch

    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device("cpu")
