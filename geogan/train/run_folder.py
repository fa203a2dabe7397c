"""The run folder: what it may hold, making it ready, and the logs written into it as the run
goes (losses.csv, TensorBoard, the loss plot, previews)."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import torch

from geogan.checkpoint import RUN_CHECKPOINT_NAME, TRAIN_STATE_NAME, TRAIN_STATE_PENDING
from geogan.errors import CheckpointError, OutputError
from geogan.fileio import FolderKind, atomic_output, check_output_file, check_replaceable
from geogan.spec import names
from geogan.train.config import TrainConfig
from geogan.train.run import Run
from geogan.train.runtime import autocast_context

log = logging.getLogger(__name__)

LOSSES_CSV = names.LOSSES_CSV
LOSS_PLOT = names.LOSS_PLOT
PREVIEW_DIR = names.PREVIEW_DIR
TENSORBOARD_DIR = names.TENSORBOARD_DIR


def _owned_by_run(rel: PurePosixPath) -> bool:
    """Files geogan writes in a run folder."""
    top = rel.parts[0]
    if len(rel.parts) == 1:
        return rel.name in RUN_FILES
    if top == PREVIEW_DIR:
        return len(rel.parts) == 2 and rel.suffix == ".png"
    return top == TENSORBOARD_DIR


#: The files of a run folder besides previews/ and tensorboard/.
RUN_FILES = names.RUN_FILES
#: What ``geogan train --overwrite`` may replace: a run folder holding only a run's files.
RUN_FOLDER = FolderKind("run folder", (RUN_CHECKPOINT_NAME, LOSSES_CSV,
                                       TRAIN_STATE_NAME, TRAIN_STATE_PENDING),
                        _owned_by_run)


def check_run_dir(config: TrainConfig) -> None:
    """Fail before any work if the run folder cannot be used as asked."""
    out = Path(config.output)
    if config.resume:
        if not (out / RUN_CHECKPOINT_NAME).is_file():
            raise CheckpointError(f"{out} holds no {RUN_CHECKPOINT_NAME}; there is no run to "
                                  "resume there (drop `resume` to start one)")
        if not any((out / n).is_file() for n in (TRAIN_STATE_NAME, TRAIN_STATE_PENDING)):
            raise CheckpointError(f"{out} has no {TRAIN_STATE_NAME}, so it cannot be resumed; "
                                  "start a new run in another folder")
        return
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} exists and is not a folder; choose another -o")
    check_replaceable(out, RUN_FOLDER, config.overwrite, _files_read(config.inputs))
    check_output_file(out / RUN_CHECKPOINT_NAME, overwrite=True)


def _files_read(inputs: list[Path]) -> list[Path]:
    """The inputs, and for raster files the files GDAL reads for them (a VRT's sources)."""
    from geogan.rasterio_io import files_read

    return [*inputs, *(f for p in inputs if Path(p).is_file() for f in files_read(p))]


def open_run_dir(run: Run) -> None:
    """Make the folder ready: new (or emptied) for a new run, its log cut at the resumed step."""
    out = run.out
    if not run.config.resume:
        if out.exists() and any(out.iterdir()):  # --overwrite, checked by check_run_dir
            check_replaceable(out, RUN_FOLDER, True, _files_read(run.config.inputs))  # no news
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


@contextlib.contextmanager
def cleaned_up(run: Run) -> Iterator[None]:
    """Close TensorBoard; remove the folder the run made if it fails before a checkpoint."""
    try:
        yield
    except BaseException:
        if run.dist.is_main and run.saved_step < 0 and run.created_dir:
            shutil.rmtree(run.out, ignore_errors=True)  # nothing worth keeping
        raise
    finally:
        if run.tb is not None:
            run.tb.close()


def log_row(run: Run, row: dict[str, float]) -> None:
    """Add a row to the history, losses.csv and TensorBoard (rank 0 only)."""
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


def _csv_columns(run: Run) -> list[str]:
    return ["step", "epoch", "lr", "images_per_s", "elapsed_s", *run.gan.loss_names]


def _write_csv(run: Run, rewrite: bool = False) -> None:
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


def plot_losses(run: Run) -> None:
    """Draw the history into loss_plot.png (rank 0 only)."""
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


class PreviewBatch:
    """Fixed chips shown at every preview, so a person sees the same places improve."""

    def __init__(self, run: Run, memory_format: torch.memory_format) -> None:
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
