"""pix2pix (Isola et al. 2017): paired translation with a conditional GAN and an L1 term.

``G(x)`` is G_A2B, the conditional ``D(x, y)`` is D, ``L_cGAN`` is gan and ``L_L1`` is
l1 (lambda = 100).
"""

from __future__ import annotations

import torch
from torch import nn

from geogan.contract.layouts import Pairing
from geogan.models.base import GANModel, GANSettings, Tensor
from geogan.models.losses import l1_loss


class ConditionalDiscriminator(nn.Module):
    """pix2pix's D(x, y): the PatchGAN sees the input and the output stacked as bands."""

    def __init__(self, d: nn.Module, batched: bool) -> None:
        super().__init__()
        self.D = d
        self.batched = batched

    def forward(self, real_a: Tensor, real_b: Tensor,
                fake_b: Tensor) -> tuple[Tensor, Tensor]:
        real = torch.cat([real_a, real_b], dim=1)  # (B, Ca + Cb, H, W)
        fake = torch.cat([real_a, fake_b], dim=1)
        if self.batched:
            p = self.D(torch.cat([real, fake]))
            return p[:real.shape[0]], p[real.shape[0]:]
        return self.D(real), self.D(fake)


class Pix2Pix(GANModel):
    """Paired translation with a conditional GAN and an L1 term (Isola et al. 2017)."""

    name = "pix2pix"
    pairing = Pairing.PAIRED
    default_generator = "unet_256"
    generators = {"a2b": "G_A2B"}
    generator_keys = ("G_A2B",)
    needs_encoder = False
    loss_names = ("G_gan", "G_L1", "G_total", "D")
    plot_panels = (("adversarial terms", ("G_gan", "D")),
                   ("L1 to the target (weighted)", ("G_L1",)),
                   ("generator: total", ("G_total",)))

    def __init__(self, in_bands: int, out_bands: int, settings: GANSettings,
                 seed: int = 0) -> None:
        super().__init__(in_bands, out_bands, settings, seed)
        g = self._add_generator("G_A2B", in_bands, out_bands)
        d = self._add_discriminator("D", in_bands + out_bands)
        self.g_net = g
        self.d_net = ConditionalDiscriminator(d, self.batched)

    def generator_step(self, g_run: nn.Module, real_a: Tensor,
                       real_b: Tensor) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        fake_b = g_run(real_a)  # G(x)
        pred = self.d_net.D(torch.cat([real_a, fake_b], dim=1))  # D(x, G(x)), D frozen
        gan = self.gan_loss(pred, True)
        l1 = l1_loss(fake_b, real_b) * self.settings.lambda_l1  # ||y - G(x)||_1
        total = gan + l1
        return total, {"G_gan": gan, "G_L1": l1, "G_total": total}, {"fake_b": fake_b.detach()}

    def discriminator_step(self, d_run: nn.Module, real_a: Tensor, real_b: Tensor,
                           fakes: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        p_real, p_fake = d_run(real_a, real_b, fakes["fake_b"].to(real_b.dtype))
        loss = 0.5 * (self.gan_loss(p_real, True) + self.gan_loss(p_fake, False))
        return loss, {"D": loss}

    @torch.no_grad()
    def preview(self, real_a: Tensor, real_b: Tensor) -> list[list[tuple[str, str, Tensor]]]:
        return [[("input A", "a", real_a), ("output G(A)", "b", self.g_net(real_a)),
                 ("target B", "b", real_b)]]
