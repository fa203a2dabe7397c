"""pix2pixHD (Wang et al., CVPR 2018): paired translation with a coarse-to-fine generator,
multi-scale discriminators, feature matching and (given VGG19 weights) a perceptual loss.

``G = {G1, G2}`` is G_A2B (generator ``pix2pixhd``, :class:`~geogan.models.hd_networks.
LocalEnhancer`), ``D1 .. Dk`` are D0 .. D{k-1} (``--num-d``, 3 as in the paper), each the
``--discriminator`` of pix2pix on the input and output stacked as bands, ``D_k`` seeing them
downsampled ``2^k`` times. The objective (eq. 5 of the paper, pix2pixHD's code):

- G_gan: ``sum_k L_GAN(G, D_k)`` (least squares by default, as in pix2pixHD);
- G_feat: ``lambda_feat * sum_k L_FM(G, D_k)``, L1 between D_k's activations on the real and
  the generated pair, each weighted ``4 / n_activations / num_D`` (lambda_feat = 10);
- G_vgg: ``lambda_feat * L_VGG`` when ``--vgg-weights`` gives a file, else 0 and the
  checkpoint's training metadata says ``perceptual_loss: off (no weights given)``;
- D: ``0.5 * sum_k (L_GAN(D_k, real) + L_GAN(D_k, fake))``.

Schedule: G1 and G2 train jointly from the first step. pix2pixHD's code does the same
unless it is given a G1 trained before (``--niter_fix_global`` then freezes G1 for some
epochs); the paper's separate G1 stage at half resolution is not reproduced, since
geogan's runs start from scratch and a second stage would need a second run.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from geogan.contract.layouts import Pairing
from geogan.errors import InputError
from geogan.models.base import GANModel, GANSettings, Tensor
from geogan.models.hd_networks import MultiscaleDiscriminator, feature_matching_loss

#: What the checkpoint says when no VGG weights were given.
PERCEPTUAL_OFF = "off (no weights given)"


class Pix2PixHD(GANModel):
    """Paired translation, coarse to fine, judged at several scales (Wang et al. 2018)."""

    name = "pix2pixhd"
    pairing = Pairing.PAIRED
    default_generator = "pix2pixhd"
    generators = {"a2b": "G_A2B"}
    generator_keys = ("G_A2B",)
    needs_encoder = False
    loss_names = ("G_gan", "G_feat", "G_vgg", "G_total", "D")
    plot_panels = (("adversarial terms (all scales)", ("G_gan", "D")),
                   ("feature matching and perceptual (weighted)", ("G_feat", "G_vgg")),
                   ("generator: total", ("G_total",)))

    def __init__(self, in_bands: int, out_bands: int, settings: GANSettings,
                 seed: int = 0) -> None:
        super().__init__(in_bands, out_bands, settings, seed)
        if settings.num_d < 1:
            raise InputError(f"`num_d` must be 1 or more, got {settings.num_d}")
        self.vgg: nn.Module | None = None
        if settings.vgg_weights is not None:
            if out_bands == 2:
                raise InputError("the perceptual loss (`vgg_weights`) needs 1 or at least 3 "
                                 "bands in B; leave `vgg_weights` out for 2 bands")
            from geogan.models.vgg import VGGLoss

            self.vgg = VGGLoss(settings.vgg_weights)  # frozen, not among the networks
        g = self._add_generator("G_A2B", in_bands, out_bands)
        scales = [self._add_discriminator(f"D{k}", in_bands + out_bands)
                  for k in range(settings.num_d)]
        self.g_net = g
        self.d_net = MultiscaleDiscriminator(scales, self.batched)

    @classmethod
    def discriminator_reach(cls, settings: GANSettings) -> int:
        """The coarsest discriminator sees the crop downsampled ``2^(num_d - 1)`` times."""
        return 2 ** (settings.num_d - 1)

    def training_meta(self) -> dict[str, Any]:
        s = self.settings
        perceptual = PERCEPTUAL_OFF if self.vgg is None \
            else f"vgg19 sha256:{self.vgg.sha256}"  # type: ignore[union-attr]
        return {"perceptual_loss": perceptual, "num_d": s.num_d, "lambda_feat": s.lambda_feat}

    def _vgg_loss(self, fake_b: Tensor, real_b: Tensor) -> Tensor:
        if self.vgg is None:
            return torch.zeros((), device=fake_b.device)
        self.vgg.to(fake_b.device)  # a no-op once there
        return self.vgg(fake_b, real_b) * self.settings.lambda_feat

    def generator_step(self, g_run: nn.Module, real_a: Tensor,
                       real_b: Tensor) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        fake_b = g_run(real_a)  # G(x)
        fake = torch.cat([real_a, fake_b], dim=1)  # (B, Ca + Cb, H, W)
        real = torch.cat([real_a, real_b], dim=1)
        d = self.d_net  # D frozen; the real pair's activations are constants
        if self.batched:
            n = fake.shape[0]
            both = d.features(torch.cat([fake, real]))
            f_fake = [[f[:n] for f in scale] for scale in both]
            f_real = [[f[n:].detach() for f in scale] for scale in both]
        else:
            f_fake = d.features(fake)
            with torch.no_grad():
                f_real = d.features(real)
        gan = sum((self.gan_loss(scale[-1], True) for scale in f_fake),
                  torch.zeros((), device=fake_b.device))
        feat = feature_matching_loss(f_fake, f_real) * self.settings.lambda_feat
        vgg = self._vgg_loss(fake_b, real_b)
        total = gan + feat + vgg
        return (total, {"G_gan": gan, "G_feat": feat, "G_vgg": vgg, "G_total": total},
                {"fake_b": fake_b.detach()})

    def discriminator_step(self, d_run: nn.Module, real_a: Tensor, real_b: Tensor,
                           fakes: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        p_real, p_fake = d_run(real_a, real_b, fakes["fake_b"].to(real_b.dtype))
        loss = 0.5 * sum((self.gan_loss(r, True) + self.gan_loss(f, False)
                          for r, f in zip(p_real, p_fake, strict=True)),
                         torch.zeros((), device=real_b.device))
        return loss, {"D": loss}

    @torch.no_grad()
    def preview(self, real_a: Tensor, real_b: Tensor) -> list[list[tuple[str, str, Tensor]]]:
        return [[("input A", "a", real_a), ("output G(A)", "b", self.g_net(real_a)),
                 ("target B", "b", real_b)]]
