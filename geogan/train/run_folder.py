"""The run folder: what it may hold, making it ready, and the logs written into it as the run
goes (losses.csv, TensorBoard, the loss plot, previews).

A run holds its folder's lock from start to end (:func:`locked_run_dir`), so a second
``train`` or ``--resume`` over the same folder is refused. A new run over an old one
(``--overwrite``) is built in a hidden folder beside it and takes the old one's place
only when it commits its first checkpoint (:func:`publish_run`); a failure or a kill
before then leaves the old run as it was.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import torch

from geogan.contract import names
from geogan.contract.names import (
    LOSS_PLOT,
    LOSSES_CSV,
    PREVIEW_DIR,
    RUN_CHECKPOINT_NAME,
    RUN_FILES,
    TENSORBOARD_DIR,
    TRAIN_STATE_NAME,
    TRAIN_STATE_PENDING,
)
from geogan.errors import CheckpointError, OutputError
from geogan.fileio import (
    FolderKind,
    atomic_output,
    check_output_file,
    check_replaceable,
    output_folder,
    output_lock,
    remove_leftovers,
    swap_into_place,
    temp_path,
)
from geogan.train.config import TrainConfig
from geogan.train.run import Run
from geogan.train.runtime import autocast_context

log = logging.getLogger(__name__)


def _owned_by_run(rel: PurePosixPath) -> bool:
    """Files geogan writes in a run folder."""
    top = rel.parts[0]
    if len(rel.parts) == 1:
        return rel.name in RUN_FILES or names.SAFETENSORS_TEMP_RE.match(rel.name) is not None
    if top == PREVIEW_DIR:
        return len(rel.parts) == 2 and rel.suffix == ".png"
    return top == TENSORBOARD_DIR


def _run_sub_folder(rel: PurePosixPath) -> bool:
    """Folders geogan makes in a run folder: previews/ and tensorboard/ (and below it)."""
    return rel.as_posix() == PREVIEW_DIR or rel.parts[0] == TENSORBOARD_DIR


#: What ``geogan train --overwrite`` may replace: a run folder holding only a run's files.
RUN_FOLDER = FolderKind("run folder", (RUN_CHECKPOINT_NAME, LOSSES_CSV,
                                       TRAIN_STATE_NAME, TRAIN_STATE_PENDING),
                        _owned_by_run, _run_sub_folder)


@contextlib.contextmanager
def locked_run_dir(output: Path, is_main: bool) -> Iterator[None]:
    """Hold the lock of run folder ``output`` (rank 0; the other ranks never write it) and
    clear what killed jobs left there: a new run's hidden folder beside it (or the old run
    it had moved aside, put back), temporaries inside it."""
    if not is_main:
        yield
        return
    out = output_folder(output)
    with output_lock(out):
        remove_leftovers(Path(os.path.realpath(out)))
        _remove_dead_temporaries(out)
        yield


def _remove_dead_temporaries(out: Path) -> None:
    """Inside a run folder no other job uses (its lock is held): geogan's temporaries of
    processes that are gone, and those safetensors made when a kill cut a save short."""
    if not any((out / m).is_file() for m in RUN_FOLDER.markers):
        return  # not a run folder (yet): nothing of geogan's to clear
    try:
        entries = list(out.iterdir())
    except OSError:
        return
    for entry in entries:
        final = names.temp_of(entry.name)
        if final is not None:
            remove_leftovers(out / final)
        elif names.SAFETENSORS_TEMP_RE.match(entry.name) and entry.is_file():
            with contextlib.suppress(OSError):
                entry.unlink()
                log.info("removed %s, left by a save that was killed", entry)


def check_run_dir(config: TrainConfig) -> None:
    """Fail before any work if the run folder cannot be used as asked."""
    out = output_folder(config.output)
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
    """Make the folder ready: new for a new run (beside an old one it is to replace), its
    log cut at the resumed step when resuming."""
    out = run.out
    if not run.config.resume:
        if out.is_dir() and any(out.iterdir()):  # --overwrite, checked by check_run_dir
            check_replaceable(out, RUN_FOLDER, True, _files_read(run.config.inputs))  # no news
            run.final = out
            run.out = out = temp_path(out, suffix="")
            log.info("building the new run in %s; it replaces %s at its first checkpoint",
                     out, run.final)
        run.created_dir = not out.exists()
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create run folder {out}: {exc.strerror}; choose a "
                              "writable location") from exc
        run.fresh_dir = True
    (out / PREVIEW_DIR).mkdir(exist_ok=True)
    csv_path = out / LOSSES_CSV
    if run.config.resume and csv_path.is_file():
        # keep the rows up to the resumed step, so the log continues without a seam
        run.history = [r for r in read_history(csv_path) if r["step"] <= run.step]
    _write_csv(run, rewrite=True)
    _open_tensorboard(run, purge_step=run.step + 1)


def read_history(csv_path: Path) -> list[dict[str, float]]:
    """The rows of a run's losses.csv; a damaged one is a :class:`CheckpointError`.

    A last line without its newline (a kill cut the append short) is left out.
    """
    try:
        text = csv_path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "it is not text"
        raise _damaged(csv_path, why) from exc
    if "\n" in text and not text.endswith("\n"):
        log.info("%s: left out its last line, cut short by a kill", csv_path)
        text = text[:text.rindex("\n") + 1]
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or reader.fieldnames[0] != "step":
        raise _damaged(csv_path, "its header row is missing")
    rows = []
    for line, r in enumerate(reader, start=2):
        try:
            row = {k: float(v) for k, v in r.items() if v not in ("", None)}
            int(row["step"])
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            raise _damaged(csv_path, f"line {line} is not a row of numbers") from exc
        rows.append(row)
    return rows


def _damaged(csv_path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"the run's {csv_path} is damaged ({why}); move it out of the run "
                           "folder to resume with a new loss log from the resumed step on, or "
                           "start a new run")


def _open_tensorboard(run: Run, purge_step: int | None = None) -> None:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.debug("tensorboard not installed; losses go to %s only", run.out / LOSSES_CSV)
    else:
        run.tb = SummaryWriter(log_dir=str(run.out / TENSORBOARD_DIR), purge_step=purge_step)


def publish_run(run: Run) -> None:
    """A new run built beside the old one it replaces takes its place: called once the new
    run's first checkpoint is complete. The old run is removed only then."""
    if run.final is None:
        return
    if run.tb is not None:
        run.tb.close()
        run.tb = None
    swap_into_place(run.out, run.final)
    run.out, run.final = run.final, None
    log.info("the new run replaced the old one in %s", run.out)
    _open_tensorboard(run)


