"""The history of generated images that CycleGAN's discriminators learn from.

Shrivastava et al. 2017, as used in CycleGAN section 4: the discriminator sees a
fake from the last ``size`` generated ones half of the time, which damps
oscillation. The pool's random choices come from its own CPU generator, so they
neither disturb nor depend on the global RNG, cost no GPU synchronisation, and
the whole pool (images and generator state) saves as tensors for exact resume.
"""

from __future__ import annotations

import torch


class ImagePool:
    """Return the incoming fakes or, with probability 1/2 each, a stored older one."""

    def __init__(self, size: int = 50, seed: int = 0) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []  # each (1, C, H, W), float32, detached
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` fakes -> ``(B, C, H, W)`` images for the discriminator."""
        images = images.detach()
        if self.size <= 0:
            return images
        out: list[torch.Tensor] = []
        for image in images.float().split(1):
            if len(self.images) < self.size:  # fill the pool first
                self.images.append(image)
                out.append(image)
            elif torch.rand((), generator=self.generator).item() > 0.5:
                idx = int(torch.randint(0, self.size, (), generator=self.generator).item())
                out.append(self.images[idx])
                self.images[idx] = image
            else:
                out.append(image)
        return torch.cat(out).to(images.dtype)

    def state_tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """The pool as tensors: ``{prefix}.images`` (N, C, H, W) and ``{prefix}.rng``."""
        state = {f"{prefix}.rng": self.generator.get_state()}
        if self.images:
            state[f"{prefix}.images"] = torch.cat(self.images).cpu()
        return state

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], prefix: str,
                           device: torch.device | str = "cpu") -> None:
        """Restore what :meth:`state_tensors` returned (images moved to ``device``)."""
        self.generator.set_state(tensors[f"{prefix}.rng"].to(torch.uint8).cpu())
        stored = tensors.get(f"{prefix}.images")
        self.images = [] if stored is None else list(stored.to(device).float().split(1))
