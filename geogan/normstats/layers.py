"""Normalisation statistics that do not depend on how a raster is cut into windows.

The CycleGAN/pix2pix generators use instance normalisation: every window is
normalised by its own per-channel mean and variance, so a window's colours depend on
what else it holds, and the translation depends on where the windows fall. This
module replaces each ``nn.InstanceNorm2d`` at inference time by a layer that uses
statistics given from outside:

``window``
    today's instance norm, untouched (each window its own statistics);
``global``
    one mean and variance per channel and layer for the whole raster (or for a batch
    of rasters). They are estimated from a sample of windows spread over the raster,
    read at full resolution and mirrored at the edges as translation does. The sample
    goes through the network as *one* batch whose normalisation layers compute their
    statistics over every window of the batch together (weighted to each window's
    core, without the border that window padding affects, and without nodata), and
    normalise with them. So layer k's statistics are computed on inputs already
    normalised with the global statistics of layers 1..k-1, in a single forward pass;
``dense``
    statistics that vary smoothly over the raster: a coarse grid of cells, each with
    the statistics of a window centred on it, interpolated bilinearly at every pixel
    of every layer (as Kernelized Instance Normalization, Ho et al. ECCV 2022, and
    Dense Normalization, Ho et al. ECCV 2024, do).

Statistics are a few numbers per channel per layer (per grid cell for ``dense``),
saved as JSON with the fingerprint of the generator's weights, so that a file made
for one model is refused for another.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geogan import __version__
from geogan.blend import AxisLayout, reflect_index
from geogan.errors import InputError, first_line
from geogan.progress import CancelCheck, check_cancel

if TYPE_CHECKING:
    import torch
    from torch import nn

    from geogan.checkpoint import LoadedGenerator

log = logging.getLogger(__name__)

#: ``--norm`` choices, and the default (the one that wins on the sample, see the README).
NORM_MODES: tuple[str, ...] = ("window", "global", "dense")
DEFAULT_NORM = "global"
#: Statistics file format.
STATS_FORMAT = "geogan-norm-stats"
STATS_FORMAT_VERSION = 1
#: Name ending of the statistics file written beside an output (``out.tif`` -> ``out.stats.json``).
STATS_SUFFIX = ".stats.json"

#: ``global``: a raster of at most this many pixels is measured whole, in one window that
#: reaches this many mirrored pixels past each edge (as translation windows do).
SAMPLE_FULL_PX = 1_000_000
SAMPLE_FULL_MARGIN = 16
#: Larger rasters: side of the sample windows (px), and the border of each window left out
#: of the statistics (window padding affects the features near the edge); the windows'
#: cores (``SAMPLE_WINDOW - 2 * SAMPLE_BORDER`` px) tile the raster.
SAMPLE_WINDOW = 256
SAMPLE_BORDER = 32
#: The estimation's generator work stays within this fraction of the raster's pixels (a
#: translation's work is 1.3x them or more), and within this many pixels (about a fifth of
#: a 16,000 x 16,000 px translation).
SAMPLE_FRACTION = 0.4
SAMPLE_MAX_WORK = 64_000_000
#: The sample's activations stay within about this many bytes (it is one batch), as
#: estimated by :func:`activation_bytes_per_px` with this factor (measured peaks agree).
SAMPLE_MEMORY = 384 * 2 ** 20
PROBE_FACTOR = 4
#: ``dense``: side of the window measured for each grid cell, and the cell spacing (px).
DENSE_WINDOW = 512
DENSE_SPACING = 768


# --------------------------------------------------------------------------- statistics


@dataclass
class NormStats:
    """Statistics for every instance-norm layer of one generator.

    ``layers`` maps a module name (as in ``named_modules``) to ``(mean, var)``
    arrays, shaped ``(C,)`` for ``global`` and ``(C, rows, cols)`` for ``dense``,
    whose grid cell ``(i, j)`` is centred on raster pixel ``grid["y"][i]``,
    ``grid["x"][j]`` (``grid`` also holds the raster's ``width`` and ``height``).
    ``model`` identifies the generator (:func:`model_identity`); ``sample``
    describes where the statistics come from.
    """

    mode: str
    model: dict[str, Any]
    layers: dict[str, tuple[np.ndarray, np.ndarray]]
    sample: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": STATS_FORMAT, "format_version": STATS_FORMAT_VERSION,
            "geogan_version": __version__, "mode": self.mode, "model": self.model,
            "sample": self.sample,
            "layers": {name: {"mean": np.asarray(m, dtype=np.float64).tolist(),
                              "var": np.asarray(v, dtype=np.float64).tolist()}
                       for name, (m, v) in self.layers.items()},
        }
        if self.grid is not None:
            out["grid"] = self.grid
        return out

    @classmethod
    def from_json(cls, data: Any, source: str = "statistics") -> NormStats:
        if not isinstance(data, dict) or data.get("format") != STATS_FORMAT:
            raise InputError(f"{source} is not a geogan statistics file; give a file written "
                             "by 'geogan translate --save-stats'")
        if int(data.get("format_version", 0)) > STATS_FORMAT_VERSION:
            raise InputError(f"{source} was written by a newer geogan "
                             f"({data.get('geogan_version')}); upgrade geogan to read it")
        mode = data.get("mode")
        if mode not in ("global", "dense"):
            raise InputError(f"{source} holds statistics of unknown mode {mode!r}")
        try:
            layers = {str(name): (np.asarray(entry["mean"], dtype=np.float64),
                                  np.asarray(entry["var"], dtype=np.float64))
                      for name, entry in data["layers"].items()}
            model = dict(data["model"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{source} is damaged ({first_line(exc)}); write it again "
                             "with --save-stats") from exc
        want = 1 if mode == "global" else 3
        for name, (m, v) in layers.items():
            if m.shape != v.shape or m.ndim != want or not np.isfinite(m).all() \
                    or not (np.isfinite(v).all() and (v >= 0).all()):
                raise InputError(f"{source} is damaged (layer {name}); write it again "
                                 "with --save-stats")
        return cls(mode, model, layers, dict(data.get("sample", {})), data.get("grid"))

    def save(self, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write the statistics as JSON, atomically; return the path."""
        from geogan.fileio import atomic_output

        path = Path(path)
        text = json.dumps(self.to_json(), indent=1)
        with atomic_output(path, overwrite=overwrite) as tmp:
            tmp.write_text(text + "\n")
        return path


def load_stats(path: str | os.PathLike[str]) -> NormStats:
    """Read a statistics file; unusable files raise :class:`InputError` in one line."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"statistics file {p} not found; write one with "
                         "'geogan translate --save-stats'")
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"statistics file {p} is not valid JSON ({first_line(exc)}); "
                         "write it again with --save-stats") from exc
    return NormStats.from_json(data, f"statistics file {p}")


def stats_path_for(output: str | os.PathLike[str]) -> Path:
    """Where ``--save-stats`` writes the statistics of ``output``: ``a.tif`` -> ``a.stats.json``."""
    p = Path(output)
    return p.with_name(p.stem + STATS_SUFFIX)


def model_identity(generator: LoadedGenerator) -> dict[str, Any]:
    """Fingerprint of the generator: SHA-256 of its weights (names, shapes, bytes) + direction."""
    import torch

    h = hashlib.sha256(generator.direction.encode())
    for name, tensor in sorted(generator.module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    spec = generator.meta.get("generators", {}).get(generator.direction, {})
    arch = spec.get("arch") if isinstance(spec, dict) else None
    return {"sha256": h.hexdigest(), "direction": generator.direction, "arch": arch}


def check_stats(stats: NormStats, generator: LoadedGenerator, mode: str, source: str) -> None:
    """Refuse statistics made for another generator, or of another mode, in one line."""
    if stats.mode != mode:
        raise InputError(f"{source} holds {stats.mode} statistics but --norm is {mode}; pass "
                         f"--norm {stats.mode} or another statistics file")
    ident = model_identity(generator)
    if stats.model.get("sha256") != ident["sha256"]:
        raise InputError(f"{source} was made for another model ({stats.model.get('arch')}, "
                         f"{stats.model.get('direction')}, weights "
                         f"{str(stats.model.get('sha256'))[:12]}) than this checkpoint's "
                         f"{ident['direction']} generator (weights {ident['sha256'][:12]}); "
                         "estimate statistics for this model (drop --stats)")
    names = dict(norm_layers(generator.module))
    if set(stats.layers) != set(names):
        raise InputError(f"{source} does not list this generator's normalisation layers; "
                         "estimate statistics for this model (drop --stats)")
    for name, (mean, _) in stats.layers.items():
        if mean.shape[0] != names[name].num_features:
            raise InputError(f"{source} has {mean.shape[0]} channels for layer {name}, the "
                             f"generator {names[name].num_features}; drop --stats")


# --------------------------------------------------------------------------- the layer


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


# --------------------------------------------------------------------------- the sample


@dataclass(frozen=True)
class SampleWindow:
    """A sample window of raster ``index``: first pixel ``(row, col)`` (may be negative)."""

    index: int
    row: int
    col: int


@dataclass(frozen=True)
class SamplePlan:
    """Windows of ``height x width`` px whose pixels ``border`` px inside their edges count.

    ``chunk`` 0: the windows go through the network as one batch, whose normalisation
    layers use statistics over all of it (one pass). Otherwise they go in batches of
    ``chunk``, once per normalisation layer (layer by layer, with bounded memory).
    """

    windows: list[SampleWindow]
    height: int
    width: int
    border: int
    chunk: int = 0


def plan_global_sample(sizes: Sequence[tuple[int, int]], per_px_bytes: float,
                       multiple: int = 1, passes: float = 1.0) -> SamplePlan:
    """Where the ``global`` statistics of rasters of ``(width, height)`` px are measured.

    One raster of at most :data:`SAMPLE_FULL_PX` pixels (and whose activations fit
    :data:`SAMPLE_MEMORY` at ``per_px_bytes``) is measured whole, as one window
    mirrored :data:`SAMPLE_FULL_MARGIN` px past its edges: its statistics are exactly
    those of every pixel. Otherwise :data:`SAMPLE_WINDOW` px
    windows, whose cores (less :data:`SAMPLE_BORDER` px on each side,
    :class:`~geogan.blend.AxisLayout` with ``overlap = 2 * border``) tile each raster,
    are taken on an even sub-grid, shared out across rasters by area. The estimation
    may cost :data:`SAMPLE_FRACTION` of the rasters' pixels in forward-pass pixels, at
    most :data:`SAMPLE_MAX_WORK`: as one batch within :data:`SAMPLE_MEMORY`, or, when
    that gives more windows, in chunks once per layer (``passes`` forward passes, see
    :class:`Probe`). The plan depends on the rasters and the model only, never on the
    translation's tile, so every tiling gets the same statistics.
    """
    def up(n: int) -> int:
        return -(-n // multiple) * multiple

    if len(sizes) == 1:
        w, h = sizes[0]
        m = SAMPLE_FULL_MARGIN
        if w * h <= SAMPLE_FULL_PX and up(w + 2 * m) * up(h + 2 * m) * per_px_bytes \
                <= SAMPLE_MEMORY:
            return SamplePlan([SampleWindow(0, -m, -m)], up(h + 2 * m), up(w + 2 * m), m)
    border = SAMPLE_BORDER
    size = max(multiple, up(min(SAMPLE_WINDOW, max(max(wh) for wh in sizes) + 2 * border)))
    border = min(border, size // 4)
    total_px = sum(w * h for w, h in sizes)
    work = min(SAMPLE_FRACTION * total_px, SAMPLE_MAX_WORK)  # in forward-pass pixels
    one_batch = int(min(work, SAMPLE_MEMORY / per_px_bytes) // size ** 2)
    layered = int(work / passes // size ** 2)
    budget, chunk = (one_batch, 0) if one_batch >= layered else (layered, max(
        1, int(SAMPLE_MEMORY / per_px_bytes // size ** 2)))
    layouts = [(AxisLayout(w, size, 2 * border), AxisLayout(h, size, 2 * border))
               for w, h in sizes]
    totals = [ax.count * ay.count for ax, ay in layouts]
    budget = max(budget, len(sizes))
    if sum(totals) <= budget:
        shares = totals
    else:
        area = np.array([w * h for w, h in sizes], dtype=np.float64)
        shares = [max(1, min(t, int(s))) for t, s in
                  zip(totals, np.floor(budget * area / area.sum()), strict=True)]
    out: list[SampleWindow] = []
    for i, ((ax, ay), n) in enumerate(zip(layouts, shares, strict=True)):
        for r, c in _even_subgrid(ay.count, ax.count, n):
            out.append(SampleWindow(i, ay.start(r), ax.start(c)))
    return SamplePlan(out, size, size, border, chunk)


def _even_subgrid(rows: int, cols: int, n: int) -> list[tuple[int, int]]:
    """About ``n`` cells of a ``rows x cols`` grid, spread evenly (all of them when n >= size)."""
    if n >= rows * cols:
        return [(r, c) for r in range(rows) for c in range(cols)]
    ny = max(1, min(rows, round(math.sqrt(n * rows / cols))))
    nx = max(1, min(cols, n // ny))
    ny = max(1, min(rows, n // nx))
    rs = np.unique(np.round((np.arange(ny) + 0.5) * rows / ny - 0.5).astype(int))
    cs = np.unique(np.round((np.arange(nx) + 0.5) * cols / nx - 0.5).astype(int))
    return [(int(r), int(c)) for r in rs for c in cs]


def read_window(src: Any, indexes: list[int], row: int, col: int, height: int,
                width: int) -> np.ndarray:
    """A ``height x width`` window ``(C, height, width)`` from ``row, col``, mirrored past edges."""
    from rasterio.errors import RasterioIOError
    from rasterio.windows import Window

    rows = reflect_index(row, height, src.height)
    cols = reflect_index(col, width, src.width)
    r0, r1, c0, c1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    try:
        data = src.read(indexes, window=Window(c0, r0, c1 - c0, r1 - r0))
    except RasterioIOError as exc:
        raise InputError(f"{src.name} could not be read at rows {r0}-{r1} "
                         f"({first_line(exc)}); check that the file is complete") from exc
    return data[:, rows - r0][:, :, cols - c0]


def core_weights(row: int, col: int, height: int, width: int, border: int, raster_width: int,
                 raster_height: int) -> np.ndarray:
    """``(height, width)`` 0/1 weights: the window's core that lies inside the raster."""
    w = np.zeros((height, width), dtype=np.float32)
    y0, x0 = max(row + border, 0), max(col + border, 0)
    y1 = min(row + height - border, raster_height)
    x1 = min(col + width - border, raster_width)
    if y1 > y0 and x1 > x0:
        w[y0 - row:y1 - row, x0 - col:x1 - col] = 1.0
    return w


@dataclass(frozen=True)
class Probe:
    """What a small forward pass tells about a generator.

    ``bytes_per_px``: memory an estimation pass needs per input pixel
    (:data:`PROBE_FACTOR` times the largest layer output, for its input, its output
    and the convolution's workspace, plus the mean layer output, for skip connections
    kept alive). ``order``: the instance-norm layers in the order the forward pass
    reaches them. ``passes``: the work of measuring them one after the other (a forward
    pass up to each layer in turn), in whole forward passes, from the convolutions'
    multiply-adds.
    """

    bytes_per_px: float
    order: tuple[str, ...]
    passes: float


_PROBES: dict[tuple[int, int], Probe] = {}


def probe(module: nn.Module, in_bands: int, device: str) -> Probe:
    """:class:`Probe` of ``module`` (a forward pass on one 64 px window, cached)."""
    import torch
    from torch import nn

    key = (id(module), in_bands)
    if key in _PROBES:
        return _PROBES[key]
    side = max(64, int(getattr(module, "size_multiple", 1)))
    sizes: list[int] = []
    macs = [0.0]
    reached: list[tuple[str, float]] = []
    names = {id(m): n for n, m in norm_layers(module)}

    def leaf(m: nn.Module, inputs: tuple[Any, ...], out: torch.Tensor) -> None:
        sizes.append(out.numel())
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            k = math.prod(m.kernel_size) * m.in_channels // m.groups
            macs[0] += k * (out.numel() if isinstance(m, nn.Conv2d)
                            else inputs[0].numel() * m.out_channels / m.in_channels)
        if id(m) in names:
            reached.append((names[id(m)], macs[0]))

    hooks = [m.register_forward_hook(leaf) for m in module.modules() if not list(m.children())]
    try:
        with torch.inference_mode():
            module(torch.zeros(1, in_bands, side, side, device=device))
    finally:
        for h in hooks:
            h.remove()
    per_px = 4.0 * (PROBE_FACTOR * max(sizes) + sum(sizes) / max(1, len(sizes))) / side ** 2
    order = tuple(dict.fromkeys(n for n, _ in reached))
    passes = sum(c for _, c in reached) / macs[0] if macs[0] else float(len(order))
    result = Probe(per_px, order, max(passes, 1.0))
    _PROBES.clear()
    _PROBES[key] = result
    return result


def activation_bytes_per_px(module: nn.Module, in_bands: int, device: str) -> float:
    """Memory an estimation pass needs per input pixel (see :class:`Probe`)."""
    return probe(module, in_bands, device).bytes_per_px


# --------------------------------------------------------------------------- estimation


def estimate_stats(generator: LoadedGenerator, paths: Sequence[Path], mode: str,
                   indexes: Sequence[list[int]], *, device: str, precision: str = "fp32",
                   cancel: CancelCheck | None = None) -> NormStats:
    """Estimate ``global`` statistics over ``paths`` (one set for all) or ``dense`` for one raster.

    ``indexes`` are the 1-based bands to read from each raster.
    """
    import rasterio

    if mode not in ("global", "dense"):
        raise ValueError(f"no statistics to estimate for --norm {mode}")
    sizes = []
    nodatas = []
    for p in paths:
        with rasterio.open(p) as src:
            sizes.append((int(src.width), int(src.height)))
            nodatas.append(src.nodata)
    start = time.perf_counter()
    log.info("estimating %s normalisation statistics of %s", mode,
             ", ".join(p.name for p in paths))
    if mode == "global":
        stats = _estimate_global(generator, paths, sizes, nodatas, indexes, device, precision,
                                 cancel)
    else:
        if len(paths) != 1:
            raise InputError("dense statistics belong to one raster; use --norm global for "
                             "one set over several rasters")
        stats = _estimate_dense(generator, paths[0], sizes[0], nodatas[0], indexes[0], device,
                                precision, cancel)
    sample = stats.sample
    log.info("%s normalisation statistics from %d window(s) of %d x %d px (%.2f Mpx) in %.1f s",
             mode, sample["windows"], sample["height"], sample["width"],
             sample["windows"] * sample["height"] * sample["width"] / 1e6,
             time.perf_counter() - start)
    return stats


def _to_model(raw: np.ndarray, generator: LoadedGenerator) -> np.ndarray:
    """Raster values ``(C, H, W)`` -> model space ``[-1, 1]`` as translation does."""
    lo = np.asarray(generator.in_norm.lo, dtype=np.float32).reshape(-1, 1, 1)
    span = np.asarray(generator.in_norm.hi, dtype=np.float32).reshape(-1, 1, 1) - lo
    x = np.clip((raw.astype(np.float32) - lo) / span * 2.0 - 1.0, -1.0, 1.0)
    return np.nan_to_num(x, nan=0.0)


def _read_sample(paths: Sequence[Path], nodatas: Sequence[float | None],
                 indexes: Sequence[list[int]], plan: SamplePlan, generator: LoadedGenerator,
                 cancel: CancelCheck | None) -> tuple[np.ndarray, np.ndarray]:
    """Model-space inputs ``(N, C, h, w)`` and pixel weights ``(N, 1, h, w)`` of the sample."""
    import rasterio

    from geogan.normalize import valid_mask

    xs, ws = [], []
    by_raster: dict[int, list[SampleWindow]] = {}
    for w in plan.windows:
        by_raster.setdefault(w.index, []).append(w)
    for i, wins in sorted(by_raster.items()):
        with rasterio.open(paths[i]) as src:
            for w in wins:
                check_cancel(cancel, "estimating normalisation statistics")
                raw = read_window(src, indexes[i], w.row, w.col, plan.height, plan.width)
                weight = core_weights(w.row, w.col, plan.height, plan.width, plan.border,
                                      src.width, src.height)
                if nodatas[i] is not None:
                    weight *= valid_mask(raw, nodatas[i])
                xs.append(_to_model(raw, generator))
                ws.append(weight[None])
    return np.stack(xs), np.stack(ws)


def _autocast(precision: str, device: str) -> Any:
    import contextlib

    import torch

    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu",
                          dtype=torch.bfloat16)


