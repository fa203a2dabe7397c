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

import csv
import io
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from torch import nn

from geogan.checkpoint import (
    RUN_CHECKPOINT_NAME,
    TRAIN_STATE_NAME,
    TRAIN_STATE_PENDING,
    load_checkpoint,
    optimizer_state_from_tensors,
    optimizer_state_to_tensors,
    read_metadata,
    repair_sidecar,
    save_checkpoint,
    strip_prefix,
)
from geogan.datasets import (
    EpochSampler,
    TrainingData,
    seed_for,
    steps_per_epoch,
)
from geogan.devices import resolve_device
from geogan.errors import (
    Cancelled,
    CheckpointError,
    InputError,
    OutputError,
    Terminated,
    TrainingError,
    first_line,
)
from geogan.fileio import (
    FolderKind,
    atomic_output,
    check_free_space,
    check_output_file,
    check_replaceable,
    fault_point,
    write_error,
)
from geogan.models.gan import (
    DATA_LAYOUT,
    GAN_MODELS,
    GANModel,
)
from geogan.normalize import BandNorm
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
from geogan.train.runtime import (
    DistInfo,
    StopRequest,
    autocast_context,
    process_group,
    resolve_precision,
    worker_init,
)
from geogan.train.step import lr_factor, make_optimizers, optimisation_step

__all__ = [
    "LOSS_PLOT", "LOSSES_CSV", "PRECISIONS", "PREVIEW_DIR", "RESUME_MAY_CHANGE", "RUN_FILES",
    "RUN_FOLDER", "TENSORBOARD_DIR", "DistInfo", "TrainConfig", "autocast_context",
    "lr_factor", "make_optimizers", "optimisation_step", "resolve_precision", "resume_config",
    "train", "validate_config",
]

log = logging.getLogger(__name__)

LOSSES_CSV = "losses.csv"
LOSS_PLOT = "loss_plot.png"
PREVIEW_DIR = "previews"


def _owned_by_run(rel: PurePosixPath) -> bool:
    """Files geogan writes in a run folder."""
    top = rel.parts[0]
    if len(rel.parts) == 1:
        return rel.name in RUN_FILES
    if top == PREVIEW_DIR:
        return len(rel.parts) == 2 and rel.suffix == ".png"
    return top == TENSORBOARD_DIR


TENSORBOARD_DIR = "tensorboard"
#: The files of a run folder besides previews/ and tensorboard/.
RUN_FILES = frozenset({
    RUN_CHECKPOINT_NAME, Path(RUN_CHECKPOINT_NAME).with_suffix(".json").name,
    TRAIN_STATE_NAME, Path(TRAIN_STATE_NAME).with_suffix(".json").name,
    TRAIN_STATE_PENDING, Path(TRAIN_STATE_PENDING).with_suffix(".json").name,
    LOSSES_CSV, LOSS_PLOT})
#: What ``geogan train --overwrite`` may replace: a run folder holding only a run's files.
RUN_FOLDER = FolderKind("run folder", (RUN_CHECKPOINT_NAME, LOSSES_CSV,
                                                TRAIN_STATE_NAME, TRAIN_STATE_PENDING),
                        _owned_by_run)
_NEVER = 2 ** 62  # "no non-finite loss yet" marker of the on-device tracker


# -- the run ------------------------------------------------------------------------------

@dataclass
class _Run:
    """Mutable state of one training run (positions, history, writers)."""

    config: TrainConfig
    out: Path
    dist: DistInfo
    device: torch.device
    precision: str
    data: TrainingData
    gan: GANModel
    total_steps: int
    steps_per_epoch: int
    step: int = 0
    epoch: int = 0
    epoch_step: int = 0
    saved_step: int = -1
    created_dir: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    tb: Any = None


def _check_run_dir(config: TrainConfig) -> None:
    """Fail before any work if the run folder cannot be used as asked."""
    out = Path(config.output)
    if config.resume:
        if not (out / RUN_CHECKPOINT_NAME).is_file():
            raise CheckpointError(f"{out} holds no {RUN_CHECKPOINT_NAME}; there is no run to "
                                  "resume there (drop --resume to start one)")
        if not any((out / n).is_file() for n in (TRAIN_STATE_NAME, TRAIN_STATE_PENDING)):
            raise CheckpointError(f"{out} has no {TRAIN_STATE_NAME}, so it cannot be resumed; "
                                  "start a new run in another folder")
        return
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} exists and is not a folder; choose another -o")
    check_replaceable(out, RUN_FOLDER, config.overwrite, config.inputs)
    check_output_file(out / RUN_CHECKPOINT_NAME, overwrite=True)


