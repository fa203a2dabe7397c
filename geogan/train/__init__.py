"""The training loop: CycleGAN, pix2pix or CUT on chips, resumable, fast on CUDA, DDP-ready.

One explicit loop (no framework): each step freezes D, steps G, unfreezes D and
steps D, inside one autocast context chosen once. On CUDA it trains in bf16
autocast (losses and instance norms in float32, no gradient scaler), with
channels_last tensors, cudnn autotuning, fused Adam, optional ``torch.compile``,
pinned-memory loader workers, and no host synchronisation between logging steps.

Under ``torchrun --nproc_per_node N -m geogan train ...`` every process trains
its share of each epoch (DistributedSampler) with DistributedDataParallel; only
rank 0 writes the run folder.

Run folder::

    RUN/model.safetensors + model.json            generators (+ discriminators), metadata
    RUN/train_state.safetensors + .json           optimisers, image pools, RNG, step (--resume)
    RUN/losses.csv                                one row per logging interval
    RUN/loss_plot.png                             the losses drawn, refreshed at each save
    RUN/previews/step_000500.png                  real / fake / reconstructed images
    RUN/tensorboard/                              only when tensorboard is installed

All files are written atomically; the last good checkpoint survives a crash, a
non-finite loss, Ctrl-C and SIGTERM (the last two save one more before exiting).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch
from torch import nn

from geogan.checkpoint import RUN_CHECKPOINT_NAME
from geogan.datasets import EpochSampler, seed_for, steps_per_epoch
from geogan.devices import resolve_device
from geogan.errors import Cancelled, InputError, Terminated, TrainingError
from geogan.fileio import check_free_space
from geogan.models.gan import DATA_LAYOUT, GAN_MODELS
from geogan.progress import CancelCheck, ProgressCallback
from geogan.samplers import open_inputs
from geogan.train.config import (
    PRECISIONS,
    RESUME_MAY_CHANGE,
    TrainConfig,
    merge_stored,
    resume_config,
    validate_config,
)
from geogan.train.run import Run
from geogan.train.run_folder import (
    LOSS_PLOT,
    LOSSES_CSV,
    PREVIEW_DIR,
    RUN_FILES,
    RUN_FOLDER,
    TENSORBOARD_DIR,
    PreviewBatch,
    check_run_dir,
    cleaned_up,
    log_row,
    open_run_dir,
    plot_losses,
)
from geogan.train.runtime import (
    DistInfo,
    StopRequest,
    autocast_context,
    process_group,
    resolve_precision,
    worker_init,
)
from geogan.train.state import after_non_finite, load_resume_point, restore_run, save_run
from geogan.train.step import Optimisers, lr_factor, make_optimizers, optimisation_step

__all__ = [
    "LOSS_PLOT", "LOSSES_CSV", "PRECISIONS", "PREVIEW_DIR", "RESUME_MAY_CHANGE", "RUN_FILES",
    "RUN_FOLDER", "TENSORBOARD_DIR", "DistInfo", "TrainConfig", "autocast_context",
    "lr_factor", "make_optimizers", "optimisation_step", "resolve_precision", "resume_config",
    "train", "validate_config",
]

log = logging.getLogger(__name__)

_NEVER = 2 ** 62  # "no non-finite loss yet" marker of the on-device tracker


def train(config: TrainConfig, progress: ProgressCallback | None = None,
          cancel: CancelCheck | None = None) -> Path:
    """Train a translator as ``config`` says; return the path of the run's checkpoint.

    ``progress(step, total, **losses)`` reports as training goes; ``cancel()``
    returning true stops it after saving a checkpoint (raises :class:`Cancelled`).
    Ctrl-C saves and raises ``KeyboardInterrupt``; SIGTERM saves and raises
    :class:`Cancelled`. Bad input raises :class:`InputError` before the run folder
    is created. To continue a run, pass ``resume_config(run_dir)`` (or a config
    with ``resume=True``, whose run-defining fields are taken from the run).
    """
    dist_info = DistInfo.from_env()
    validate_config(config)
    check_run_dir(config)
    if config.resume:
        config = merge_stored(config)
    device = resolve_device(config.device, dist_info.local_rank)
    precision = resolve_precision(config.precision, device)
    with process_group(dist_info, device):
        return _train(config, dist_info, device, precision, progress, cancel)


def _train(config: TrainConfig, dist_info: DistInfo, device: torch.device, precision: str,
           progress: ProgressCallback | None, cancel: CancelCheck | None) -> Path:
    out = Path(config.output)
    point = load_resume_point(out) if config.resume else None
    data = open_inputs(DATA_LAYOUT[config.model], config.a, config.b, config.crop,
                       windows=config.windows, augment=config.augment, name_a=config.name_a,
                       name_b=config.name_b, norms=None if point is None else point.norms,
                       cache_mb=config.cache_mb,
                       min_length=config.batch_size * dist_info.world_size)
    spe = steps_per_epoch(len(data.dataset), config.batch_size, dist_info.world_size)
    if spe == 0:
        raise InputError(f"{len(data.dataset)} training samples are fewer than one batch of "
                         f"{config.batch_size} x {dist_info.world_size} process(es); lower "
                         "--batch-size or add chips")
    total = config.max_steps or config.epochs * spe

    torch.manual_seed(config.seed)  # same initial weights on every rank
    gan = GAN_MODELS[config.model](data.a.bands, data.b.bands, config.settings(),
                                   seed=config.seed + 1000 * dist_info.rank)
    multiple = gan.size_multiple
    if config.crop % multiple:
        raise InputError(f"--crop {config.crop} does not suit generator "
                         f"{gan.settings.generator}, which needs a multiple of {multiple}; "
                         "change --crop or --generator")
    if dist_info.rank:
        torch.manual_seed(seed_for(config.seed, dist_info.rank))
    run = Run(config, out, dist_info, device, precision, data, gan, total, spe)

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    gan.networks.to(device=device, memory_format=memory_format)
    fused = device.type == "cuda"
    optimisers = Optimisers(*make_optimizers(gan, config.lr, config.beta1, fused),
                            torch.amp.GradScaler(device.type, enabled=precision == "fp16"))

    if point is not None:
        restore_run(run, optimisers, point)
    if run.step >= run.total_steps:
        log.warning("the run already reached step %d of %d; raise --epochs or --max-steps to "
                    "train longer", run.step, run.total_steps)

    g_run: nn.Module = gan.g_net
    d_run: nn.Module = gan.d_net
    if config.compile:
        gan.g_net.compile()
        for key in gan.networks:
            if key not in gan.generator_keys:
                gan.networks[key].compile()
    if dist_info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        g_run = DDP(gan.g_net, device_ids=ids, gradient_as_bucket_view=True)
        d_run = DDP(gan.d_net, device_ids=ids, gradient_as_bucket_view=True)

    sampler = EpochSampler(len(data.dataset), config.seed, dist_info.rank,
                           dist_info.world_size)
    workers = config.workers
    if workers is None:
        workers = min(8, max((os.cpu_count() or 2) // dist_info.world_size - 1, 1)) \
            if device.type == "cuda" else 0
    loader = torch.utils.data.DataLoader(
        data.dataset, batch_size=config.batch_size, sampler=sampler, num_workers=workers,
        pin_memory=device.type == "cuda", drop_last=True, persistent_workers=workers > 0,
        worker_init_fn=worker_init if workers > 0 else None,
        prefetch_factor=4 if workers > 0 else None,
        generator=torch.Generator().manual_seed(config.seed))

    if dist_info.is_main:
        # a save holds the model, the pending and the current training state at once
        weights = sum(p.numel() * p.element_size() for p in gan.networks.parameters())
        check_free_space(out, 4 * weights, certain=True)
        open_run_dir(run)
    if dist_info.enabled:
        torch.distributed.barrier()
    log.info("training %s on %s (%s, %d process(es)): %d steps, %d per epoch, batch %d, "
             "crop %d", config.model, device, precision, dist_info.world_size, run.total_steps,
             spe, config.batch_size, config.crop)

    stop = StopRequest()
    with cleaned_up(run), stop.installed():
        _loop(run, g_run, d_run, optimisers, sampler, loader, memory_format, progress, cancel,
              stop)
    return out / RUN_CHECKPOINT_NAME


# -- the loop -----------------------------------------------------------------------------

def _loop(run: Run, g_run: nn.Module, d_run: nn.Module, optimisers: Optimisers,
          sampler: EpochSampler, loader: torch.utils.data.DataLoader,
          memory_format: torch.memory_format, progress: ProgressCallback | None,
          cancel: CancelCheck | None, stop: StopRequest) -> None:
    config, gan, device = run.config, run.gan, run.device
    names = gan.loss_names
    amp = autocast_context(device, run.precision)
    sums = torch.zeros(len(names), device=device)
    bad = torch.full((len(names),), _NEVER, dtype=torch.int64, device=device)
    count = 0
    t_last = time.perf_counter()
    t_start = t_last - (run.history[-1].get("elapsed_s", 0.0) if run.history else 0.0)
    last_progress = 0.0
    preview = PreviewBatch(run, memory_format)

    while run.step < run.total_steps:
        sampler.set_epoch(run.epoch, run.epoch_step * config.batch_size)
        for batch in loader:
            real_a = batch["A"].to(device, non_blocking=True).contiguous(
                memory_format=memory_format)
            real_b = batch["B"].to(device, non_blocking=True).contiguous(
                memory_format=memory_format)
            lr = config.lr * lr_factor(run.step, run.total_steps)
            optimisers.set_lr(lr)

            losses = optimisation_step(gan, g_run, d_run, optimisers.g, optimisers.d,
                                       optimisers.scaler, amp, real_a, real_b)
            run.step += 1
            run.epoch_step += 1
            if run.epoch_step >= run.steps_per_epoch:  # the loader ends here too
                run.epoch, run.epoch_step = run.epoch + 1, 0
            parts = torch.stack([losses[n].detach().float() for n in names])
            sums += parts
            count += 1
            bad = torch.where(torch.isfinite(parts), bad, bad.clamp(max=run.step))

            last = run.step >= run.total_steps
            sync = (run.step % config.log_every == 0 or run.step % config.save_every == 0
                    or run.step % config.preview_every == 0 or last)
            if device.type == "cpu" and not run.dist.enabled:
                sync = True  # checking costs nothing without a GPU to wait for
            if sync:
                _check_finite(run, bad)
            logged = run.step % config.log_every == 0 or last
            if logged:
                t_last = _emit_row(run, lr, sums, count, t_last, t_start, progress)
                count = 0
                last_progress = time.monotonic()
            elif progress is not None and run.dist.is_main \
                    and time.monotonic() - last_progress > 0.5:
                progress(run.step, run.total_steps)
                last_progress = time.monotonic()
            stop_now = sync and _stop_requested(run, stop, cancel)
            if stop_now and not logged:
                t_last = _emit_row(run, lr, sums, count, t_last, t_start, progress)
                count = 0
            if run.step % config.preview_every == 0 or last:
                preview.save(run.step)
            if run.step % config.save_every == 0 or last or stop_now:
                save_run(run, optimisers)
                plot_losses(run)
            if stop_now:
                _stopped(run, stop)
            if last:
                break
    if run.saved_step != run.step:  # e.g. resumed a finished run
        save_run(run, optimisers)
    plot_losses(run)


def _emit_row(run: Run, lr: float, sums: torch.Tensor, count: int, t_last: float,
              t_start: float, progress: ProgressCallback | None) -> float:
    """Log the mean losses since the last row (CSV, TensorBoard, progress); reset ``sums``."""
    now = time.perf_counter()
    means = _reduce_means(run, sums, count)
    row = {"step": float(run.step), "epoch": run.epoch + run.epoch_step / run.steps_per_epoch,
           "lr": lr,
           "images_per_s": count * run.config.batch_size * run.dist.world_size
           / max(now - t_last, 1e-9),
           "elapsed_s": now - t_start, **means}
    sums.zero_()
    log_row(run, row)
    if progress is not None and run.dist.is_main:
        progress(run.step, run.total_steps, **_progress_info(run, row))
    return now


def _check_finite(run: Run, bad: torch.Tensor) -> None:
    """Raise :class:`TrainingError` naming the first non-finite loss and its step."""
    flags = bad.clone()
    if run.dist.enabled:
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MIN)
    values = flags.tolist()
    first = min(values)
    if first >= _NEVER:
        return
    name = run.gan.loss_names[values.index(first)]
    raise TrainingError(f"loss {name} became non-finite at step {first}; training stopped and "
                        f"{after_non_finite(run)}")


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
    where = (f"checkpoint of step {run.step} saved in {run.out}; continue with "
             f"'geogan train --resume -o {run.out}'")
    if stop.reason == "Ctrl-C":
        log.warning("training interrupted: %s", where)
        raise KeyboardInterrupt
    if stop.reason == "SIGTERM":
        raise Terminated(f"training stopped (SIGTERM); {where}")
    raise Cancelled(f"training stopped ({stop.reason}); {where}")


def _reduce_means(run: Run, sums: torch.Tensor, count: int) -> dict[str, float]:
    totals = sums.clone()
    if run.dist.enabled:
        torch.distributed.all_reduce(totals)
    values = (totals / max(count * run.dist.world_size, 1)).tolist()
    return dict(zip(run.gan.loss_names, values, strict=True))


def _progress_info(run: Run, row: dict[str, float]) -> dict[str, float | str]:
    info: dict[str, float | str] = {"epoch": round(row["epoch"], 2),
                                    "img_s": round(row["images_per_s"], 2)}
    for name in run.gan.loss_names:
        if name.startswith(("D", "G_total", "G_L1")):
            info[name] = round(row[name], 4)
    return info


