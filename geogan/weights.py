"""Stored weights checked against the network they are for, before anything is allocated.

A checkpoint or a ``.pth`` file says which network its tensors belong to (metadata, or
the shapes of its first convolution); a file can claim a network far larger than its
tensors, or hold tensors of another network or type. :func:`expected_state` builds the
network on torch's ``meta`` device (shapes only, no memory) and :func:`check_weights`
compares the stored names, shapes and types with it, so a mismatch is refused in one
line before the real network is built or a tensor is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from geogan.contract.limits import WEIGHT_DTYPES, arch_problem, dtype_name, is_weight_dtype
from geogan.errors import CheckpointError, first_line

#: Stored shape and type (either library's spelling) of each tensor, by state-dict name.
StoredTensors = Mapping[str, tuple[Sequence[int], str]]

#: Generator arguments bounded by geogan.contract.limits.ARCH_LIMITS.
_BOUNDED = ("in_channels", "out_channels", "ngf")


def check_arch(source: str, kwargs: Mapping[str, Any]) -> None:
    """Refuse generator arguments outside :data:`~geogan.contract.limits.ARCH_LIMITS`."""
    for name in _BOUNDED:
        if name in kwargs:
            problem = arch_problem(name, kwargs[name])
            if problem is not None:
                raise CheckpointError(f"{source}: the generator's {problem}; geogan builds "
                                      "no such network")


def expected_state(source: str, arch: str, kwargs: Mapping[str, Any]
                   ) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{name: (shape, dtype)}`` of the state dict of generator ``arch(**kwargs)``.

    The network is built on the ``meta`` device: nothing is allocated. Arguments the
    builder refuses raise :class:`CheckpointError` naming ``source``.
    """
    import torch

    from geogan.models import build_generator

    check_arch(source, kwargs)
    try:
        with torch.device("meta"):
            net = build_generator(arch, **kwargs)
    except KeyError as exc:
        raise CheckpointError(f"{source} names an unknown architecture {arch!r}; upgrade "
                              "geogan") from exc
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{source}: {arch} cannot be built with {dict(kwargs)} "
                              f"({first_line(exc)}); use a checkpoint written by geogan"
                              ) from exc
    return {k: (tuple(v.shape), str(v.dtype).removeprefix("torch."))
            for k, v in net.state_dict().items()}


def _listed(names: Sequence[str], most: int = 3) -> str:
    shown = ", ".join(repr(n[:80]) for n in list(names)[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def check_weights(source: str, arch: str, stored: StoredTensors,
                  expected: Mapping[str, tuple[tuple[int, ...], str]]) -> None:
    """Refuse ``stored`` tensors unless they are exactly ``expected``'s names and shapes, in
    a float type (integer tensors, batch norm's step counter, must keep their own type)."""
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing or unexpected:
        what = "; ".join(part for part in (
            f"missing {_listed(missing)}" if missing else "",
            f"unexpected {_listed(unexpected)}" if unexpected else "") if part)
        raise CheckpointError(f"the weights in {source} do not fit {arch}: {what}; use the "
                              "checkpoint written with them")
    for name, (want_shape, want_dtype) in expected.items():
        shape, dtype = stored[name]
        if tuple(shape) != want_shape:
            raise CheckpointError(f"the weights in {source} do not fit {arch}: {name} is "
                                  f"{tuple(shape)}, the network needs {want_shape}; use the "
                                  "checkpoint written with them")
        float_wanted = want_dtype in WEIGHT_DTYPES.values()
        if (float_wanted and not is_weight_dtype(dtype)) \
                or (not float_wanted and dtype_name(dtype) != want_dtype):
            kinds = ", ".join(WEIGHT_DTYPES.values()) if float_wanted else want_dtype
            raise CheckpointError(f"{source}: tensor {name} holds {dtype_name(dtype)} values; "
                                  f"geogan reads such weights as {kinds} only (a cast would "
                                  "not give the trained network)")
