"""This process's place among torchrun's processes, and the torch device of a ``--device``
option, for training and translation alike."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from geogan.errors import InputError


@dataclass(frozen=True)
class LaunchEnv:
    """This process's place among the processes torchrun started (alone: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """Whether several processes share the work (``WORLD_SIZE`` > 1)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


#: The variables torchrun sets, with the value each has when a process runs alone.
LAUNCH_VARIABLES = {"RANK": 0, "WORLD_SIZE": 1, "LOCAL_RANK": 0}


def launch_env(environ: Mapping[str, str] | None = None) -> LaunchEnv:
    """``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` as torchrun sets them (``os.environ``).

    Unset variables take their values of a process running alone. A value that is
    not an integer, ``WORLD_SIZE`` under 1, ``RANK`` outside ``0..WORLD_SIZE-1`` or
    ``LOCAL_RANK`` outside ``0..WORLD_SIZE-1`` raises a one-line :class:`InputError`.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, int] = {}
    for name, alone in LAUNCH_VARIABLES.items():
        text = environ.get(name, "").strip()
        try:
            values[name] = int(text) if text else alone
        except ValueError:
            raise InputError(f"{name}={text!r} is not an integer; launch with torchrun, or "
                             f"unset {name} to run one process") from None
    rank, world, local = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"RANK={rank} does not fit WORLD_SIZE={world} (torchrun numbers the "
                         "processes 0 to WORLD_SIZE-1); launch with torchrun")
    if not 0 <= local < world:
        raise InputError(f"LOCAL_RANK={local} does not fit WORLD_SIZE={world} (torchrun "
                         "numbers the processes 0 to WORLD_SIZE-1); launch with torchrun")
    return LaunchEnv(rank, world, local)


def resolve_device(spec: str, local_rank: int | None = None) -> Any:
    """``auto`` -> CUDA when present, else CPU; returns a ``torch.device``.

    ``cuda`` means ``cuda:LOCAL_RANK`` (``local_rank``, else torchrun's, see
    :func:`launch_env`). Asking for CUDA without a GPU, a GPU index
    that does not exist, or an unknown name raises :class:`InputError`.
    """
    import torch

    spec = spec.strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(f"`device` {spec} asks for CUDA but this torch "
                             f"({torch.__version__}) sees no CUDA GPU; use `device` cpu "
                             "or install a CUDA build of torch")
        if spec == "cuda":
            index = local_rank if local_rank is not None else launch_env().local_rank
        else:
            index = int(spec.split(":", 1)[1] or 0)
        if index >= torch.cuda.device_count():
            raise InputError(f"`device` {spec}: GPU {index} does not exist (found "
                             f"{torch.cuda.device_count()}); pick another device")
        return torch.device("cuda", index)
    raise InputError(f"unknown `device` {spec!r}; use auto, cpu, cuda or cuda:N")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (x86 AVX512-BF16 or AMX-BF16).

    Without it, bf16 autocast on the CPU is emulated and slower than fp32.
    """
    import torch

    caps = getattr(torch.cpu, "get_capabilities", None)
    if caps is not None:
        try:
            found = caps()
            return bool(found.get("avx512_bf16") or found.get("amx_bf16"))
        except Exception:  # an unusual torch build: fall back to the kernel's CPU flags
            pass
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


def autocast(precision: str, device: Any) -> contextlib.AbstractContextManager[Any]:
    """The one precision context a network runs in (training, translation, statistics):
    bf16 or fp16 autocast on ``device``'s type (a ``torch.device`` or ``"cuda:0"``), none
    for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    return torch.autocast(device_type=kind,
                          dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
