"""A run's checkpoints: the model and training state saved so that a kill at any point
leaves a pair of the same step, and read back (repairing an interrupted save) to resume."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from geogan.checkpoint import (
    load_checkpoint,
    load_model,
    optimizer_state_from_tensors,
    optimizer_state_to_tensors,
    read_metadata,
    repair_sidecar,
    save_checkpoint,
    save_record,
    strip_prefix,
)
from geogan.contract.checkpoint import CheckpointMeta, DomainMeta
from geogan.contract.names import RUN_CHECKPOINT_NAME, TRAIN_STATE_NAME, TRAIN_STATE_PENDING
from geogan.datasets import seed_for
from geogan.errors import CheckpointError, TrainingError, first_line
from geogan.fileio import fault_point, write_error
from geogan.normalize import BandNorm
from geogan.rasterio_meta import recorded_band_names
from geogan.train.run import Run
from geogan.train.run_folder import publish_run
from geogan.train.step import Optimisers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResumePoint:
    """What a resumed run starts from: the model, the training state of its step, the norms."""

    model_tensors: dict[str, torch.Tensor]
    state_tensors: dict[str, torch.Tensor]
    state_meta: dict[str, Any]
    norms: tuple[BandNorm, BandNorm]


def load_resume_point(out: Path) -> ResumePoint:
    """Read the run in ``out`` back, finishing or dropping a save that a kill interrupted."""
    model_tensors, model_meta = load_model(out / RUN_CHECKPOINT_NAME)
    state_tensors, state_meta = load_checkpoint(_resume_state(out, model_meta))
    doms = model_meta.domains
    norms = (BandNorm.from_json(doms["a"].norm), BandNorm.from_json(doms["b"].norm))
    return ResumePoint(model_tensors, state_tensors, state_meta, norms)


def save_run(run: Run, optimisers: Optimisers,
             outputs_finite: Callable[[], bool] | None = None) -> None:
    """Write the training state, then the model (rank 0 only).

    Nothing non-finite is ever committed: every tensor saved must be finite, and
    ``outputs_finite()`` (the generators on the preview chips) must say the weights
    still give finite images; else :class:`TrainingError`, and the last good checkpoint
    stays the run's.
    """
    if not run.dist.is_main or run.saved_step == run.step:
        return
    gan = run.gan
    tensors = {f"{key}.{name}": value for key, net in gan.networks.items()
               for name, value in net.state_dict().items()}
    _check_finite(run, tensors, "weights")
    if outputs_finite is not None and not outputs_finite():
        raise TrainingError(f"the generators give NaN or infinite images at step {run.step} "
                            f"(their weights overflowed); training stopped and "
                            f"{after_non_finite(run)}")
    g_tensors, g_meta = optimizer_state_to_tensors(optimisers.g.state_dict(), "opt_G")
    d_tensors, d_meta = optimizer_state_to_tensors(optimisers.d.state_dict(), "opt_D")
    state = {**g_tensors, **d_tensors, **gan.state_tensors(), "rng.torch": torch.get_rng_state()}
    _check_finite(run, state, "training state")
    if run.device.type == "cuda":
        state["rng.cuda"] = torch.cuda.get_rng_state(run.device)
    state_meta = {"kind": "train_state", "config": run.config.to_json(), "step": run.step,
                  "epoch": run.epoch, "epoch_step": run.epoch_step,
                  "total_steps": run.total_steps, "steps_per_epoch": run.steps_per_epoch,
                  "opt_G": g_meta, "opt_D": d_meta, "scaler": optimisers.scaler.state_dict(),
                  # the samples (windows, crops, flips) of step N come from seeds of (seed,
                  # epoch, position): resuming at this position continues the same sequence
                  "sampler": {"seed": run.config.seed, "epoch": run.epoch,
                              "position": run.epoch_step * run.config.batch_size
                              * run.dist.world_size}}
    # Three steps, so that a kill at any point leaves a model and a training state of the
    # same step: the pending state first, then the model (the commit), then the state is
    # renamed into place. _resume_state finishes a commit a kill interrupted.
    pending = run.out / TRAIN_STATE_PENDING
    save_record(pending, state, state_meta)
    save_checkpoint(run.out / RUN_CHECKPOINT_NAME, tensors, _model_meta(run))
    _commit_state(run.out)
    publish_run(run)  # a new run built beside the old one it replaces takes its place
    run.saved_step = run.step
    log.info("saved checkpoint at step %d to %s", run.step, run.out / RUN_CHECKPOINT_NAME)


def _check_finite(run: Run, tensors: dict[str, torch.Tensor], what: str) -> None:
    """Refuse to save ``tensors`` if one holds NaN or infinity."""
    broken = [k for k, v in tensors.items()
              if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise TrainingError(f"{what} {broken[0]} became NaN or infinite at step {run.step}; "
                            f"training stopped and {after_non_finite(run)}")


def restore_run(run: Run, optimisers: Optimisers, point: ResumePoint) -> None:
    """Load ``point`` into the run: weights, optimisers, pools, random streams, position."""
    gan = run.gan
    model_tensors, state_tensors, state_meta = (point.model_tensors, point.state_tensors,
                                                point.state_meta)
    for key, net in gan.networks.items():
        try:
            net.load_state_dict(strip_prefix(model_tensors, key), strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"weights of {key} in {run.out} do not fit the run's "
                                  f"settings: {first_line(exc)}") from exc
    optimisers.g.load_state_dict(optimizer_state_from_tensors(
        state_tensors, state_meta["opt_G"], "opt_G"))
    optimisers.d.load_state_dict(optimizer_state_from_tensors(
        state_tensors, state_meta["opt_D"], "opt_D"))
    if state_meta.get("scaler"):
        optimisers.scaler.load_state_dict(state_meta["scaler"])
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
    if run.total_steps != int(state_meta.get("total_steps", run.total_steps)):
        log.info("the run now lasts %d steps instead of %s; the learning-rate schedule "
                 "follows", run.total_steps, state_meta.get("total_steps"))


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


def _resume_state(out: Path, model_meta: CheckpointMeta) -> Path:
    """The training state of the model's step, finishing a save that a kill interrupted.

    A kill after the pending state was written but before the model leaves the pending
    state one step ahead: it is dropped. A kill after the model was written leaves the
    pending state of the model's step: it is committed now.
    """
    step = -1 if model_meta.step is None else model_meta.step
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


def _model_meta(run: Run) -> CheckpointMeta:
    data, gan = run.data, run.gan
    domains = {}
    for key, dom in (("a", data.a), ("b", data.b)):
        names = recorded_band_names(str(dom.files[0]), dom.bands) if dom.files else None
        gsd = dom.gsd_m is not None  # ground resolution, m/px (geogan.ground)
        domains[key] = DomainMeta(
            name=dom.name, norm=dom.norm.to_json(), bands=dom.bands, dtype=dom.dtype,
            nodata=dom.nodata,
            # what the bands are, so translations are named alike
            band_names=None if names is None else list(names),
            gsd_m=round(dom.gsd_m, 6) if gsd else None, crs=dom.crs if gsd else None,
            palette=_palette_json(dom), stack=dom.stack)
    last = run.history[-1] if run.history else {}
    return CheckpointMeta(
        model=run.config.model, generators=dict(gan.generator_meta()),
        discriminators=gan.discriminator_meta(), domains=domains,
        chip_size=run.config.crop, size_multiple=gan.size_multiple, epoch=run.epoch,
        step=run.step, total_steps=run.total_steps,
        losses={k: last[k] for k in gan.loss_names if k in last},
        training={"layout": data.layout, "direction": run.config.direction,
                  "batch_size": run.config.batch_size, "lr": run.config.lr,
                  "gan_mode": run.config.gan_mode, "seed": run.config.seed,
                  "precision": run.precision, "world_size": run.dist.world_size,
                  **gan.training_meta()})


def _palette_json(dom: Any) -> dict[str, Any] | None:
    """The palette of a map domain (geogan.palette), found once per run and kept."""
    from geogan.colortable import table_palette
    from geogan.palette import domain_palette

    if not hasattr(dom, "_palette_json"):
        half = getattr(dom, "half", "full")
        # palette rasters read as RGB: their colour table's colours used, not a detection
        found = table_palette(list(dom.files)) if half == "full" and dom.bands == 3 else None
        if found is None:
            found = domain_palette(list(dom.files), dom.bands, dom.dtype, half)
        object.__setattr__(dom, "_palette_json", None if found is None else found.to_json())
    return dom._palette_json  # type: ignore[no-any-return]


def after_non_finite(run: Run) -> str:
    """How an error about non-finite values ends: the checkpoint kept, and what to try."""
    if run.saved_step >= 0:
        kept = (f"the last good checkpoint {run.out / RUN_CHECKPOINT_NAME} (step "
                f"{run.saved_step}) was kept")
    elif run.final is not None:
        kept = f"no checkpoint had been saved yet; the run in {run.final} was kept as it was"
    else:
        kept = "no checkpoint had been saved yet"
    if run.precision == "fp32":
        return kept + "; try a lower `lr`"
    return kept + "; try `precision` fp32 or a lower `lr`"