def _sample_info(paths: Sequence[Path], plan: SamplePlan, pixels: float) -> dict[str, Any]:
    return {"rasters": [p.name for p in paths], "windows": len(plan.windows),
            "height": plan.height, "width": plan.width, "border": plan.border,
            "pixels": int(pixels)}


def _estimate_global(generator: LoadedGenerator, paths: Sequence[Path],
                     sizes: Sequence[tuple[int, int]], nodatas: Sequence[float | None],
                     indexes: Sequence[list[int]], device: str, precision: str,
                     cancel: CancelCheck | None) -> NormStats:
    import torch

    module = generator.module.eval().to(device)
    info = probe(module, generator.in_bands, device)
    plan = plan_global_sample(sizes, info.bytes_per_px, int(getattr(module, "size_multiple", 1)),
                              info.passes)
    x, w = _read_sample(paths, nodatas, indexes, plan, generator, cancel)
    if not w.any():
        raise InputError(f"{', '.join(p.name for p in paths)}: the statistics sample holds no "
                         "valid pixels (all nodata); use --norm window")
    prepared = prepare(module)
    with torch.inference_mode(), _autocast(precision, device):
        if plan.chunk == 0:  # one batch: every layer's statistics over all of it, in one pass
            prepared.set_mode("estimate")
            prepared.measure(torch.from_numpy(x).to(device), torch.from_numpy(w).to(device))
        else:  # layer after layer, chunk by chunk, the layers before frozen
            prepared.set_mode("frozen")
            for name in info.order:
                layer = prepared.layers[name]
                layer.mode = "accumulate"
                for k in range(0, len(x), plan.chunk):
                    check_cancel(cancel, "estimating normalisation statistics")
                    prepared.measure(torch.from_numpy(x[k:k + plan.chunk]).to(device),
                                     torch.from_numpy(w[k:k + plan.chunk]).to(device))
                layer.finish()
    layers = {name: (layer.mean.double().cpu().numpy(), layer.var.double().cpu().numpy())
              for name, layer in prepared.layers.items()}
    sample = _sample_info(paths, plan, float(w.sum()))
    sample["passes"] = 1 if plan.chunk == 0 else len(info.order)
    return NormStats("global", model_identity(generator), layers, sample)


