"""The bounds geogan holds every network, weight file and normalisation to, stated once.

A checkpoint, a ``geogan import`` or a training run outside them is refused in one line
before any network is built or any tensor is read, so a file that claims a network
thousands of filters wide cannot take the machine's memory:

* :data:`ARCH_LIMITS`: the widths a network may have (``ngf``/``ndf``, filters in the
  first layer of the generator/discriminator) and the bands a generator may take or give;
* :data:`WEIGHT_DTYPES`: the types weights may be stored in (any other, such as int8, is
  not a model's weights: casting it would give a constant image);
* :func:`norm_problem`: what a domain's normalisation (``dtype``, ``lo``, ``hi``) needs so
  that translation, which scales in float32, gives finite values;
* :func:`float32_problem`: the same for the instance-norm statistics of ``--stats`` files.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

from .choices import RASTER_DTYPES

#: Inclusive ranges of the integer arguments of geogan's networks.
ARCH_LIMITS: dict[str, tuple[int, int]] = {
    "ngf": (1, 512),
    "ndf": (1, 512),
    "in_channels": (1, 1024),
    "out_channels": (1, 1024),
}

#: Types weights may be stored in (safetensors' names -> torch's). Batch norm's step
#: counter (``num_batches_tracked``) is an integer: it must keep its network's own type.
WEIGHT_DTYPES: dict[str, str] = {"F32": "float32", "F16": "float16", "BF16": "bfloat16",
                                 "F64": "float64"}
#: safetensors' names of the other types, for messages.
OTHER_DTYPES: dict[str, str] = {"I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
                                "U8": "uint8", "U16": "uint16", "U32": "uint32",
                                "U64": "uint64", "BOOL": "bool", "F8_E4M3": "float8_e4m3fn",
                                "F8_E5M2": "float8_e5m2", "C64": "complex64"}

#: The largest finite float32: normalisation is computed in float32.
FLOAT32_MAX = 3.4028234663852886e38


def dtype_name(dtype: str) -> str:
    """``"F32"`` (safetensors) or ``"torch.int8"`` (torch) -> ``"float32"``, ``"int8"``."""
    text = str(dtype).removeprefix("torch.")
    return WEIGHT_DTYPES.get(text) or OTHER_DTYPES.get(text) or text.lower()


def is_weight_dtype(dtype: str) -> bool:
    """True for the float types weights may be stored in (either library's spelling)."""
    return dtype_name(dtype) in WEIGHT_DTYPES.values()


def range_text(name: str) -> str:
    """``"1 to 512"``: the range of :data:`ARCH_LIMITS` ``name``, for messages."""
    low, high = ARCH_LIMITS[name]
    return f"{low} to {high}"


def arch_problem(name: str, value: Any) -> str | None:
    """``None`` when ``value`` suits the network argument ``name``, else what is wrong."""
    low, high = ARCH_LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} {value!r} is not a whole number from {range_text(name)}"
    if not low <= value <= high:
        return f"{name} {value} is outside {range_text(name)}"
    return None


def _as_float32(value: Any) -> float | None:
    """``value`` rounded to float32, ``None`` when it is no finite float32 number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        f = struct.unpack("<f", struct.pack("<f", float(value)))[0]
    except (OverflowError, struct.error):
        return None
    return f if math.isfinite(f) else None


def float32_problem(values: Sequence[Any]) -> str | None:
    """``None`` when every value is a finite float32 number, else the first that is not."""
    for v in values:
        if _as_float32(v) is None:
            return f"{v!r} is not a finite number within float32's ±{FLOAT32_MAX:.1e}"
    return None


def norm_problem(dtype: Any, lo: Any, hi: Any) -> str | None:
    """``None`` when a normalisation maps ``[lo, hi]`` per band to ``[-1, 1]`` in float32 with
    finite results, else what is wrong: an unknown dtype, a NaN or infinite bound, ``lo``
    not below ``hi`` (in float32), or a span ``hi - lo`` beyond float32."""
    if dtype not in RASTER_DTYPES:
        return (f"dtype {dtype!r} is not one geogan reads or writes "
                f"({', '.join(RASTER_DTYPES)})")
    if not isinstance(lo, list | tuple) or not isinstance(hi, list | tuple) \
            or len(lo) != len(hi) or not lo:
        return "lo and hi are not lists of one number per band"
    for band, (low, high) in enumerate(zip(lo, hi, strict=True), 1):
        low32, high32 = _as_float32(low), _as_float32(high)
        if low32 is None or high32 is None:
            return (f"band {band} has lo {low!r} and hi {high!r}; both must be finite "
                    f"numbers within float32's ±{FLOAT32_MAX:.1e}")
        if not low32 < high32:
            return f"band {band} has lo {low!r} not below hi {high!r}"
        if _as_float32(high32 - low32) is None:
            return (f"band {band} spans {high - low:.3g} (hi - lo), beyond float32's "
                    f"{FLOAT32_MAX:.1e}")
    return None
