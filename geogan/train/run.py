"""The state of one training run that its parts share: what it trains, where it is, and
what it has logged."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from geogan.datasets import TrainingData
from geogan.models.gan import GANModel
from geogan.train.config import TrainConfig
from geogan.train.runtime import DistInfo


@dataclass
class Run:
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
    #: The run made its folder (which did not exist)...
    created_dir: bool = False
    #: ... or is a new run in a folder that held nothing, or in a hidden one beside ``final``.
    fresh_dir: bool = False
    #: Where a new run's folder goes at its first checkpoint, while it is built in ``out``
    #: beside the old run it replaces (``--overwrite``); None once it took its place.
    final: Path | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    tb: Any = None

    def advance(self) -> None:
        """Count one optimisation step (and the epoch it may end)."""
        self.step += 1
        self.epoch_step += 1
        if self.epoch_step >= self.steps_per_epoch:  # the loader ends here too
            self.epoch, self.epoch_step = self.epoch + 1, 0
