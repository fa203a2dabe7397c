"""How this process trains: its place among the torchrun processes and their group, the
precision and its autocast context, and the signals that ask the run to stop."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

import torch

from geogan.devices import LaunchEnv, autocast
from geogan.errors import TrainingError

log = logging.getLogger(__name__)


#: This process's place among the torchrun processes (:func:`geogan.devices.launch_env`).
DistInfo = LaunchEnv


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 on a CUDA GPU that supports it, fp32 otherwise."""
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16"
        return "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise TrainingError("`precision` fp16 needs a CUDA GPU; use fp32 (or bf16) on the CPU")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise TrainingError("this GPU has no bfloat16 support; use `precision` fp16 or fp32")
    return precision


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The one precision context of the run (a no-op for fp32): :func:`geogan.devices.autocast`."""
    return autocast(precision, device)


def worker_init(worker_id: int) -> None:
    """Set up a data loader worker process."""
    # Ctrl-C goes to the whole process group; only the main process handles it
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def process_group(dist_info: DistInfo, device: torch.device) -> Iterator[None]:
    """Join the torchrun processes' group for the run, unless one is set up already."""
    if not dist_info.enabled or torch.distributed.is_initialized():
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    global gloo_threads_left
    backend = "nccl" if device.type == "cuda" else "gloo"
    torch.distributed.init_process_group(
        backend=backend, rank=dist_info.rank, world_size=dist_info.world_size)
    try:
        yield
        # rank 0 may still be writing the last checkpoint: leave the group together,
        # a rank tearing gloo down under a busy peer can abort the process
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()
        # torch's gloo backend keeps its worker threads ("pt_gloo_runloop", "gloo_tcp_loop")
        # running after destroy_process_group; they are torn down with C++'s static objects
        # when the process exits, which now and then ends it with SIGABRT ("terminate called
        # without an active exception"). The CLI ends such a process without that teardown.
        gloo_threads_left = gloo_threads_left or backend == "gloo"


#: True once this process has left a gloo process group (see :func:`process_group`): its
#: exit should skip C++'s static destructors (``os._exit`` after flushing).
gloo_threads_left = False


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.reason is not None:
            raise KeyboardInterrupt  # second Ctrl-C: stop at once
        self.reason = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        log.warning("%s: saving a checkpoint after this step (Ctrl-C again to abort)",
                    self.reason)

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be set from the main thread
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)

