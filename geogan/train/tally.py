"""The losses of the steps since the last log row, kept on the device, and what is made of
them: the check for non-finite values, the rows of the log and the progress reports."""

from __future__ import annotations

import time

import torch

from geogan.errors import TrainingError
from geogan.progress import ProgressCallback
from geogan.train.run import Run
from geogan.train.run_folder import log_row
from geogan.train.state import after_non_finite

_NEVER = 2 ** 62  # "no non-finite loss yet" marker of the on-device tracker


class LossTally:
    """Sums of each loss since the last row, and the first step where each was not finite.

    Adding a step's losses does not wait for the device; checking and logging do.
    """

    def __init__(self, run: Run, progress: ProgressCallback | None) -> None:
        names = run.gan.loss_names
        self.run = run
        self.progress = progress
        self.sums = torch.zeros(len(names), device=run.device)
        self.bad = torch.full((len(names),), _NEVER, dtype=torch.int64, device=run.device)
        self.count = 0
        self.t_last = time.perf_counter()
        self.t_start = self.t_last - (run.history[-1].get("elapsed_s", 0.0) if run.history
                                      else 0.0)
        self.last_progress = 0.0

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        """Count the losses of the step just taken (``run.step``)."""
        parts = torch.stack([losses[n].detach().float() for n in self.run.gan.loss_names])
        self.sums += parts
        self.count += 1
        self.bad = torch.where(torch.isfinite(parts), self.bad,
                               self.bad.clamp(max=self.run.step))

    def check_finite(self) -> None:
        """Raise :class:`TrainingError` naming the first non-finite loss and its step."""
        run = self.run
        flags = self.bad.clone()
        if run.dist.enabled:
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MIN)
        values = flags.tolist()
        first = min(values)
        if first >= _NEVER:
            return
        name = run.gan.loss_names[values.index(first)]
        raise TrainingError(f"loss {name} became non-finite at step {first}; training stopped "
                            f"and {after_non_finite(run)}")

    def emit_row(self, lr: float) -> None:
        """Log the mean losses since the last row (CSV, TensorBoard, progress); reset the sums."""
        run = self.run
        now = time.perf_counter()
        means = self._reduce_means()
        row = {"step": float(run.step),
               "epoch": run.epoch + run.epoch_step / run.steps_per_epoch,
               "lr": lr,
               "images_per_s": self.count * run.config.batch_size * run.dist.world_size
               / max(now - self.t_last, 1e-9),
               "elapsed_s": now - self.t_start, **means}
        self.sums.zero_()
        log_row(run, row)
        if self.progress is not None and run.dist.is_main:
            self.progress(run.step, run.total_steps, **self._progress_info(row))
        self.t_last = now
        self.count = 0
        self.last_progress = time.monotonic()

    def report_progress(self) -> None:
        """Between rows: tell the progress callback the step, at most twice a second."""
        run = self.run
        if self.progress is not None and run.dist.is_main \
                and time.monotonic() - self.last_progress > 0.5:
            self.progress(run.step, run.total_steps)
            self.last_progress = time.monotonic()

    def _reduce_means(self) -> dict[str, float]:
        run = self.run
        totals = self.sums.clone()
        if run.dist.enabled:
            torch.distributed.all_reduce(totals)
        values = (totals / max(self.count * run.dist.world_size, 1)).tolist()
        return dict(zip(run.gan.loss_names, values, strict=True))

    def _progress_info(self, row: dict[str, float]) -> dict[str, float | str]:
        info: dict[str, float | str] = {"epoch": round(row["epoch"], 2),
                                        "img_s": round(row["images_per_s"], 2)}
        for name in self.run.gan.loss_names:
            if name.startswith(("D", "G_total", "G_L1")):
                info[name] = round(row[name], 4)
        return info
