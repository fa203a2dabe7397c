"""Estimating ``global`` and ``dense`` statistics: the sample read and put through the
prepared generator, layer statistics measured in one pass or layer by layer."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geogan.devices import autocast
from geogan.errors import InputError
from geogan.normstats import sampling
from geogan.normstats.checks import model_identity
from geogan.normstats.layers import prepare
from geogan.normstats.probe import activation_bytes_per_px, probe
from geogan.normstats.sampling import (
    SAMPLE_BORDER,
    SAMPLE_MEMORY,
    SamplePlan,
    SampleWindow,
    core_weights,
    plan_global_sample,
    read_window,
)
from geogan.normstats.statsfile import NormStats
from geogan.progress import CancelCheck, check_cancel

if TYPE_CHECKING:
    from geogan.checkpoint import LoadedGenerator

log = logging.getLogger(__name__)

#: ``dense``: side of the window measured for each grid cell, and the cell spacing (px).
DENSE_WINDOW = 512
DENSE_SPACING = 768


def estimate_stats(generator: LoadedGenerator, paths: Sequence[Path], mode: str,
                   indexes: Sequence[list[int]], *, device: str, precision: str = "fp32",
                   cancel: CancelCheck | None = None) -> NormStats:
    """Estimate ``global`` statistics over ``paths`` (one set for all) or ``dense`` for one raster.

    ``indexes`` are the 1-based bands to read from each raster.
    """
    import rasterio

    if mode not in ("global", "dense"):
        raise ValueError(f"no statistics to estimate for `norm` {mode}")
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
            raise InputError("dense statistics belong to one raster; use `norm` global for "
                             "one set over several rasters")
        stats = _estimate_dense(generator, paths[0], sizes[0], nodatas[0], indexes[0], device,
                                precision, cancel)
    sample = stats.sample
    log.info("%s normalisation statistics from %d window(s) of %d x %d px (%.2f Mpx) in %.1f s",
             mode, sample["windows"], sample["height"], sample["width"],
             sample["windows"] * sample["height"] * sample["width"] / 1e6,
             time.perf_counter() - start)
    return stats


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
                xs.append(generator.in_norm.to_model(raw))  # as translation scales
                ws.append(weight[None])
    return np.stack(xs), np.stack(ws)


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
                         "valid pixels (all nodata); use `norm` window")
    prepared = prepare(module)
    with torch.inference_mode(), autocast(precision, device):
        if plan.chunk == 0:  # one batch: every layer's statistics over all of it, in one pass
            prepared.set_mode("estimate")
            prepared.measure(torch.from_numpy(x).to(device), torch.from_numpy(w).to(device))
        else:  # layer after layer, chunk by chunk, the layers before frozen
            prepared.set_mode("frozen")
            part = max(1, -(-plan.chunk // sampling.CHUNK_PARTS))
            for name in info.order:
                layer = prepared.layers[name]
                layer.mode = "accumulate"
                for k in range(0, len(x), plan.chunk):
                    # the chunk in parts, its sums added whole (the same statistics)
                    for j in range(k, min(k + plan.chunk, len(x)), part):
                        check_cancel(cancel, "estimating normalisation statistics")
                        end = min(j + part, k + plan.chunk)
                        prepared.measure(torch.from_numpy(x[j:end]).to(device),
                                         torch.from_numpy(w[j:end]).to(device))
                    layer.estimator.add()
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
        with torch.inference_mode(), autocast(precision, device):
            prepared.measure(torch.from_numpy(x).to(device),
                             torch.from_numpy(w).float().to(device))
        for name, layer in prepared.layers.items():
            mean, var = layer.measured[0]
            means[name].append(mean.double().cpu().numpy())
            variances[name].append(var.double().cpu().numpy())
    if valid == 0:
        raise InputError(f"{path.name}: the statistics sample holds no valid pixels (all "
                         "nodata); use `norm` window")
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
