"""Probing a generator with a small forward pass: the memory an estimation pass needs per
pixel, the order of its instance-norm layers, and the cost of measuring them one by one."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from geogan.normstats.layers import norm_layers

if TYPE_CHECKING:
    import torch
    from torch import nn

#: Factor of the largest layer output in the memory estimate (see :class:`Probe`), which keeps
#: the statistics sample within ``SAMPLE_MEMORY`` (measured peaks agree).
PROBE_FACTOR = 4


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
