"""The training loop: CycleGAN, pix2pix or CUT on chips, resumable, fast on CUDA, DDP-ready.

One explicit loop (no framework): each step freezes D, steps G, unfreezes D and
steps D, inside one autocast context chosen once. On CUDA it trains in bf16
autocast (losses and instance norms in float32, no gradient scaler), with
channels_last tensors, cudnn autotuning, fused Adam, optional ``torch.compile``,
pinned-memory loader workers, and no host synchronisation between logging steps.

Under ``torchrun --nproc_per_node N -m geogan train ...`` every process trains
its share of each epoch (DistributedSampler) with DistributedDataParallel; only
rank 0 writes the run folder.

One process at a time trains in a run folder (it holds the folder's lock, see
:mod:`geogan.fileio.lock`); a new run over an old one (``overwrite``) is built beside
it and replaces it at its first checkpoint, so a failure before then keeps the old run.

Run folder::

    RUN/model.safetensors + model.json            generators (+ discriminators), metadata
    RUN/train_state.safetensors + .json           optimisers, image pools, RNG, step (--resume)
    RUN/losses.csv                                one row per logging interval
    RUN/loss_plot.png                             the losses drawn, refreshed at each save
    RUN/previews/step_000500.png                  real / fake / reconstructed images
    RUN/tensorboard/                              only when tensorboard is installed

All files are written atomically; the last good checkpoint survives a crash, a
non-finite loss, Ctrl-C and SIGTERM (the last two save one more before exiting).

The package, in the order a run uses it: ``config`` (what to train, the resume policy),
``runtime`` (processes, precision, stop signals), ``run`` (the state its parts share),
``step`` (optimisers and one optimisation step), ``run_folder`` (its files and logs),
``state`` (checkpoints and resuming), ``tally`` (the losses between log rows) and ``loop``;
:func:`train` here puts them together.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from geogan.contract.limits import arch_problem, range_text
from geogan.contract.names import RUN_CHECKPOINT_NAME
from geogan.datasets import EpochSampler, TrainingData, seed_for, steps_per_epoch
from geogan.devices import launch_env, resolve_device
from geogan.errors import InputError
from geogan.fileio import check_free_space, output_folder
from geogan.models.gan import GAN_MODELS, GANModel
from geogan.progress import CancelCheck, ProgressCallback
from geogan.samplers import open_inputs
from geogan.train.config import (
    RESUME_MAY_CHANGE,
    TrainConfig,
    merge_stored,
    resume_config,
    validate_config,
)
from geogan.train.loop import LoopParts, run_loop
from geogan.train.run import Run
from geogan.train.run_folder import (
    RUN_FOLDER,
    check_run_dir,
    cleaned_up,
    locked_run_dir,
    open_run_dir,
)
from geogan.train.runtime import (
    DistInfo,
    StopRequest,
    autocast_context,
    process_group,
    resolve_precision,
    worker_init,
)
from geogan.train.state import load_resume_point, restore_run
from geogan.train.step import Optimisers, lr_factor, make_optimizers, optimisation_step

__all__ = [
    "RESUME_MAY_CHANGE", "RUN_FOLDER", "DistInfo", "TrainConfig", "autocast_context",
    "lr_factor", "make_optimizers", "optimisation_step", "resolve_precision", "resume_config",
    "train", "validate_config",
]

log = logging.getLogger(__name__)


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
    dist_info = launch_env()
    validate_config(config)
    with locked_run_dir(Path(config.output), dist_info.is_main):  # one job at a time
        check_run_dir(config)
        if config.resume:
            config = merge_stored(config)
            validate_config(config)  # the run's stored settings, as a new run's
        device = resolve_device(config.device, dist_info.local_rank)
        precision = resolve_precision(config.precision, device)
        with process_group(dist_info, device):
            _train(config, dist_info, device, precision, progress, cancel)
    return Path(config.output) / RUN_CHECKPOINT_NAME


def _train(config: TrainConfig, dist_info: DistInfo, device: torch.device, precision: str,
           progress: ProgressCallback | None, cancel: CancelCheck | None) -> None:
    out = output_folder(config.output)
    point = load_resume_point(out) if config.resume else None
    data = open_inputs(config.model, config.a, config.b, config.crop,
                       windows=config.windows, augment=config.augment, name_a=config.name_a,
                       name_b=config.name_b, norms=None if point is None else point.norms,
                       cache_mb=config.cache_mb, direction=config.direction,
                       min_length=config.batch_size * dist_info.world_size)
    spe = steps_per_epoch(len(data.dataset), config.batch_size, dist_info.world_size)
    if spe == 0:
        raise InputError(f"{len(data.dataset)} training samples are fewer than one batch of "
                         f"{config.batch_size} x {dist_info.world_size} process(es); lower "
                         "`batch_size` or add chips")
    run = Run(config, out, dist_info, device, precision, data, _new_gan(config, data, dist_info),
              config.max_steps or config.epochs * spe, spe)
    memory_format = _place(run.gan, device)
    optimisers = Optimisers(*make_optimizers(run.gan, config.lr, config.beta1,
                                             device.type == "cuda"),
                            torch.amp.GradScaler(device.type, enabled=precision == "fp16"))
    if point is not None:
        restore_run(run, optimisers, point)
    if run.step >= run.total_steps:
        log.warning("the run already reached step %d of %d; raise `epochs` or `max_steps` to "
                    "train longer", run.step, run.total_steps)
    g_run, d_run = _runnable(run.gan, config.compile, dist_info, device)
    sampler, loader = _loader(data, config, dist_info, device)
    stop = StopRequest()
    with cleaned_up(run):  # also what making the folder ready made, if that fails
        _open_folder(run)
        log.info("training %s on %s (%s, %d process(es)): %d steps, %d per epoch, batch %d, "
                 "crop %d", config.model, device, precision, dist_info.world_size,
                 run.total_steps, spe, config.batch_size, config.crop)
        with stop.installed():
            run_loop(run, LoopParts(g_run, d_run, optimisers, sampler, loader, memory_format,
                                    progress, cancel, stop))


def _new_gan(config: TrainConfig, data: TrainingData, dist_info: DistInfo) -> GANModel:
    """The model, with the same initial weights on every rank; then a random stream per rank."""
    for side, bands in (("a", data.a.bands), ("b", data.b.bands)):
        if arch_problem("in_channels", bands) is not None:  # what a checkpoint may hold
            raise InputError(f"`{side}` has {bands} bands; geogan's networks take "
                             f"{range_text('in_channels')}: cut chips of fewer bands with "
                             "'geogan tile `bands`'")
    torch.manual_seed(config.seed)  # same initial weights on every rank
    gan = GAN_MODELS[config.model](data.a.bands, data.b.bands, config.settings(),
                                   seed=config.seed + 1000 * dist_info.rank)
    multiple = gan.size_multiple
    if config.crop % multiple:
        raise InputError(f"`crop` {config.crop} does not suit generator "
                         f"{gan.settings.generator}, which needs a multiple of {multiple}; "
                         "change `crop` or `generator`")
    if dist_info.rank:
        torch.manual_seed(seed_for(config.seed, dist_info.rank))
    return gan


def _place(gan: GANModel, device: torch.device) -> torch.memory_format:
    """Move the networks to ``device``; return the memory format batches take there."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    gan.networks.to(device=device, memory_format=memory_format)
    return memory_format


