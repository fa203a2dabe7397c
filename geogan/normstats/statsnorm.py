"""The layer that takes an instance-norm layer's place (:class:`StatsNorm`), and the
estimators that measure statistics through it.

A :class:`StatsNorm` on its own is frozen: it normalises with the ``mean``/``var`` buffers
it holds, ``(C,)``, or with the ``(C, rows, cols)`` grid interpolated at each pixel for
``dense``. Estimating statistics puts an estimator in it (its ``mode``), which takes over
the forward pass:

``estimate``  (:class:`BatchEstimate`) weighted statistics over the whole batch, stored
              and used: the global estimation in one pass;
``accumulate`` (:class:`Accumulate`) weighted sums of a chunk added up, then stop: the
              global estimation layer by layer, a chunk in parts if need be
              (:meth:`Accumulate.add`; :meth:`StatsNorm.finish` freezes them);
``measure``   (:class:`MeasureWindows`) weighted statistics of each window, used and kept
              per window: the dense estimation pass.

Computed in float32 also under autocast; the frozen layer holds buffers only, so
``torch.compile`` traces it. Importing this module needs torch; :mod:`.layers` imports it
on first use.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


class SampleDone(Exception):
    """Raised by the last layer to measure, so an estimation pass skips the layers after it."""


class NormContext:
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


class StatsNorm(nn.Module):
    """An instance-norm layer that normalises with statistics it is given (frozen), or
    measures them through the estimator its ``mode`` names."""

    Context = NormContext

    def __init__(self, channels: int, eps: float, weight: torch.Tensor | None,
                 bias: torch.Tensor | None) -> None:
        super().__init__()
        self.num_features = channels
        self.eps = eps
        self.dense = False
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("var", torch.ones(channels))
        self.weight = None if weight is None else nn.Parameter(weight.detach().clone(),
                                                               requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(),
                                                           requires_grad=False)
        self.context: NormContext | None = None
        self.estimator: Estimator | None = None

    @property
    def mode(self) -> str:
        return "frozen" if self.estimator is None else self.estimator.mode

    @mode.setter
    def mode(self, mode: str) -> None:
        """``frozen`` or an estimator's mode; a fresh estimator each time."""
        if mode == "frozen":
            self.estimator = None
        elif mode in ESTIMATORS:
            self.estimator = ESTIMATORS[mode]()
        else:
            raise ValueError(f"unknown StatsNorm mode {mode!r}")

    @property
    def measured(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-window ``(mean, var)``, each ``(B, C)``, of a ``measure`` pass."""
        return self.estimator.measured if isinstance(self.estimator, MeasureWindows) else []

    def finish(self) -> None:
        """Accumulated sums -> this layer's statistics; freeze it."""
        assert isinstance(self.estimator, Accumulate)
        self.estimator.add()
        self.estimator.finish(self)
        self.estimator = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()  # (B, C, h, w)
        y = self._frozen(xf) if self.estimator is None else self.estimator(self, xf)
        if self.weight is not None and self.bias is not None:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y.to(x.dtype)

    def _frozen(self, xf: torch.Tensor) -> torch.Tensor:
        if self.dense:
            assert self.context is not None
            mean, var = self.context.interpolate(self.mean, self.var, xf.shape[-2:])
            return torch.sub(xf, mean).mul_(torch.rsqrt(var + self.eps))
        return torch.sub(xf, self.mean.view(1, -1, 1, 1)).mul_(
            torch.rsqrt(self.var + self.eps).view(1, -1, 1, 1))


class Estimator:
    """Takes a :class:`StatsNorm`'s forward pass while statistics are estimated."""

    mode = ""

    def __call__(self, layer: StatsNorm, xf: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _pixel_weights(layer: StatsNorm, xf: torch.Tensor) -> torch.Tensor:
    assert layer.context is not None
    return layer.context.weights(xf.shape[-2:])[:, 0]  # (B, h, w)


class Accumulate(Estimator):
    """Weighted sums of each chunk, shifted by the first chunk's mean, in float64; the
    layer stops the pass (:class:`SampleDone`) once it has kept its input.

    A chunk may go through the network in parts (the layers before are frozen, so each
    window's activations do not depend on the others in its batch): the parts' inputs
    are kept and :meth:`add` adds the whole chunk's sums, exactly as if it had gone in
    one batch, while the activations of only one part are alive at a time.
    """

    mode = "accumulate"

    def __init__(self) -> None:
        self.shift: torch.Tensor | None = None
        self.sums: list[torch.Tensor] = []
        self.parts: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, layer: StatsNorm, xf: torch.Tensor) -> torch.Tensor:
        self.parts.append((xf, _pixel_weights(layer, xf)))
        raise SampleDone

    def add(self) -> None:
        """Add the sums of the chunk whose parts were kept."""
        if not self.parts:
            return
        xs, ws = zip(*self.parts, strict=True)
        self.parts = []
        xf = xs[0] if len(xs) == 1 else torch.cat(xs)
        w = ws[0] if len(ws) == 1 else torch.cat(ws)
        del xs, ws
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

    def finish(self, layer: StatsNorm) -> None:
        assert self.shift is not None
        total, s1, s2 = self.sums
        m = s1 / total
        layer.mean.copy_(self.shift.double() + m)
        layer.var.copy_((s2 / total - m * m).clamp_min(0))


class _Measure(Estimator):
    """Weighted mean and variance (two passes) over the batch or per window; ``xf``
    normalised with them.

    Works in place on ``xf`` (the output of the convolution before, used by nothing else)
    and one window at a time for the variance, so that the estimation batch needs no
    temporaries of its own size. The last layer to measure stops the pass.
    """

    over_batch = False

    def __call__(self, layer: StatsNorm, xf: torch.Tensor) -> torch.Tensor:
        w = _pixel_weights(layer, xf)
        total = w.sum((1, 2))  # (B,)
        s1 = torch.einsum("bchw,bhw->bc", xf, w)  # (B, C)
        if self.over_batch:
            mean = (s1.sum(0) / total.sum()).expand_as(s1)
        else:
            mean = s1 / total[:, None]
        s2 = torch.stack([torch.einsum("chw,hw->c", (xf[b] - mean[b, :, None, None]) ** 2,
                                       w[b]) for b in range(xf.shape[0])])  # (B, C)
        if self.over_batch:
            var = (s2.sum(0) / total.sum()).expand_as(s2)
        else:
            var = s2 / total[:, None]
        self.keep(layer, mean, var)
        assert layer.context is not None
        layer.context.pending -= 1
        if layer.context.pending == 0:  # every layer measured: the rest is not needed
            raise SampleDone
        return xf.sub_(mean[:, :, None, None]).mul_(
            torch.rsqrt(var + layer.eps)[:, :, None, None])

    def keep(self, layer: StatsNorm, mean: torch.Tensor, var: torch.Tensor) -> None:
        raise NotImplementedError


class BatchEstimate(_Measure):
    """One set of statistics over the whole batch, stored in the layer's buffers."""

    mode = "estimate"
    over_batch = True

    def keep(self, layer: StatsNorm, mean: torch.Tensor, var: torch.Tensor) -> None:
        layer.mean.copy_(mean[0])
        layer.var.copy_(var[0])


class MeasureWindows(_Measure):
    """Statistics of each window, kept in :attr:`measured`."""

    mode = "measure"

    def __init__(self) -> None:
        self.measured: list[tuple[torch.Tensor, torch.Tensor]] = []

    def keep(self, layer: StatsNorm, mean: torch.Tensor, var: torch.Tensor) -> None:
        self.measured.append((mean, var))


#: The estimators by mode.
ESTIMATORS: dict[str, type[Estimator]] = {
    cls.mode: cls for cls in (BatchEstimate, Accumulate, MeasureWindows)}
