"""One optimisation step of a GAN and what it needs: the optimisers, their learning-rate
schedule, and the step itself (freeze D, step G, unfreeze D, step D)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from geogan.models.gan import GANModel, set_requires_grad


def lr_factor(step: int, total_steps: int) -> float:
    """Constant for the first half of the run, then linear decay to zero (both papers)."""
    half = total_steps // 2
    if step < half:
        return 1.0
    return max(0.0, 1.0 - (step - half) / max(total_steps - half, 1))


def make_optimizers(gan: GANModel, lr: float, beta1: float,
                    fused: bool) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """Adam for the generators (and any head they train with) and Adam for the rest."""
    g_params = [p for k in gan.generator_keys for p in gan.networks[k].parameters()]
    d_params = [p for k, n in gan.networks.items() if k not in gan.generator_keys
                for p in n.parameters()]
    return (torch.optim.Adam(g_params, lr=lr, betas=(beta1, 0.999), fused=fused),
            torch.optim.Adam(d_params, lr=lr, betas=(beta1, 0.999), fused=fused))


@dataclass(frozen=True)
class Optimisers:
    """The two Adams of a run and its gradient scaler: what a step updates, a checkpoint keeps."""

    g: torch.optim.Optimizer
    d: torch.optim.Optimizer
    scaler: torch.amp.GradScaler

    def set_lr(self, lr: float) -> None:
        """Give every parameter group the learning rate of the coming step."""
        for opt in (self.g, self.d):
            for group in opt.param_groups:
                group["lr"] = lr


def optimisation_step(gan: GANModel, g_run: nn.Module, d_run: nn.Module,
                      opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                      scaler: torch.amp.GradScaler,
                      amp: contextlib.AbstractContextManager, real_a: torch.Tensor,
                      real_b: torch.Tensor) -> dict[str, torch.Tensor]:
    """One training step: freeze D, step G, unfreeze D, step D. Returns the losses (on device).

    ``g_run``/``d_run`` are ``gan.g_net``/``gan.d_net`` or their DDP wrappers; ``amp`` is
    the run's autocast context (entered once for each half of the step).
    """
    # G step: D frozen, so the adversarial terms only move G
    set_requires_grad(gan.d_net, False)
    opt_g.zero_grad(set_to_none=True)
    with amp:
        g_total, g_losses, fakes = gan.generator_step(g_run, real_a, real_b)
    scaler.scale(g_total).backward()
    scaler.step(opt_g)
    # D step on real images and (pooled) detached fakes
    set_requires_grad(gan.d_net, True)
    opt_d.zero_grad(set_to_none=True)
    with amp:
        d_total, d_losses = gan.discriminator_step(d_run, real_a, real_b, fakes)
    scaler.scale(d_total).backward()
    scaler.step(opt_d)
    scaler.update()
    return {**g_losses, **d_losses}