def _runnable(gan: GANModel, compiled: bool, dist_info: DistInfo,
              device: torch.device) -> tuple[nn.Module, nn.Module]:
    """The networks as the step calls them: compiled if asked, wrapped in DDP under torchrun."""
    g_run: nn.Module = gan.g_net
    d_run: nn.Module = gan.d_net
    if compiled:
        gan.g_net.compile()
        for key in gan.networks:
            if key not in gan.generator_keys:
                gan.networks[key].compile()
    if dist_info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        g_run = DDP(gan.g_net, device_ids=ids, gradient_as_bucket_view=True)
        d_run = DDP(gan.d_net, device_ids=ids, gradient_as_bucket_view=True)
    return g_run, d_run


def _loader(data: TrainingData, config: TrainConfig, dist_info: DistInfo,
            device: torch.device) -> tuple[EpochSampler, torch.utils.data.DataLoader]:
    """This process's share of each epoch, and the loader that reads it."""
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
    return sampler, loader


def _open_folder(run: Run) -> None:
    """Rank 0 makes the run folder ready (with room for a save); the others wait for it."""
    if run.dist.is_main:
        # a save holds the model, the pending and the current training state at once
        weights = sum(p.numel() * p.element_size() for p in run.gan.networks.parameters())
        check_free_space(run.out, 4 * weights, certain=True)
        open_run_dir(run)
    if run.dist.enabled:
        torch.distributed.barrier()
