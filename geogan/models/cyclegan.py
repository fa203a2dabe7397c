"""CycleGAN (Zhu et al. 2017): unpaired translation with cycle consistency.

Paper-to-code names::

    X, Y        domains A, B            G: X -> Y    G_A2B
    F: Y -> X   G_B2A                   D_Y, D_X     D_B, D_A
    L_GAN(G, D_Y, X, Y)   gan_A2B       L_cyc        cycle_A + cycle_B  (lambda = 10)
    L_identity            idt_A + idt_B (0.5 lambda)
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from geogan.contract.layouts import Pairing
from geogan.models.base import GANModel, GANSettings, Tensor
from geogan.models.image_pool import ImagePool
from geogan.models.losses import l1_loss

log = logging.getLogger(__name__)


class CycleGANGenerators(nn.Module):
    """G_A2B and G_B2A run together: fakes, reconstructions and identity mappings."""

    def __init__(self, g_a2b: nn.Module, g_b2a: nn.Module, batched: bool) -> None:
        super().__init__()
        self.G_A2B = g_a2b
        self.G_B2A = g_b2a
        self.batched = batched

    def forward(self, real_a: Tensor, real_b: Tensor, identity: bool) -> dict[str, Tensor]:
        n = real_a.shape[0]
        out: dict[str, Tensor] = {}
        if self.batched:  # three calls instead of six: same result with per-sample norms
            x = torch.cat([real_a, real_b]) if identity else real_a
            y = self.G_A2B(x)
            out["fake_b"] = y[:n]  # G(a)
            if identity:
                out["idt_b"] = y[n:]  # G(b) ~ b
            parts = [real_b, out["fake_b"]] + ([real_a] if identity else [])
            y = self.G_B2A(torch.cat(parts))
            out["fake_a"], out["rec_a"] = y[:n], y[n:2 * n]  # F(b), F(G(a)) ~ a
            if identity:
                out["idt_a"] = y[2 * n:]  # F(a) ~ a
            out["rec_b"] = self.G_A2B(out["fake_a"])  # G(F(b)) ~ b
            return out
        out["fake_b"] = self.G_A2B(real_a)
        out["rec_a"] = self.G_B2A(out["fake_b"])
        out["fake_a"] = self.G_B2A(real_b)
        out["rec_b"] = self.G_A2B(out["fake_a"])
        if identity:
            out["idt_b"] = self.G_A2B(real_b)
            out["idt_a"] = self.G_B2A(real_a)
        return out


class DiscriminatorPair(nn.Module):
    """D_A and D_B scoring real and (pooled) fake images in one forward."""

    def __init__(self, d_a: nn.Module, d_b: nn.Module, batched: bool) -> None:
        super().__init__()
        self.D_A = d_a
        self.D_B = d_b
        self.batched = batched

    def forward(self, real_a: Tensor, fake_a: Tensor, real_b: Tensor,
                fake_b: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if self.batched:
            pa = self.D_A(torch.cat([real_a, fake_a]))
            pb = self.D_B(torch.cat([real_b, fake_b]))
            na, nb = real_a.shape[0], real_b.shape[0]
            return pa[:na], pa[na:], pb[:nb], pb[nb:]
        return self.D_A(real_a), self.D_A(fake_a), self.D_B(real_b), self.D_B(fake_b)


class CycleGAN(GANModel):
    """Unpaired translation with cycle consistency (Zhu et al. 2017)."""

    name = "cyclegan"
    pairing = Pairing.UNPAIRED
    default_generator = "resnet_9blocks"
    generators = {"a2b": "G_A2B", "b2a": "G_B2A"}
    generator_keys = ("G_A2B", "G_B2A")
    needs_encoder = False
    loss_names = ("G_gan_A2B", "G_gan_B2A", "cycle_A", "cycle_B", "idt_A", "idt_B",
                  "G_total", "D_A", "D_B")
    plot_panels = (("generators: adversarial terms", ("G_gan_A2B", "G_gan_B2A")),
                   ("discriminators", ("D_A", "D_B")),
                   ("cycle consistency and identity (L1, weighted)",
                    ("cycle_A", "cycle_B", "idt_A", "idt_B")),
                   ("generators: total", ("G_total",)))

    def __init__(self, in_bands: int, out_bands: int, settings: GANSettings,
                 seed: int = 0) -> None:
        super().__init__(in_bands, out_bands, settings, seed)
        s = settings
        g_a2b = self._add_generator("G_A2B", in_bands, out_bands)
        g_b2a = self._add_generator("G_B2A", out_bands, in_bands)
        d_a = self._add_discriminator("D_A", in_bands)
        d_b = self._add_discriminator("D_B", out_bands)
        # identity mapping G(b) ~ b only makes sense when both domains have the same bands
        self.identity = s.lambda_identity > 0 and in_bands == out_bands
        if s.lambda_identity > 0 and not self.identity:
            log.info("identity loss off: domain A has %d bands and B has %d", in_bands,
                     out_bands)
        self.g_net = CycleGANGenerators(g_a2b, g_b2a, self.batched)
        self.d_net = DiscriminatorPair(d_a, d_b, self.batched)
        self.pool_a = ImagePool(s.pool_size, seed=seed * 2 + 1)
        self.pool_b = ImagePool(s.pool_size, seed=seed * 2 + 2)

    def generator_step(self, g_run: nn.Module, real_a: Tensor,
                       real_b: Tensor) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        s = self.settings
        out = g_run(real_a, real_b, self.identity)
        d = self.d_net  # frozen by the caller; no DDP wrapper, its weights get no gradient
        losses = {
            "G_gan_A2B": self.gan_loss(d.D_B(out["fake_b"]), True),  # L_GAN(G, D_Y)
            "G_gan_B2A": self.gan_loss(d.D_A(out["fake_a"]), True),  # L_GAN(F, D_X)
            "cycle_A": l1_loss(out["rec_a"], real_a) * s.lambda_cycle,  # ||F(G(a)) - a||
            "cycle_B": l1_loss(out["rec_b"], real_b) * s.lambda_cycle,  # ||G(F(b)) - b||
        }
        zero = losses["cycle_A"].new_zeros(())
        if self.identity:
            w = s.lambda_cycle * s.lambda_identity
            losses["idt_A"] = l1_loss(out["idt_a"], real_a) * w  # ||F(a) - a||
            losses["idt_B"] = l1_loss(out["idt_b"], real_b) * w  # ||G(b) - b||
        else:
            losses["idt_A"] = losses["idt_B"] = zero
        total = sum(losses.values(), zero)
        losses["G_total"] = total
        fakes = {"fake_a": out["fake_a"].detach(), "fake_b": out["fake_b"].detach()}
        return total, losses, fakes

    def discriminator_step(self, d_run: nn.Module, real_a: Tensor, real_b: Tensor,
                           fakes: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        fake_a = self.pool_a.query(fakes["fake_a"])
        fake_b = self.pool_b.query(fakes["fake_b"])
        pr_a, pf_a, pr_b, pf_b = d_run(real_a, fake_a.to(real_a.dtype), real_b,
                                       fake_b.to(real_b.dtype))
        loss_a = 0.5 * (self.gan_loss(pr_a, True) + self.gan_loss(pf_a, False))
        loss_b = 0.5 * (self.gan_loss(pr_b, True) + self.gan_loss(pf_b, False))
        return loss_a + loss_b, {"D_A": loss_a, "D_B": loss_b}

    def state_tensors(self) -> dict[str, Tensor]:
        return {**self.pool_a.state_tensors("pool_A"), **self.pool_b.state_tensors("pool_B")}

    def load_state_tensors(self, tensors: dict[str, Tensor], device: torch.device) -> None:
        self.pool_a.load_state_tensors(tensors, "pool_A", device)
        self.pool_b.load_state_tensors(tensors, "pool_B", device)

    @torch.no_grad()
    def preview(self, real_a: Tensor, real_b: Tensor) -> list[list[tuple[str, str, Tensor]]]:
        g = self.g_net
        fake_b = g.G_A2B(real_a)
        fake_a = g.G_B2A(real_b)
        return [[("real A", "a", real_a), ("fake B = G(A)", "b", fake_b),
                 ("rec A = F(G(A))", "a", g.G_B2A(fake_b))],
                [("real B", "b", real_b), ("fake A = F(B)", "a", fake_a),
                 ("rec B = G(F(B))", "b", g.G_A2B(fake_a))]]
