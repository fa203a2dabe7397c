"""The torch Dataset of chip training data: chips read (or taken from the memory cache),
augmented and normalised into model space."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from geogan.datasets.augment import apply_augment, draw_augment
from geogan.datasets.domains import Domain
from geogan.datasets.images import _half, read_image


class ChipDataset(Dataset):
    """Samples ``{"A": (Ca, crop, crop), "B": (Cb, crop, crop)}`` float32 in ``[-1, 1]``.

    Indexed by ``(index, seed)`` pairs from :class:`EpochSampler`; a plain ``index``
    uses the index as its seed. Unpaired data has ``max(len(A), len(B))`` samples
    per epoch, B drawn at random for each (as in CycleGAN); paired data one per pair.
    """

    def __init__(self, a: Domain, b: Domain, crop: int, layout: str, augment: bool = True,
                 cache: dict[Path, np.ndarray] | None = None) -> None:
        self.a = a
        self.b = b
        self.crop = crop
        self.layout = layout
        self.augment = augment
        self.cache = cache if cache is not None else {}

    def __len__(self) -> int:
        if self.layout == "unpaired":
            return max(len(self.a.files), len(self.b.files))
        return len(self.a.files)

    def _read(self, path: Path, domain: Domain) -> np.ndarray:
        arr = self.cache.get(path)
        return read_image(path, domain.bands) if arr is None else arr

    def _pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self.layout == "side_by_side":  # each domain knows its half (BtoA: A is the right)
            arr = self._read(self.a.files[index], self.a)
            return _half(arr, self.a.half), _half(arr, self.b.half)
        return self._read(self.a.files[index], self.a), self._read(self.b.files[index], self.b)

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (int(key), int(key))
        rng = np.random.default_rng(seed)
        if self.layout == "unpaired":
            arr_a = self._read(self.a.files[index % len(self.a.files)], self.a)
            arr_b = self._read(self.b.files[int(rng.integers(len(self.b.files)))], self.b)
            pa = draw_augment(rng, arr_a.shape[1], arr_a.shape[2], self.crop, self.augment)
            pb = draw_augment(rng, arr_b.shape[1], arr_b.shape[2], self.crop, self.augment)
        else:
            arr_a, arr_b = self._pair(index)
            h = min(arr_a.shape[1], arr_b.shape[1])
            w = min(arr_a.shape[2], arr_b.shape[2])
            pa = pb = draw_augment(rng, h, w, self.crop, self.augment)
        a = self.a.norm.to_model(apply_augment(arr_a, pa, self.crop))
        b = self.b.norm.to_model(apply_augment(arr_b, pb, self.crop))
        return {"A": torch.from_numpy(a), "B": torch.from_numpy(b)}

    def preview_batch(self, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` fixed centre crops of A and of B (evenly spread over the files) for previews."""
        saved, self.augment = self.augment, False
        try:
            count = len(self)
            picks = sorted({round(k * (count - 1) / max(n - 1, 1)) for k in range(min(n, count))})
            items = [self[(i, i)] for i in picks]
        finally:
            self.augment = saved
        if self.layout == "unpaired":  # show B chips spread over B, not random partners
            nb = len(self.b.files)
            b_picks = sorted({round(k * (nb - 1) / max(n - 1, 1)) for k in range(min(n, nb))})
            b_items = []
            for j in b_picks:
                arr = self._read(self.b.files[j], self.b)
                p = draw_augment(np.random.default_rng(0), arr.shape[1], arr.shape[2],
                                 self.crop, False)
                b_items.append(torch.from_numpy(self.b.norm.to_model(
                    apply_augment(arr, p, self.crop))))
            k = min(len(items), len(b_items))
            return (torch.stack([it["A"] for it in items[:k]]), torch.stack(b_items[:k]))
        return torch.stack([it["A"] for it in items]), torch.stack([it["B"] for it in items])
