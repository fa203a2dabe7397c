"""CUT and FastCUT (Park et al. 2020): unpaired translation by contrastive learning on patches.

``G`` is G_A2B, ``D`` is D, the MLP head ``H`` is H; ``L_GAN(G, D, X, Y)`` is G_gan,
``L_PatchNCE(G, H, X)`` is NCE and the identity term ``L_PatchNCE(G, H, Y)`` is NCE_Y
(lambda_X = lambda_Y = 1; FastCUT: lambda_X = 10, no NCE_Y, flip equivariance). No
cycle, no second generator, no image pool.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from geogan.contract.layouts import Pairing
from geogan.models import init_weights
from geogan.models.base import GANModel, GANSettings, Tensor
from geogan.models.patchnce import PatchSampleMLP, patch_nce_loss

log = logging.getLogger(__name__)


class CUTGenerator(nn.Module):
    """G and the patch head H run together: G(a), G(b) and the PatchNCE terms.

    Everything G's loss needs except the discriminator happens in this one forward, so
    DistributedDataParallel sees each of G's and H's weights used once per backward.
    """

    def __init__(self, g: nn.Module, head: PatchSampleMLP, batched: bool) -> None:
        super().__init__()
        self.G_A2B = g
        self.H = head
        self.batched = batched

    def _encode(self, x: list[Tensor]) -> list[list[Tensor]]:
        """G_enc of each image batch in ``x``: one feature list per batch."""
        enc = self.G_A2B.encode
        if self.batched and len(x) > 1:
            n = x[0].shape[0]
            feats = enc(torch.cat(x))
            return [[f[i * n:(i + 1) * n] for f in feats] for i in range(len(x))]
        return [enc(t) for t in x]

    def _nce(self, feat_k: list[Tensor], feat_q: list[Tensor], batch: int,
             flipped: bool) -> Tensor:
        """Mean over layers of PatchNCE(H(G_enc(target)), H(G_enc(source)))."""
        if flipped:  # G saw the mirrored image: mirror its features back
            feat_q = [f.flip(3) for f in feat_q]
        with torch.no_grad():  # the keys are constants of the loss
            k, ids = self.H(feat_k)
        q, _ = self.H(feat_q, ids)
        losses = [patch_nce_loss(qi, ki, batch) for qi, ki in zip(q, k, strict=True)]
        return torch.stack(losses).mean()

    def forward(self, real_a: Tensor, real_b: Tensor, identity: bool,
                flipped: bool) -> dict[str, Tensor]:
        n = real_a.shape[0]
        inputs = [real_a, real_b] if identity else [real_a]
        if flipped:  # FastCUT's flip equivariance: G(flip(x)) should be flip(G(x))
            inputs = [t.flip(3) for t in inputs]
        if self.batched and identity:
            y = self.G_A2B(torch.cat(inputs))
            outs = [y[:n], y[n:]]
        else:
            outs = [self.G_A2B(t) for t in inputs]
        out = {"fake_b": outs[0]}  # G(a), mirrored when flipped
        if identity:
            out["idt_b"] = outs[1]  # G(b)
        feat_q = self._encode(outs)  # G_enc(G(a)) [, G_enc(G(b))]
        with torch.no_grad():
            feat_k = self._encode([real_a, real_b] if identity else [real_a])
        out["nce"] = self._nce(feat_k[0], feat_q[0], n, flipped)
        if identity:
            out["nce_y"] = self._nce(feat_k[1], feat_q[1], real_b.shape[0], flipped)
        return out


class CUT(GANModel):
    """Unpaired translation by contrastive learning on patches (Park et al. 2020).

    One generator ``G``, one PatchGAN ``D`` and the patch head ``H``: G(a) must fool D
    (LSGAN) while each of its patches stays closer, in H's embedding of G's encoder
    features, to the patch of ``a`` at the same place than to other patches of ``a``.
    """

    name = "cut"
    pairing = Pairing.UNPAIRED
    default_generator = "resnet_9blocks"
    generators = {"a2b": "G_A2B"}
    generator_keys = ("G_A2B", "H")  # H trains with G (one optimiser, the same Adam settings)
    needs_encoder = True
    loss_names = ("G_gan", "NCE", "NCE_Y", "G_total", "D")
    plot_panels = (("adversarial terms", ("G_gan", "D")),
                   ("PatchNCE (weighted): A -> G(A), identity B -> G(B)", ("NCE", "NCE_Y")),
                   ("generator: total", ("G_total",)))
    #: PatchNCE weight when the settings give none.
    default_lambda_nce = 1.0
    #: Also ask G(b) to keep the patches of b (CUT: yes, FastCUT: no).
    nce_identity = True
    #: Mirror G's input half of the time and its features back (FastCUT).
    flip_equivariance = False

    def __init__(self, in_bands: int, out_bands: int, settings: GANSettings,
                 seed: int = 0) -> None:
        super().__init__(in_bands, out_bands, settings, seed)
        s = settings
        self.lambda_nce = self.default_lambda_nce if s.lambda_nce is None else s.lambda_nce
        if self.lambda_nce <= 0:
            raise ValueError("CUT needs a positive lambda_nce")
        g = self._add_generator("G_A2B", in_bands, out_bands)  # an Encoder: needs_encoder
        d = self._add_discriminator("D", out_bands)
        head = PatchSampleMLP(g.nce_channels, num_patches=s.nce_patches)
        init_weights(head)
        self.networks["H"] = head
        # G(b) ~ b only makes sense when both domains have the same bands
        self.identity = self.nce_identity and in_bands == out_bands
        if self.nce_identity and not self.identity:
            log.info("identity PatchNCE off: domain A has %d bands and B has %d", in_bands,
                     out_bands)
        self.g_net = CUTGenerator(g, head, self.batched)
        self.d_net = d

    def generator_step(self, g_run: nn.Module, real_a: Tensor,
                       real_b: Tensor) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        flipped = self.flip_equivariance and bool(torch.rand(()) < 0.5)
        out = g_run(real_a, real_b, self.identity, flipped)
        gan = self.gan_loss(self.d_net(out["fake_b"]), True)  # L_GAN(G, D): D frozen
        nce = out["nce"] * self.lambda_nce
        if self.identity:
            nce_y = out["nce_y"] * self.lambda_nce
            total = gan + 0.5 * (nce + nce_y)
        else:
            nce_y = nce.new_zeros(())
            total = gan + nce
        losses = {"G_gan": gan, "NCE": nce, "NCE_Y": nce_y, "G_total": total}
        return total, losses, {"fake_b": out["fake_b"].detach()}

    def discriminator_step(self, d_run: nn.Module, real_a: Tensor, real_b: Tensor,
                           fakes: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        fake_b = fakes["fake_b"].to(real_b.dtype)
        if self.batched:
            p = d_run(torch.cat([real_b, fake_b]))
            p_real, p_fake = p[:real_b.shape[0]], p[real_b.shape[0]:]
        else:
            p_real, p_fake = d_run(real_b), d_run(fake_b)
        loss = 0.5 * (self.gan_loss(p_real, True) + self.gan_loss(p_fake, False))
        return loss, {"D": loss}

    @torch.no_grad()
    def preview(self, real_a: Tensor, real_b: Tensor) -> list[list[tuple[str, str, Tensor]]]:
        g = self.g_net.G_A2B
        return [[("real A", "a", real_a), ("fake B = G(A)", "b", g(real_a))],
                [("real B", "b", real_b), ("identity G(B)", "b", g(real_b))]]


class FastCUT(CUT):
    """CUT's faster setting: PatchNCE weight 10, no identity term, flip equivariance."""

    name = "fastcut"
    default_lambda_nce = 10.0
    nce_identity = False
    flip_equivariance = True
