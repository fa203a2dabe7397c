"""Choosing the torch device from a ``--device`` option, for training and translation alike."""

from __future__ import annotations

import os
from typing import Any

from geogan.errors import InputError


def resolve_device(spec: str, local_rank: int | None = None) -> Any:
    """``auto`` -> CUDA when present, else CPU; returns a ``torch.device``.

    ``cuda`` means ``cuda:LOCAL_RANK`` (``local_rank``, else the torchrun
    environment variable, else 0). Asking for CUDA without a GPU, a GPU index
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
            index = local_rank if local_rank is not None else int(
                os.environ.get("LOCAL_RANK", "0"))
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
