"""How sure the generator is, pixel by pixel: the measures behind a confidence raster.

Every measure is a per-pixel *distance* ``d >= 0`` computed on the normalised window the
translation feeds the generator (model space, ``[-1, 1]``), and is turned into a
confidence in ``[0, 1]`` (1 = the model is sure, 0 = it is guessing) by::

    confidence = exp(-(1/K) sum_k d_k / s_k)

over the measure's ``K`` components ``k``, each with its scale ``s_k`` (:data:`SCALES`). A
combination is therefore the geometric mean of its components' confidences. The components:

``tta``
    Test-time augmentation disagreement: the generator translates the window under
    several of the eight flips and rotations (:data:`DIHEDRAL`), each output is turned
    back, and ``d`` is the standard deviation across them, averaged over the bands.
``cycle``
    CycleGAN's cycle error: ``d = mean_bands |b2a(a2b(x)) - x|``. The ``b2a``
    generator normalises with statistics of its own, estimated on the ``a2b``
    translation of the same sample of windows the translation's statistics use
    (:func:`cycle_stats`).
``feature``
    How far the generator's features at one instance-norm layer lie from the raster's
    statistics at that layer (``--norm global``): the root mean square, over channels,
    of ``(f - mean) / std`` (a Mahalanobis distance with a diagonal covariance),
    upsampled to the window. No extra pass. The shipped checkpoints keep no training
    statistics, so the raster's own global statistics are the reference.

The measures (:data:`MEASURES`) name combinations of components. :data:`DEFAULT_MEASURE`,
``cycle``, flagged foreign content best on the bundled NAIP data for its cost (AUROC 0.94
over DSM, Landsat, inverted and noise patches, against 0.91 for ``feature``, 0.74 for
``tta`` and 0.95 for ``cycle+feature``, which cannot reuse the translation's pass; see
``benchmarks/confidence.py``); models without ``b2a`` fall back to ``feature``
(:func:`default_measure`). :func:`raster_confidence` computes a whole raster window by
window with the translation's windows and blend weights (:mod:`geogan.blend`), so the
result has no seams and hardly depends on the tile size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from geogan import normstats
from geogan.blend import AxisLayout, blend_weights
from geogan.translate.tensors import norm_tensors, to_model

if TYPE_CHECKING:
    import torch

    from geogan.checkpoint import LoadedGenerator
    from geogan.normstats import NormStats

#: The eight flips and rotations of a square window (the dihedral group of the square).
DIHEDRAL: tuple[str, ...] = ("identity", "rot90", "rot180", "rot270", "flip_h", "flip_v",
                             "transpose", "antitranspose")
#: Measure name -> its components and, for ``tta``, the transforms besides the identity.
MEASURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "tta": (("tta",), ("rot90", "rot270")),
    "tta8": (("tta",), DIHEDRAL[1:]),
    "cycle": (("cycle",), ()),
    "feature": (("feature",), ()),
    "combined": (("tta", "cycle"), ("rot90",)),
    "cycle+feature": (("cycle", "feature"), ()),
}
DEFAULT_MEASURE = "cycle"
#: Scale ``s`` of each component, in its own units (model units for ``tta`` and ``cycle``,
#: where 2 is the band's whole range: 0.05 is about 6 levels of an 8-bit band; standard
#: deviations for ``feature``). About the median distance on the bundled NAIP 2009 scene
#: through the shipped model divided by ln 2, so that a typical pixel of familiar ground
#: scores about 0.5.
SCALES: dict[str, float] = {"tta": 0.045, "cycle": 0.08, "feature": 0.9}
#: The instance-norm layer whose features ``feature`` measures, by order in the network: 0,
#: the first (after the 7x7 stem convolution), flagged foreign patches best of the layers
#: tried on the benchmark (0, 2, 5, 8, 11, 14, 16 of the shipped model's 17); the deeper
#: layers' statistics hardly separate them.
FEATURE_LAYER = 0


def transform(x: torch.Tensor, name: str, inverse: bool = False) -> torch.Tensor:
    """``x`` ``(..., H, W)`` under dihedral transform ``name`` (or its inverse)."""
    import torch

    if name == "identity":
        return x
    if name in ("rot90", "rot270"):
        k = 1 if name == "rot90" else 3
        return torch.rot90(x, -k if inverse else k, dims=(-2, -1))
    if name == "rot180":
        return torch.rot90(x, 2, dims=(-2, -1))
    if name == "flip_h":
        return torch.flip(x, dims=(-1,))
    if name == "flip_v":
        return torch.flip(x, dims=(-2,))
    if name == "transpose":
        return x.transpose(-2, -1)
    if name == "antitranspose":
        return torch.rot90(x, 2, dims=(-2, -1)).transpose(-2, -1)
    raise ValueError(f"unknown transform {name!r}; choose one of {', '.join(DIHEDRAL)}")


@dataclass
class Net:
    """A generator ready to run windows: the module (a copy normalising with given
    statistics, or the original), and whether its statistics vary over the raster."""

    module: Any
    prepared: Any = None  # normstats PreparedModule when statistics are given
    dense: bool = False

    def __call__(self, x: torch.Tensor, origins: Sequence[tuple[int, int]] | None = None
                 ) -> torch.Tensor:
        """Model-space windows ``(B, C, T, T)`` -> outputs clamped to ``[-1, 1]`` (no grad)."""
        import torch

        if self.dense:
            if origins is None or x.shape[-1] != x.shape[-2]:
                raise ValueError("dense statistics need square windows and their origins")
            self.prepared.set_windows(list(origins), int(x.shape[-1]))
        with torch.no_grad():
            return self.module(x).float().clamp_(-1.0, 1.0)


def make_net(generator: LoadedGenerator, stats: NormStats | None, device: str,
             shared: bool = True) -> Net:
    """``generator`` normalising with ``stats`` (None: each window its own, ``--norm window``).

    ``shared`` uses the prepared copy the translation uses (:func:`normstats.prepared_for`);
    otherwise a private copy, so two generators can be prepared at once.
    """
    module = generator.module.eval().to(device)
    if stats is None or not normstats.norm_layers(module):
        return Net(module)
    prepared = (normstats.prepared_for(module) if shared
                else normstats.layers.prepare(module))
    prepared.load(stats, device)
    prepared.module.eval().to(device)
    return Net(prepared.module, prepared, stats.mode == "dense")


@dataclass
class Models:
    """What the measures run: ``a2b`` (the translation's generator) and, for ``cycle``,
    ``b2a``; the input normalisation (``in_lo``, ``in_span``) of ``a2b``."""

    a2b: Net
    in_lo: Any
    in_span: Any
    b2a: Net | None = None
    scales: dict[str, float] = field(default_factory=lambda: dict(SCALES))


def tta_disagreement(net: Net, x: torch.Tensor, transforms: Sequence[str],
                     y: torch.Tensor | None = None,
                     origins: Sequence[tuple[int, int]] | None = None) -> torch.Tensor:
    """Std over the outputs under the identity and ``transforms``, mean over bands ``(B, T, T)``.

    ``y`` is the identity output when already computed (the translation's). With dense
    statistics the transforms would move the windows' statistics, so pass ``--norm`` global.
    """
    import torch

    outs = [net(x, origins) if y is None else y]
    for name in transforms:
        if name == "identity":
            continue
        outs.append(transform(net(transform(x, name), origins), name, inverse=True))
    stack = torch.stack(outs)  # (K, B, C, T, T)
    return stack.std(dim=0, unbiased=False).mean(dim=1)


def cycle_error(a2b: Net, b2a: Net, x: torch.Tensor, y: torch.Tensor | None = None,
                origins: Sequence[tuple[int, int]] | None = None) -> torch.Tensor:
    """``mean_bands |b2a(a2b(x)) - x|`` ``(B, T, T)``; ``y`` is ``a2b(x)`` when known."""
    y = a2b(x, origins) if y is None else y
    return (b2a(y, origins) - x).abs_().mean(dim=1)


class _FeatureHook:
    """Captures the RMS z-score of one StatsNorm layer's input during a forward pass."""

    def __init__(self, net: Net, layer: int | None = None) -> None:
        if net.prepared is None or net.dense:
            raise ValueError("the feature measure needs global normalisation statistics "
                             "(`norm` global)")
        self.layer = list(net.prepared.layers.values())[
            FEATURE_LAYER if layer is None else layer]
        self.value: torch.Tensor | None = None

    def __enter__(self) -> _FeatureHook:
        def hook(module: Any, inputs: tuple[Any, ...], _out: Any) -> None:
            import torch

            f = inputs[0].float()
            z = (f - module.mean.view(1, -1, 1, 1)) * torch.rsqrt(
                module.var + module.eps).view(1, -1, 1, 1)
            self.value = z.square().mean(dim=1, keepdim=True).sqrt()

        self._handle = self.layer.register_forward_hook(hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._handle.remove()

    def distance(self, size: int) -> torch.Tensor:
        import torch.nn.functional as F  # noqa: N812

        assert self.value is not None
        return F.interpolate(self.value, size=(size, size), mode="bilinear",
                             align_corners=False)[:, 0]


def window_distance(models: Models, x: torch.Tensor, measure: str = DEFAULT_MEASURE,
                    y: torch.Tensor | None = None,
                    origins: Sequence[tuple[int, int]] | None = None) -> torch.Tensor:
    """The measure's combined distance ``(1/K) sum_k d_k / s_k`` of model-space windows,
    ``(B, T, T)``.

    ``x`` is the normalised batch the translation feeds the generator; ``y`` its output
    when the caller has it (saves a pass; not with ``feature``, which watches that pass).
    """
    components, transforms = measure_spec(measure)
    s = models.scales
    if "cycle" in components and models.b2a is None:
        raise ValueError(f"measure {measure!r} needs the b2a generator (a CycleGAN)")
    hook = _FeatureHook(models.a2b) if "feature" in components else None
    if hook is not None:
        with hook:
            y = models.a2b(x, origins)
    elif y is None:
        y = models.a2b(x, origins)
    total = x.new_zeros((x.shape[0],) + tuple(x.shape[-2:]))
    if "tta" in components:
        total += tta_disagreement(models.a2b, x, transforms, y, origins) / s["tta"]
    if "cycle" in components:
        assert models.b2a is not None
        total += cycle_error(models.a2b, models.b2a, x, y, origins) / s["cycle"]
    if hook is not None:
        total += hook.distance(int(x.shape[-1])) / s["feature"]
    return total / len(components)


def to_confidence(distance: torch.Tensor | np.ndarray) -> Any:
    """Combined distance -> confidence ``exp(-d)`` in ``[0, 1]`` (1: the model is sure)."""
    if isinstance(distance, np.ndarray):
        return np.exp(-distance).astype(np.float32)
    return (-distance).exp()


def window_confidence(models: Models, x: torch.Tensor, measure: str = DEFAULT_MEASURE,
                      y: torch.Tensor | None = None,
                      origins: Sequence[tuple[int, int]] | None = None) -> torch.Tensor:
    """Per-pixel confidence ``(B, T, T)`` float32 of model-space windows ``x``."""
    return to_confidence(window_distance(models, x, measure, y, origins))


def measure_spec(measure: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(components, tta transforms)`` of a measure name (see :data:`MEASURES`)."""
    if measure not in MEASURES:
        raise ValueError(f"unknown confidence measure {measure!r}; choose one of "
                         f"{', '.join(MEASURES)}")
    return MEASURES[measure]


def passes(measure: str) -> int:
    """Forward passes per window, the translation's own included (its cost in translations).

    A caller that has the translation's output ``y`` saves one of them, except for
    measures with ``feature`` (which watches the pass it makes itself). The ``b2a``
    statistics of ``cycle`` cost a further pass through both generators of the
    translation's statistics sample (the whole raster up to 1 Mpx, else at most 40 %).
    """
    components, transforms = measure_spec(measure)
    n = 1
    if "tta" in components:
        n += len([t for t in transforms if t != "identity"])
    if "cycle" in components:
        n += 1
    return n


# ---------------------------------------------------------------- whole rasters

WindowReader = Callable[[int, int, int, int], tuple[np.ndarray, np.ndarray]]


def cycle_stats(a2b: Net, b2a: LoadedGenerator, read: WindowReader, width: int,
                height: int, device: str) -> NormStats | None:
    """``global`` statistics for ``b2a`` on the ``a2b`` translation of one raster.

    The sample is planned as the translation's own (:func:`normstats.plan_global_sample`)
    but always as one batch within its memory bound. ``read(row, col, h, w)`` gives a
    model-space window ``(C, h, w)`` mirrored past the edges and its valid pixels ``(h, w)``.
    """
    import torch

    from geogan.normstats.checks import model_identity
    from geogan.normstats.sampling import core_weights

    module = b2a.module.eval().to(device)
    if not normstats.norm_layers(module):
        return None
    info = normstats.probe(module, b2a.in_bands, device)
    plan = normstats.plan_global_sample([(width, height)], info.bytes_per_px,
                                        int(getattr(module, "size_multiple", 1)), math.inf)
    xs, ws = [], []
    for win in plan.windows:
        x, valid = read(win.row, win.col, plan.height, plan.width)
        xs.append(x)
        ws.append((core_weights(win.row, win.col, plan.height, plan.width, plan.border,
                                width, height) * valid)[None])
    w = torch.from_numpy(np.stack(ws)).float().to(device)
    if not bool(w.any()):
        return None
    prepared = normstats.layers.prepare(module)
    with torch.inference_mode():
        y = torch.cat([a2b(torch.from_numpy(x[None]).to(device), [(win.row, win.col)])
                       for x, win in zip(xs, plan.windows, strict=True)])
        prepared.set_mode("estimate")
        prepared.measure(y, w)
    layers = {name: (layer.mean.double().cpu().numpy(), layer.var.double().cpu().numpy())
              for name, layer in prepared.layers.items()}
    return normstats.NormStats("global", model_identity(b2a), layers,
                               {"windows": len(plan.windows), "height": plan.height,
                                "width": plan.width, "border": plan.border})


def array_reader(raster: np.ndarray, models: Models,
                 valid: np.ndarray | None = None) -> WindowReader:
    """:data:`WindowReader` over an in-memory raster ``(C, H, W)`` of raster values (each
    window put into model space as it is read, so no model-space copy of the raster)."""
    from geogan.blend import reflect_index

    _, h, w = raster.shape

    def read(row: int, col: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        rows, cols = reflect_index(row, height, h), reflect_index(col, width, w)
        v = (np.ones((height, width), np.float32) if valid is None
             else valid[rows][:, cols].astype(np.float32))
        return model_space(raster[:, rows][:, :, cols], models), v

    return read


def file_reader(src: Any, indexes: list[int], models: Models,
                nodata: float | None) -> WindowReader:
    """:data:`WindowReader` over an open rasterio dataset (the translation's bands), as the
    statistics sample reads it (:func:`geogan.normstats.sampling.read_window`)."""
    from geogan.normalize import valid_mask
    from geogan.normstats.sampling import read_window

    def read(row: int, col: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        raw = read_window(src, indexes, row, col, height, width)
        return model_space(raw, models), valid_mask(raw, nodata).astype(np.float32)

    return read


def default_measure(has_b2a: bool, has_stats: bool = True) -> str:
    """:data:`DEFAULT_MEASURE` (``cycle``) for a CycleGAN; for a model without ``b2a``
    (pix2pix, CUT) ``feature`` with global statistics, else ``tta``."""
    if has_b2a:
        return DEFAULT_MEASURE
    return "feature" if has_stats else "tta"


def load_models(a2b: LoadedGenerator, b2a: LoadedGenerator | None, stats: NormStats | None,
                device: str = "cpu", b2a_stats: NormStats | None = None) -> Models:
    """:class:`Models` for the measures; ``b2a`` normalises with ``b2a_stats`` (or per window)."""
    lo, span = norm_tensors(a2b.in_norm, device)
    net = make_net(a2b, stats, device)
    other = None if b2a is None else make_net(b2a, b2a_stats, device, shared=False)
    return Models(net, lo, span, other)


def raster_models(a2b: LoadedGenerator, b2a: LoadedGenerator | None, raster: np.ndarray,
                  stats: NormStats | None, measure: str = DEFAULT_MEASURE,
                  valid: np.ndarray | None = None, device: str = "cpu") -> Models:
    """:class:`Models` for ``measure`` on one raster ``(C, H, W)`` (raster values).

    ``stats`` are the translation's (None for ``--norm window``); when the measure needs
    the cycle and ``stats`` are given, ``b2a``'s are estimated (:func:`cycle_stats`).
    """
    models = load_models(a2b, b2a, stats, device)
    if "cycle" not in measure_spec(measure)[0]:
        return models
    if b2a is None:
        raise ValueError(f"measure {measure!r} needs the b2a generator (a CycleGAN)")
    if stats is None:
        return models
    read = array_reader(raster, models, valid)
    b2a_stats = cycle_stats(models.a2b, b2a, read, raster.shape[2], raster.shape[1], device)
    return load_models(a2b, b2a, stats, device, b2a_stats)


def model_space(raster: np.ndarray, models: Models) -> np.ndarray:
    """Raster values ``(C, H, W)`` -> model space as the translation does (float32)."""
    import torch

    x = torch.from_numpy(np.asarray(raster, dtype=np.float32)[None]).to(models.in_lo.device)
    return to_model(x, models.in_lo, models.in_span)[0].cpu().numpy()


def raster_confidence(models: Models, raster: np.ndarray, tile: int, overlap: int,
                      blend: str = "cosine", measure: str = DEFAULT_MEASURE,
                      batch_size: int = 1, valid: np.ndarray | None = None) -> np.ndarray:
    """Confidence ``(H, W)`` float32 of a raster ``(C, H, W)`` (raster values), seam-free.

    The windows, their reflection at the edges and the blend weights are the
    translation's (:class:`~geogan.blend.AxisLayout`, :func:`~geogan.blend.blend_weights`):
    each window's confidence is weighted by ``w(y) w(x)`` and the sum divided by the
    summed weight. Pixels where ``valid`` is False are NaN. Working memory beyond the
    input and the output is one batch of windows (and, for ``cycle``, the b2a statistics
    sample, :func:`cycle_stats`).
    """
    import torch

    _, h, w = raster.shape
    ax, ay = AxisLayout(w, tile, overlap), AxisLayout(h, tile, overlap)
    device = models.in_lo.device
    w1 = blend_weights(tile, overlap, blend)
    weights = torch.from_numpy(np.outer(w1, w1).astype(np.float32)).to(device)
    read = array_reader(raster, models, valid)
    out = np.zeros((h, w), dtype=np.float32)
    keys = [(r, c) for r in range(ay.count) for c in range(ax.count)]
    with torch.inference_mode():
        for k in range(0, len(keys), batch_size):
            part = keys[k:k + batch_size]
            origins = [(ay.start(r), ax.start(c)) for r, c in part]
            x = torch.from_numpy(np.stack([read(y0, x0, tile, tile)[0]
                                           for y0, x0 in origins])).to(device)
            conf = (window_confidence(models, x, measure, origins=origins) * weights).cpu()
            for (y0, x0), win in zip(origins, conf.numpy(), strict=True):
                a, b = max(y0, 0), min(y0 + tile, h)
                c0, c1 = max(x0, 0), min(x0 + tile, w)
                out[a:b, c0:c1] += win[a - y0:b - y0, c0 - x0:c1 - x0]
    out *= (1.0 / ay.weight_totals(w1)).astype(np.float32)[:, None]
    out *= (1.0 / ax.weight_totals(w1)).astype(np.float32)[None, :]
    if valid is not None:
        out[~valid] = np.nan
    return out