def _commit_state(out: Path) -> None:
    """Rename the pending training state (and its sidecar) onto the current one."""
    pending = out / TRAIN_STATE_PENDING
    try:
        os.replace(pending, out / TRAIN_STATE_NAME)
        fault_point("between-renames", out / TRAIN_STATE_NAME)
        os.replace(pending.with_suffix(".json"), (out / TRAIN_STATE_NAME).with_suffix(".json"))
    except OSError as exc:
        raise write_error(out / TRAIN_STATE_NAME, exc) from exc
    fault_point("after-rename", out / TRAIN_STATE_NAME)


def _resume_state(out: Path, model_meta: dict[str, Any]) -> Path:
    """The training state of the model's step, finishing a save that a kill interrupted.

    A kill after the pending state was written but before the model leaves the pending
    state one step ahead: it is dropped. A kill after the model was written leaves the
    pending state of the model's step: it is committed now.
    """
    step = int(model_meta.get("step", -1))
    current, pending = out / TRAIN_STATE_NAME, out / TRAIN_STATE_PENDING
    if pending.is_file():
        try:
            pending_step = int(read_metadata(pending).get("step", -2))
        except CheckpointError:
            pending_step = -2  # torn write: not the commit
        if pending_step == step:
            log.info("finishing the save of step %d that was interrupted", step)
            _commit_state(out)
        else:
            pending.unlink()
    pending.with_suffix(".json").unlink(missing_ok=True)  # a sidecar whose state is gone
    if current.is_file():
        state_step = int(read_metadata(current).get("step", -2))
        if state_step == step:
            for p in (out / RUN_CHECKPOINT_NAME, current):
                if repair_sidecar(p):
                    log.info("rewrote %s from its checkpoint", p.with_suffix(".json").name)
            return current
        found = f"training state step {state_step}"
    else:
        found = f"no {TRAIN_STATE_NAME}"
    raise CheckpointError(f"{out}: model step {step} and {found} differ; resuming is not "
                          "possible, start a new run (the model itself can still be used)")


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
    _check_run_dir(config)
    if config.resume:
        config = merge_stored(config)
    device = resolve_device(config.device, dist_info.local_rank)
    precision = resolve_precision(config.precision, device)
    with process_group(dist_info, device):
        return _train(config, dist_info, device, precision, progress, cancel)


def _train(config: TrainConfig, dist_info: DistInfo, device: torch.device, precision: str,
           progress: ProgressCallback | None, cancel: CancelCheck | None) -> Path:
    out = Path(config.output)
    state_tensors: dict[str, torch.Tensor] = {}
    state_meta: dict[str, Any] = {}
    model_tensors: dict[str, torch.Tensor] = {}
    norms: tuple[BandNorm, BandNorm] | None = None
    if config.resume:
        model_tensors, model_meta = load_checkpoint(out / RUN_CHECKPOINT_NAME)
        state_tensors, state_meta = load_checkpoint(_resume_state(out, model_meta))
        doms = model_meta["domains"]
        norms = (BandNorm.from_json(doms["a"]["norm"]), BandNorm.from_json(doms["b"]["norm"]))
    data = open_inputs(DATA_LAYOUT[config.model], config.a, config.b, config.crop,
                       windows=config.windows, augment=config.augment, name_a=config.name_a,
                       name_b=config.name_b, norms=norms, cache_mb=config.cache_mb,
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
    run = _Run(config, out, dist_info, device, precision, data, gan, total, spe)

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    gan.networks.to(device=device, memory_format=memory_format)
    fused = device.type == "cuda"
    opt_g, opt_d = make_optimizers(gan, config.lr, config.beta1, fused)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    if config.resume:
        _restore(run, model_tensors, state_tensors, state_meta, opt_g, opt_d, scaler)
        if run.total_steps != int(state_meta.get("total_steps", run.total_steps)):
            log.info("the run now lasts %d steps instead of %s; the learning-rate schedule "
                     "follows", run.total_steps, state_meta.get("total_steps"))
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
        _open_run_dir(run)
    if dist_info.enabled:
        torch.distributed.barrier()
    log.info("training %s on %s (%s, %d process(es)): %d steps, %d per epoch, batch %d, "
             "crop %d", config.model, device, precision, dist_info.world_size, run.total_steps,
             spe, config.batch_size, config.crop)

    stop = StopRequest()
    try:
        with stop.installed():
            _loop(run, g_run, d_run, opt_g, opt_d, scaler, sampler, loader, memory_format,
                  progress, cancel, stop)
    except BaseException:
        if dist_info.is_main and run.saved_step < 0 and run.created_dir:
            shutil.rmtree(out, ignore_errors=True)  # nothing worth keeping
        raise
    finally:
        if run.tb is not None:
            run.tb.close()
    return out / RUN_CHECKPOINT_NAME


def _open_run_dir(run: _Run) -> None:
    out = run.out
    if not run.config.resume:
        if out.exists() and any(out.iterdir()):  # --overwrite, checked by _check_run_dir
            check_replaceable(out, RUN_FOLDER, True, run.config.inputs)  # nothing new appeared
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        run.created_dir = True
    (out / PREVIEW_DIR).mkdir(exist_ok=True)
    csv_path = out / LOSSES_CSV
    if run.config.resume and csv_path.is_file():
        # keep the rows up to the resumed step, so the log continues without a seam
        with open(csv_path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if int(float(r["step"])) <= run.step]
        run.history = [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in rows]
    _write_csv(run, rewrite=True)
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.debug("tensorboard not installed; losses go to %s only", csv_path)
    else:
        run.tb = SummaryWriter(log_dir=str(out / TENSORBOARD_DIR), purge_step=run.step + 1)


def _csv_columns(run: _Run) -> list[str]:
    return ["step", "epoch", "lr", "images_per_s", "elapsed_s", *run.gan.loss_names]


def _write_csv(run: _Run, rewrite: bool = False) -> None:
    path = run.out / LOSSES_CSV
    cols = _csv_columns(run)
    if rewrite:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        for row in run.history:
            writer.writerow(_format_row(row))
        with atomic_output(path, overwrite=True) as tmp:
            tmp.write_text(buf.getvalue())
        return
    with open(path, "a", newline="") as fh:
        csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore").writerow(
            _format_row(run.history[-1]))


