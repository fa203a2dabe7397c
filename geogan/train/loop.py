"""The training loop: steps over the epochs, deciding after each step whether to check,
log, preview, save or stop."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from geogan.datasets import EpochSampler
from geogan.errors import Cancelled, Terminated
from geogan.progress import CancelCheck, ProgressCallback
from geogan.train.run import Run
from geogan.train.run_folder import PreviewBatch, plot_losses
from geogan.train.runtime import StopRequest, autocast_context
from geogan.train.state import save_run
from geogan.train.step import Optimisers, lr_factor, optimisation_step
from geogan.train.tally import LossTally

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopParts:
    """What the loop works with besides the run's state.

    ``g_run``/``d_run`` are ``gan.g_net``/``gan.d_net`` or their DDP wrappers.
    """

    g_run: nn.Module
    d_run: nn.Module
    optimisers: Optimisers
    sampler: EpochSampler
    loader: torch.utils.data.DataLoader
    memory_format: torch.memory_format
    progress: ProgressCallback | None
    cancel: CancelCheck | None
    stop: StopRequest


def run_loop(run: Run, parts: LoopParts) -> None:
    """Train from ``run.step`` to ``run.total_steps``; the last step is always saved."""
    config, device, opts = run.config, run.device, parts.optimisers
    amp = autocast_context(device, run.precision)
    tally = LossTally(run, parts.progress)
    preview = PreviewBatch(run, parts.memory_format)

    while run.step < run.total_steps:
        parts.sampler.set_epoch(run.epoch, run.epoch_step * config.batch_size)
        for batch in parts.loader:
            real_a = batch["A"].to(device, non_blocking=True).contiguous(
                memory_format=parts.memory_format)
            real_b = batch["B"].to(device, non_blocking=True).contiguous(
                memory_format=parts.memory_format)
            lr = config.lr * lr_factor(run.step, run.total_steps)
            opts.set_lr(lr)
            losses = optimisation_step(run.gan, parts.g_run, parts.d_run, opts.g, opts.d,
                                       opts.scaler, amp, real_a, real_b)
            run.advance()
            tally.add(losses)
            last = run.step >= run.total_steps
            stop_now = _report(run, parts, tally, lr, last)
            _keep(run, parts, preview, last, stop_now)
            if last:
                break
    if run.saved_step != run.step:  # e.g. resumed a finished run
        save_run(run, opts, preview.outputs_finite)
    plot_losses(run)


def _report(run: Run, parts: LoopParts, tally: LossTally, lr: float, last: bool) -> bool:
    """Check and log the losses when the step calls for it; true if the run is to stop."""
    config = run.config
    sync = (run.step % config.log_every == 0 or run.step % config.save_every == 0
            or run.step % config.preview_every == 0 or last)
    if run.device.type == "cpu" and not run.dist.enabled:
        sync = True  # checking costs nothing without a GPU to wait for
    if sync:
        tally.check_finite()
    logged = run.step % config.log_every == 0 or last
    if logged:
        tally.emit_row(lr)
    else:
        tally.report_progress()
    stop_now = sync and _stop_requested(run, parts.stop, parts.cancel)
    if stop_now and not logged:
        tally.emit_row(lr)
    return stop_now


def _keep(run: Run, parts: LoopParts, preview: PreviewBatch, last: bool,
          stop_now: bool) -> None:
    """Write the preview and checkpoint the step calls for; then stop if asked."""
    config = run.config
    if run.step % config.preview_every == 0 or last:
        preview.save(run.step)
    if run.step % config.save_every == 0 or last or stop_now:
        save_run(run, parts.optimisers, preview.outputs_finite)
        plot_losses(run)
    if stop_now:
        _stopped(run, parts.stop)


def _stop_requested(run: Run, stop: StopRequest, cancel: CancelCheck | None) -> bool:
    if cancel is not None and run.dist.is_main and stop.reason is None and cancel():
        stop.reason = "cancelled"
    flag = stop.reason is not None
    if run.dist.enabled:
        t = torch.tensor([1.0 if flag else 0.0], device=run.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        flag = bool(t.item() > 0)
        if flag and stop.reason is None:
            stop.reason = "stopped by another process"
    return flag


def _stopped(run: Run, stop: StopRequest) -> None:
    if run.dist.enabled:
        torch.distributed.barrier()
    # the parameter, not a command line: the CLI says --resume, QGIS its check box
    where = f"checkpoint of step {run.step} saved; continue the run in {run.out} with `resume`"
    if stop.reason == "Ctrl-C":
        log.warning("training interrupted: %s", where)
        raise KeyboardInterrupt
    if stop.reason == "SIGTERM":
        raise Terminated(f"training stopped (SIGTERM); {where}")
    raise Cancelled(f"training stopped ({stop.reason}); {where}")