def _estimate_dense(generator: LoadedGenerator, path: Path, size_wh: tuple[int, int],
                    nodata: float | None, indexes: list[int], device: str, precision: str,
                    cancel: CancelCheck | None) -> NormStats:
    import torch

    module = generator.module.eval().to(device)
    width, height = size_wh
    m = int(getattr(module, "size_multiple", 1))
    size = max(m, -(-min(DENSE_WINDOW, max(width, height) + 2 * SAMPLE_BORDER) // m) * m)
    border = min(SAMPLE_BORDER, size // 4)
    gy = [float(v) for v in _cell_centres(height, DENSE_SPACING)]
    gx = [float(v) for v in _cell_centres(width, DENSE_SPACING)]
    cells = [(r, c) for r in range(len(gy)) for c in range(len(gx))]
    windows = [SampleWindow(0, round(gy[r] - size / 2), round(gx[c] - size / 2))
               for r, c in cells]
    prepared = prepare(module)
    per_px = activation_bytes_per_px(module, generator.in_bands, device)
    chunk = max(1, int(SAMPLE_MEMORY // (per_px * size ** 2)))
    means: dict[str, list[Any]] = {name: [] for name in prepared.layers}
    variances: dict[str, list[Any]] = {name: [] for name in prepared.layers}
    valid = 0.0
    for k in range(0, len(windows), chunk):
        part = SamplePlan(windows[k:k + chunk], size, size, border)
        x, w = _read_sample([path], [nodata], [indexes], part, generator, cancel)
        valid += float(w.sum())
        w = np.where(w.reshape(len(part.windows), -1).any(axis=1)[:, None, None, None], w, 1.0)
        prepared.set_mode("measure")
        with torch.inference_mode(), _autocast(precision, device):
            prepared.measure(torch.from_numpy(x).to(device),
                             torch.from_numpy(w).float().to(device))
        for name, layer in prepared.layers.items():
            mean, var = layer.measured[0]
            means[name].append(mean.double().cpu().numpy())
            variances[name].append(var.double().cpu().numpy())
    if valid == 0:
        raise InputError(f"{path.name}: the statistics sample holds no valid pixels (all "
                         "nodata); use --norm window")
    rows, cols = len(gy), len(gx)
    layers = {name: (np.concatenate(means[name]).reshape(rows, cols, -1).transpose(2, 0, 1),
                     np.concatenate(variances[name]).reshape(rows, cols, -1).transpose(2, 0, 1))
              for name in prepared.layers}
    grid = {"width": width, "height": height, "spacing": DENSE_SPACING, "y": gy, "x": gx}
    return NormStats("dense", model_identity(generator), layers,
                     _sample_info([path], SamplePlan(windows, size, size, border), valid), grid)


def _cell_centres(length: int, spacing: int) -> np.ndarray:
    """Centres (raster px) of ``ceil(length / spacing)`` equal cells along one axis."""
    n = max(1, math.ceil(length / spacing))
    return (np.arange(n) + 0.5) * length / n - 0.5


def check_dense_fits(stats: NormStats, width: int, height: int, source: str) -> None:
    """Dense statistics belong to one raster's pixel grid."""
    grid = stats.grid or {}
    if (grid.get("width"), grid.get("height")) != (width, height):
        raise InputError(f"{source} holds dense statistics of a {grid.get('width')} x "
                         f"{grid.get('height')} px raster, not {width} x {height}; use --norm "
                         "global to share statistics between rasters")