def _format_row(row: dict[str, float]) -> dict[str, str]:
    out = {}
    for k, v in row.items():
        out[k] = str(int(v)) if k in ("step",) else f"{v:.6g}"
    return out


# -- checkpoints --------------------------------------------------------------------------

def _model_meta(run: _Run) -> dict[str, Any]:
    data, gan = run.data, run.gan
    domains = {}
    for key, dom in (("a", data.a), ("b", data.b)):
        domains[key] = {"name": dom.name, "norm": dom.norm.to_json(), "bands": dom.bands,
                        "dtype": dom.dtype, "nodata": dom.nodata}
    last = run.history[-1] if run.history else {}
    return {
        "model": run.config.model,
        "generators": gan.generator_meta(),
        "discriminators": gan.discriminator_meta(),
        "domains": domains,
        "chip_size": run.config.crop,
        "size_multiple": gan.size_multiple,
        "epoch": run.epoch,
        "step": run.step,
        "total_steps": run.total_steps,
        "losses": {k: last[k] for k in gan.loss_names if k in last},
        "training": {"layout": data.layout, "batch_size": run.config.batch_size,
                     "lr": run.config.lr, "gan_mode": run.config.gan_mode,
                     "seed": run.config.seed, "precision": run.precision,
                     "world_size": run.dist.world_size},
    }


