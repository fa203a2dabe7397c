"""The torch Dataset of raster training data: samples drawn as random windows by the
domains' window samplers, augmented and normalised into model space."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from geogan.datasets import apply_augment, draw_augment
from geogan.normalize import BandNorm
from geogan.samplers.sampler import Window, WindowSampler


class RasterWindowDataset(Dataset):
    """Samples ``{"A": (Ca, crop, crop), "B": (Cb, crop, crop)}`` float32 in ``[-1, 1]``.

    Indexed like :class:`geogan.datasets.ChipDataset` by ``(index, seed)`` from
    :class:`geogan.datasets.EpochSampler`; only the seed matters (the index places the
    sample in the epoch). Unpaired: an A window and an independent B window; paired:
    an A window and B over the same ground. The same flips and rotation for both
    sides of a pair (off with ``augment=False``).
    """

    def __init__(self, a: WindowSampler, b: WindowSampler | None, norm_a: BandNorm,
                 norm_b: BandNorm, crop: int, length: int, augment: bool = True) -> None:
        self.a = a
        self.b = b
        self.norm_a = norm_a
        self.norm_b = norm_b
        self.crop = crop
        self.length = length
        self.augment = augment

    @property
    def paired(self) -> bool:
        return self.b is None

    def __len__(self) -> int:
        return self.length

    def windows(self, seed: int) -> tuple[Window, Window | None]:
        """The window(s) of the sample with ``seed`` (for tests and tools)."""
        rng = np.random.default_rng(seed)
        win_a = self.a.draw(rng)[0]
        return win_a, (None if self.b is None else self.b.draw(rng)[0])

    def raw(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The sample's A and B pixels, in raster values, augmented."""
        rng = np.random.default_rng(seed)
        _, chips_a, _ = self.a.draw(rng)
        if self.b is None:
            arr_a, arr_b = chips_a
            pa = pb = draw_augment(rng, self.crop, self.crop, self.crop, self.augment)
        else:
            _, chips_b, _ = self.b.draw(rng)
            arr_a, arr_b = chips_a[0], chips_b[0]
            pa = draw_augment(rng, self.crop, self.crop, self.crop, self.augment)
            pb = draw_augment(rng, self.crop, self.crop, self.crop, self.augment)
        return apply_augment(arr_a, pa, self.crop), apply_augment(arr_b, pb, self.crop)

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, torch.Tensor]:
        _, seed = key if isinstance(key, tuple) else (int(key), int(key))
        arr_a, arr_b = self.raw(seed)
        return {"A": torch.from_numpy(self.norm_a.to_model(arr_a)),
                "B": torch.from_numpy(self.norm_b.to_model(arr_b))}

    def preview_batch(self, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` fixed windows of A and of B (found before training) for previews."""
        def chips(sampler: WindowSampler, side: int) -> list[np.ndarray]:
            picks = sampler.fallback[:: max(1, len(sampler.fallback) // n)][:n]
            return [sampler.read(w)[0][side] for w in picks]

        a = chips(self.a, 0)
        b = chips(self.a, 1) if self.b is None else chips(self.b, 0)
        k = min(len(a), len(b))
        return (torch.stack([torch.from_numpy(self.norm_a.to_model(x)) for x in a[:k]]),
                torch.stack([torch.from_numpy(self.norm_b.to_model(x)) for x in b[:k]]))
