"""Epochs of training: each sample's index and seed (EpochSampler), steps per epoch, seeds."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import DistributedSampler, Sampler


class _Length:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


class EpochSampler(Sampler[tuple[int, int]]):
    """One epoch of :class:`DistributedSampler` order, each index paired with its own seed.

    ``set_epoch(epoch, start)`` selects the epoch's shuffle and skips its first
    ``start`` samples of this rank (to resume mid-epoch). Seeds depend on the run
    seed, the epoch and the sample's position in the global order only.
    """

    def __init__(self, length: int, seed: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True) -> None:
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.inner = DistributedSampler(_Length(length), num_replicas=world_size, rank=rank,
                                        shuffle=shuffle, seed=seed, drop_last=True)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch = epoch
        self.start = start
        self.inner.set_epoch(epoch)

    def __len__(self) -> int:
        return max(len(self.inner) - self.start, 0)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = list(self.inner)
        for pos in range(self.start, len(order)):
            global_pos = pos * self.world_size + self.rank
            seed = int(np.random.SeedSequence([self.seed, self.epoch, global_pos])
                       .generate_state(1)[0])
            yield order[pos], seed

    @property
    def per_rank(self) -> int:
        """Samples this rank sees in a full epoch."""
        return len(self.inner)


def steps_per_epoch(n_samples: int, batch_size: int, world_size: int = 1) -> int:
    """Optimiser steps in one epoch (incomplete batches are dropped)."""
    return (n_samples // world_size) // batch_size


def seed_for(*parts: int) -> int:
    """A 32-bit seed from integers (run seed, rank, ...)."""
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(1)[0])