def _save(run: _Run, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
          scaler: torch.amp.GradScaler) -> None:
    """Write the training state, then the model (rank 0 only)."""
    if not run.dist.is_main or run.saved_step == run.step:
        return
    gan = run.gan
    tensors = {f"{key}.{name}": value for key, net in gan.networks.items()
               for name, value in net.state_dict().items()}
    broken = [k for k, v in tensors.items()
              if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise TrainingError(f"weights {broken[0]} became NaN or infinite at step {run.step}; "
                            f"training stopped and {_kept(run)}"
                            f"{_precision_hint(run)}")
    g_tensors, g_meta = optimizer_state_to_tensors(opt_g.state_dict(), "opt_G")
    d_tensors, d_meta = optimizer_state_to_tensors(opt_d.state_dict(), "opt_D")
    state = {**g_tensors, **d_tensors, **gan.state_tensors(), "rng.torch": torch.get_rng_state()}
    if run.device.type == "cuda":
        state["rng.cuda"] = torch.cuda.get_rng_state(run.device)
    state_meta = {"kind": "train_state", "config": run.config.to_json(), "step": run.step,
                  "epoch": run.epoch, "epoch_step": run.epoch_step,
                  "total_steps": run.total_steps, "steps_per_epoch": run.steps_per_epoch,
                  "opt_G": g_meta, "opt_D": d_meta, "scaler": scaler.state_dict(),
                  # the samples (windows, crops, flips) of step N come from seeds of (seed,
                  # epoch, position): resuming at this position continues the same sequence
                  "sampler": {"seed": run.config.seed, "epoch": run.epoch,
                              "position": run.epoch_step * run.config.batch_size
                              * run.dist.world_size}}
    # Three steps, so that a kill at any point leaves a model and a training state of the
    # same step: the pending state first, then the model (the commit), then the state is
    # renamed into place. _resume_state finishes a commit a kill interrupted.
    pending = run.out / TRAIN_STATE_PENDING
    save_checkpoint(pending, state, state_meta)
    save_checkpoint(run.out / RUN_CHECKPOINT_NAME, tensors, _model_meta(run))
    _commit_state(run.out)
    run.saved_step = run.step
    log.info("saved checkpoint at step %d to %s", run.step, run.out / RUN_CHECKPOINT_NAME)


def _restore(run: _Run, model_tensors: dict[str, torch.Tensor],
             state_tensors: dict[str, torch.Tensor], state_meta: dict[str, Any],
             opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
             scaler: torch.amp.GradScaler) -> None:
    gan = run.gan
    for key, net in gan.networks.items():
        try:
            net.load_state_dict(strip_prefix(model_tensors, key), strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"weights of {key} in {run.out} do not fit the run's "
                                  f"settings: {first_line(exc)}") from exc
    opt_g.load_state_dict(optimizer_state_from_tensors(state_tensors, state_meta["opt_G"],
                                                       "opt_G"))
    opt_d.load_state_dict(optimizer_state_from_tensors(state_tensors, state_meta["opt_D"],
                                                       "opt_D"))
    if state_meta.get("scaler"):
        scaler.load_state_dict(state_meta["scaler"])
    gan.load_state_tensors(state_tensors, run.device)
    if run.dist.rank == 0:
        torch.set_rng_state(state_tensors["rng.torch"].to(torch.uint8))
        if run.device.type == "cuda" and "rng.cuda" in state_tensors:
            torch.cuda.set_rng_state(state_tensors["rng.cuda"].to(torch.uint8), run.device)
    else:  # rank 0's state was saved; other ranks continue on streams of their own
        step = int(state_meta["step"])
        torch.manual_seed(seed_for(run.config.seed, run.dist.rank, step))
        for pool in (getattr(gan, "pool_a", None), getattr(gan, "pool_b", None)):
            if pool is not None:
                pool.generator.manual_seed(seed_for(run.config.seed, run.dist.rank, step, 7))
    run.step = run.saved_step = int(state_meta["step"])
    run.epoch = int(state_meta["epoch"])
    run.epoch_step = int(state_meta["epoch_step"])
    if run.epoch_step >= run.steps_per_epoch:  # the data changed size since
        run.epoch, run.epoch_step = run.epoch + 1, 0
    log.info("resuming at step %d (epoch %d, %d steps into it)", run.step, run.epoch,
             run.epoch_step)


# -- the loop -----------------------------------------------------------------------------

def _loop(run: _Run, g_run: nn.Module, d_run: nn.Module, opt_g: torch.optim.Optimizer,
          opt_d: torch.optim.Optimizer, scaler: torch.amp.GradScaler, sampler: EpochSampler,
          loader: torch.utils.data.DataLoader, memory_format: torch.memory_format,
          progress: ProgressCallback | None, cancel: CancelCheck | None,
          stop: StopRequest) -> None:
    config, gan, device = run.config, run.gan, run.device
    names = gan.loss_names
    amp = autocast_context(device, run.precision)
    sums = torch.zeros(len(names), device=device)
    bad = torch.full((len(names),), _NEVER, dtype=torch.int64, device=device)
    count = 0
    t_last = time.perf_counter()
    t_start = t_last - (run.history[-1].get("elapsed_s", 0.0) if run.history else 0.0)
    last_progress = 0.0
    preview = _PreviewBatch(run, memory_format)

    while run.step < run.total_steps:
        sampler.set_epoch(run.epoch, run.epoch_step * config.batch_size)
        for batch in loader:
            real_a = batch["A"].to(device, non_blocking=True).contiguous(
                memory_format=memory_format)
            real_b = batch["B"].to(device, non_blocking=True).contiguous(
                memory_format=memory_format)
            lr = config.lr * lr_factor(run.step, run.total_steps)
            for opt in (opt_g, opt_d):
                for group in opt.param_groups:
                    group["lr"] = lr

            losses = optimisation_step(gan, g_run, d_run, opt_g, opt_d, scaler, amp,
                                       real_a, real_b)
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
                _save(run, opt_g, opt_d, scaler)
                _plot(run)
            if stop_now:
                _stopped(run, stop)
            if last:
                break
    if run.saved_step != run.step:  # e.g. resumed a finished run
        _save(run, opt_g, opt_d, scaler)
    _plot(run)


def _emit_row(run: _Run, lr: float, sums: torch.Tensor, count: int, t_last: float,
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
    _log_row(run, row)
    if progress is not None and run.dist.is_main:
        progress(run.step, run.total_steps, **_progress_info(run, row))
    return now


def _check_finite(run: _Run, bad: torch.Tensor) -> None:
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
                        f"{_kept(run)}{_precision_hint(run)}")


def _kept(run: _Run) -> str:
    if run.saved_step >= 0:
        return (f"the last good checkpoint {run.out / RUN_CHECKPOINT_NAME} (step "
                f"{run.saved_step}) was kept")
    return "no checkpoint had been saved yet"


def _precision_hint(run: _Run) -> str:
    if run.precision == "fp32":
        return "; try a lower --lr"
    return "; try --precision fp32 or a lower --lr"


def _stop_requested(run: _Run, stop: StopRequest, cancel: CancelCheck | None) -> bool:
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


def _stopped(run: _Run, stop: StopRequest) -> None:
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


def _reduce_means(run: _Run, sums: torch.Tensor, count: int) -> dict[str, float]:
    totals = sums.clone()
    if run.dist.enabled:
        torch.distributed.all_reduce(totals)
    values = (totals / max(count * run.dist.world_size, 1)).tolist()
    return dict(zip(run.gan.loss_names, values, strict=True))


def _progress_info(run: _Run, row: dict[str, float]) -> dict[str, float | str]:
    info: dict[str, float | str] = {"epoch": round(row["epoch"], 2),
                                    "img_s": round(row["images_per_s"], 2)}
    for name in run.gan.loss_names:
        if name.startswith(("D", "G_total", "G_L1")):
            info[name] = round(row[name], 4)
    return info


def _log_row(run: _Run, row: dict[str, float]) -> None:
    if not run.dist.is_main:
        return
    run.history.append(row)
    _write_csv(run)
    log.debug("step %d/%d epoch %.2f %.1f img/s %s", int(row["step"]), run.total_steps,
             row["epoch"], row["images_per_s"],
             " ".join(f"{n}={row[n]:.4g}" for n in run.gan.loss_names))
    if run.tb is not None:
        for key in (*run.gan.loss_names, "lr", "images_per_s"):
            run.tb.add_scalar(key if key in ("lr", "images_per_s") else f"loss/{key}",
                              row[key], int(row["step"]))


def _plot(run: _Run) -> None:
    if not run.dist.is_main:
        return
    from geogan.plots import save_line_plot

    steps = [r["step"] for r in run.history]
    panels = []
    for panel_title, keys in run.gan.plot_panels:
        series = {n: [r.get(n, math.nan) for r in run.history] for n in keys}
        # drop terms that are off (e.g. identity loss between different band counts)
        series = {n: v for n, v in series.items() if not v or any(x != 0 for x in v)}
        if series:
            panels.append((panel_title, series))
    title = (f"geogan {run.config.model}: {run.data.a.name} -> {run.data.b.name}, "
             f"losses per {run.config.log_every} steps (step {run.step} of {run.total_steps})")
    save_line_plot(run.out / LOSS_PLOT, steps, panels, title=title)


class _PreviewBatch:
    """Fixed chips shown at every preview, so a person sees the same places improve."""

    def __init__(self, run: _Run, memory_format: torch.memory_format) -> None:
        self.run = run
        self.a: torch.Tensor | None = None
        self.b: torch.Tensor | None = None
        if run.dist.is_main:
            a, b = run.data.dataset.preview_batch(2)
            self.a = a.to(run.device).contiguous(memory_format=memory_format)
            self.b = b.to(run.device).contiguous(memory_format=memory_format)

    def save(self, step: int) -> None:
        run = self.run
        if self.a is None or self.b is None:
            return
        from geogan.plots import save_image_grid

        gan = run.gan
        was_training = gan.networks.training
        gan.networks.eval()
        try:
            with autocast_context(run.device, run.precision):
                rows = gan.preview(self.a, self.b)
        finally:
            gan.networks.train(was_training)
        names = {"a": run.data.a.name, "b": run.data.b.name}
        grid = []
        for row in rows:
            for i in range(row[0][2].shape[0]):
                grid.append([(f"{label} ({names[dom]})" if label.startswith(("real", "input",
                                                                              "target"))
                              else label, img[i].float().cpu().numpy())
                             for label, dom, img in row])
        title = f"{run.config.model} step {step}: {names['a']} <-> {names['b']}"
        save_image_grid(run.out / PREVIEW_DIR / f"step_{step:07d}.png", grid, title=title)
