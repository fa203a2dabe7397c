"""The normalisation layers: the generator's instance-norm layers found, and a copy of it whose
layers normalise with statistics given from outside (:class:`PreparedModule`)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from geogan.normstats.statsfile import NormStats

if TYPE_CHECKING:
    import torch
    from torch import nn


def norm_layers(module: nn.Module) -> list[tuple[str, nn.InstanceNorm2d]]:
    """The generator's instance-norm layers that normalise by each input's own statistics."""
    from torch import nn

    return [(name, m) for name, m in module.named_modules()
            if isinstance(m, nn.InstanceNorm2d) and not m.track_running_stats]


def _stats_norm_class() -> type:
    import torch
    import torch.nn.functional as F  # noqa: N812
    from torch import nn

    class StatsNorm(nn.Module):
        """An instance-norm layer that normalises with statistics it is given.

        ``mode`` is ``frozen`` (use the ``mean``/``var`` buffers, ``(C,)``, or the
        ``(C, rows, cols)`` grid interpolated at each pixel for ``dense``),
        ``estimate`` (weighted statistics over the whole batch, stored and used:
        the global estimation in one pass), ``accumulate`` (weighted sums of a
        chunk added up, then stop: the global estimation layer by layer) or
        ``measure`` (weighted statistics of each window, used and kept per window:
        the dense estimation pass). Computed in
        float32 also under autocast; buffers only, so ``torch.compile`` traces it.
        """

        def __init__(self, channels: int, eps: float, weight: torch.Tensor | None,
                     bias: torch.Tensor | None) -> None:
            super().__init__()
            self.num_features = channels
            self.eps = eps
            self.mode = "frozen"
            self.dense = False
            self.register_buffer("mean", torch.zeros(channels))
            self.register_buffer("var", torch.ones(channels))
            self.weight = None if weight is None else nn.Parameter(weight.detach().clone(),
                                                                   requires_grad=False)
            self.bias = None if bias is None else nn.Parameter(bias.detach().clone(),
                                                               requires_grad=False)
            self.context: _Context | None = None
            self.measured: list[tuple[torch.Tensor, torch.Tensor]] = []
            self.shift: torch.Tensor | None = None
            self.sums: list[torch.Tensor] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            xf = x.float()  # (B, C, h, w)
            if self.mode == "frozen":
                if self.dense:
                    assert self.context is not None
                    mean, var = self.context.interpolate(self.mean, self.var, xf.shape[-2:])
                    y = torch.sub(xf, mean).mul_(torch.rsqrt(var + self.eps))
                else:
                    y = torch.sub(xf, self.mean.view(1, -1, 1, 1)).mul_(
                        torch.rsqrt(self.var + self.eps).view(1, -1, 1, 1))
            elif self.mode == "accumulate":
                self._accumulate(xf)
                raise SampleDone
            else:
                y = self._measure(xf)
            if self.weight is not None and self.bias is not None:
                y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
            return y.to(x.dtype)

        def _accumulate(self, xf: torch.Tensor) -> None:
            """Add a chunk's weighted sums, shifted by the first chunk's mean, in float64."""
            assert self.context is not None
            w = self.context.weights(xf.shape[-2:])[:, 0]  # (B, h, w)
            if self.shift is None:
                self.shift = (torch.einsum("bchw,bhw->c", xf, w) / w.sum().clamp_min(1e-12))
                self.sums = [torch.zeros((), dtype=torch.float64, device=xf.device),
                             torch.zeros_like(self.shift, dtype=torch.float64),
                             torch.zeros_like(self.shift, dtype=torch.float64)]
            for b in range(xf.shape[0]):
                d = xf[b] - self.shift[:, None, None]  # (C, h, w)
                self.sums[0] += w[b].sum().double()
                self.sums[1] += torch.einsum("chw,hw->c", d, w[b]).double()
                self.sums[2] += torch.einsum("chw,hw->c", d * d, w[b]).double()

        def finish(self) -> None:
            """Accumulated sums -> this layer's statistics; freeze it."""
            assert self.shift is not None
            total, s1, s2 = self.sums
            m = s1 / total
            self.mean.copy_(self.shift.double() + m)
            self.var.copy_((s2 / total - m * m).clamp_min(0))
            self.shift = None
            self.mode = "frozen"

        def _measure(self, xf: torch.Tensor) -> torch.Tensor:
            """Weighted mean and variance (two passes), kept; ``xf`` normalised with them.

            Works in place on ``xf`` (the output of the convolution before, used by
            nothing else) and one window at a time for the variance, so that the
            estimation batch needs no temporaries of its own size.
            """
            assert self.context is not None
            w = self.context.weights(xf.shape[-2:])[:, 0]  # (B, h, w)
            total = w.sum((1, 2))  # (B,)
            s1 = torch.einsum("bchw,bhw->bc", xf, w)  # (B, C)
            if self.mode == "estimate":  # over the whole batch
                mean = (s1.sum(0) / total.sum()).expand_as(s1)
            else:  # per window
                mean = s1 / total[:, None]
            s2 = torch.stack([torch.einsum("chw,hw->c", (xf[b] - mean[b, :, None, None]) ** 2,
                                           w[b]) for b in range(xf.shape[0])])  # (B, C)
            if self.mode == "estimate":
                var = (s2.sum(0) / total.sum()).expand_as(s2)
                self.mean.copy_(mean[0])
                self.var.copy_(var[0])
            else:
                var = s2 / total[:, None]
                self.measured.append((mean, var))
            self.context.pending -= 1
            if self.context.pending == 0:  # every layer measured: the rest is not needed
                raise SampleDone
            return xf.sub_(mean[:, :, None, None]).mul_(
                torch.rsqrt(var + self.eps)[:, :, None, None])

    class _Context:
        """What the layers share during one call: pixel weights or window positions."""

        def __init__(self) -> None:
            self.full: torch.Tensor | None = None  # (B, 1, T, T) pixel weights
            self._cache: dict[tuple[int, int], torch.Tensor] = {}
            self.origins: torch.Tensor | None = None  # (B, 2) raster (row, col) of pixel 0, 0
            self.tile = 0
            self.grid_y: torch.Tensor | None = None  # (rows,) raster rows of the cell centres
            self.grid_x: torch.Tensor | None = None
            self.pending = 0  # layers still to measure in this estimation call

        def set_weights(self, full: torch.Tensor) -> None:
            self.full = full
            self._cache = {}

        def weights(self, size: Any) -> torch.Tensor:
            key = (int(size[0]), int(size[1]))
            if key not in self._cache:
                assert self.full is not None
                self._cache[key] = F.adaptive_avg_pool2d(self.full, key)
            return self._cache[key]

        def interpolate(self, mean: torch.Tensor, var: torch.Tensor,
                        size: Any) -> tuple[torch.Tensor, torch.Tensor]:
            """Grid ``(C, rows, cols)`` -> per-pixel ``(B, C, h, w)`` mean and variance."""
            assert self.origins is not None and self.grid_y is not None
            assert self.grid_x is not None
            h, w = int(size[0]), int(size[1])
            ay = _axis_weights(self.origins[:, 0], self.tile, h, self.grid_y)  # (B, h, rows)
            ax = _axis_weights(self.origins[:, 1], self.tile, w, self.grid_x)  # (B, w, cols)
            std = var.clamp_min(0).sqrt()
            both = torch.cat([mean, std])  # (2C, rows, cols)
            out = torch.einsum("bhr,crk,bwk->bchw", ay, both, ax)
            m, s = out.chunk(2, dim=1)
            return m, s.square()

    def _axis_weights(origin: torch.Tensor, tile: int, n: int,
                      centres: torch.Tensor) -> torch.Tensor:
        """Linear interpolation weights ``(B, n, cells)`` of pixel centres between cell centres."""
        scale = tile / n
        pos = origin[:, None].float() + (torch.arange(n, device=origin.device) + 0.5) * scale - 0.5
        if centres.numel() == 1:
            return torch.ones(pos.shape + (1,), device=pos.device)
        idx = torch.searchsorted(centres, pos.contiguous()).clamp(1, centres.numel() - 1)
        left, right = centres[idx - 1], centres[idx]
        t = ((pos - left) / (right - left)).clamp(0.0, 1.0)
        out = torch.zeros(pos.shape + (centres.numel(),), device=pos.device)
        out.scatter_(-1, (idx - 1)[..., None], (1 - t)[..., None])
        out.scatter_add_(-1, idx[..., None], t[..., None])
        return out

    StatsNorm.Context = _Context  # type: ignore[attr-defined]
    return StatsNorm


_CLASS: list[type] = []


class SampleDone(Exception):
    """Raised by the last layer to measure, so an estimation pass skips the layers after it."""


def stats_norm_class() -> type:
    """The :class:`StatsNorm` module class (built on first use, so importing needs no torch)."""
    if not _CLASS:
        _CLASS.append(_stats_norm_class())
    return _CLASS[0]


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
        for layer in self.layers.values():
            layer.mode = mode
            layer.dense = False
            layer.measured = []

    def measure(self, x: torch.Tensor, weights: torch.Tensor) -> None:
        """One estimation pass over ``x`` with pixel weights (stops after the last measurement)."""
        self.context.set_weights(weights)
        self.context.pending = sum(layer.mode in ("estimate", "measure")
                                   for layer in self.layers.values())
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