@contextlib.contextmanager
def cleaned_up(run: Run) -> Iterator[None]:
    """Close TensorBoard; remove what a new run wrote if it fails before its first
    checkpoint (its hidden folder, the folder it made, or what it put in an empty one)."""
    try:
        yield
    except BaseException:
        if run.dist.is_main and run.saved_step < 0 and run.fresh_dir:
            if run.tb is not None:
                run.tb.close()
                run.tb = None
            _remove_new_run(run)
        raise
    finally:
        if run.tb is not None:
            run.tb.close()


def _remove_new_run(run: Run) -> None:
    """Nothing of a new run is worth keeping before its first checkpoint."""
    if run.final is not None or run.created_dir:
        shutil.rmtree(run.out, ignore_errors=True)  # an old run, if any, is untouched
        return
    with contextlib.suppress(OSError):
        for entry in list(run.out.iterdir()):  # a folder the user made for it: kept, empty
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


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

    def _rows(self) -> list[list[tuple[str, str, torch.Tensor]]]:
        """The preview's images: the generators (in eval mode) on the fixed chips."""
        assert self.a is not None and self.b is not None
        gan = self.run.gan
        was_training = gan.networks.training
        gan.networks.eval()
        try:
            with torch.no_grad(), autocast_context(self.run.device, self.run.precision):
                return gan.preview(self.a, self.b)
        finally:
            gan.networks.train(was_training)

    def outputs_finite(self) -> bool:
        """Whether the generators give finite images (checked before each checkpoint)."""
        if self.a is None or self.b is None:
            return True
        return all(bool(torch.isfinite(img).all()) for row in self._rows() for _, _, img in row)

    def save(self, step: int) -> None:
        run = self.run
        if self.a is None or self.b is None:
            return
        from geogan.plots import save_image_grid

        rows = self._rows()
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
