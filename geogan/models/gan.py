"""The translation models: their networks and their losses, one training step at a time.

The training loop (:mod:`geogan.train`) owns optimisers, precision, devices and
DDP; a model here only says what each step computes. Generators of one model
run inside one module (``g_net``) and discriminators inside another (``d_net``)
so that DistributedDataParallel sees exactly one forward per backward.

Paper-to-code names (CycleGAN, Zhu et al. 2017)::

    X, Y        domains A, B            G: X -> Y    G_A2B
    F: Y -> X   G_B2A                   D_Y, D_X     D_B, D_A
    L_GAN(G, D_Y, X, Y)   gan_A2B       L_cyc        cycle_A + cycle_B  (lambda = 10)
    L_identity            idt_A + idt_B (0.5 lambda)

pix2pix (Isola et al. 2017): ``G(x)`` is G_A2B, the conditional ``D(x, y)`` is D,
``L_cGAN`` is gan and ``L_L1`` is l1 (lambda = 100).

CUT (Park et al. 2020): ``G`` is G_A2B, ``D`` is D, the MLP head ``H`` is H;
``L_GAN(G, D, X, Y)`` is G_gan, ``L_PatchNCE(G, H, X)`` is NCE and the identity term
``L_PatchNCE(G, H, Y)`` is NCE_Y (lambda_X = lambda_Y = 1; FastCUT: lambda_X = 10,
no NCE_Y, flip equivariance). No cycle, no second generator, no image pool.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from geogan.contract import choices
from geogan.models import (
    DEFAULT_UPSAMPLE,
    build_discriminator,
    build_generator,
    init_weights,
    size_multiple,
)
from geogan.models.image_pool import ImagePool
from geogan.models.losses import GANLoss, l1_loss
from geogan.models.patchnce import NUM_PATCHES, PatchSampleMLP, patch_nce_loss

log = logging.getLogger(__name__)

Tensor = torch.Tensor


@dataclass(frozen=True)
class GANSettings:
    """Architecture and loss weights of a model (the parts a checkpoint must describe)."""

    generator: str = "resnet_9blocks"
    ngf: int = 64
    discriminator: str = "patchgan"
    ndf: int = 64
    n_layers: int = 3
    norm: str = "instance"
    use_dropout: bool = False
    gan_mode: str = "lsgan"
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    lambda_l1: float = 100.0
    pool_size: int = 50
    upsample: str = DEFAULT_UPSAMPLE
    #: Weight of PatchNCE (CUT); ``None`` takes the model's default (CUT 1, FastCUT 10).
    lambda_nce: float | None = None
    nce_patches: int = NUM_PATCHES


@dataclass(frozen=True)
class NetSpec:
    """One network of a checkpoint: its tensor-name prefix, architecture and arguments."""

    key: str
    arch: str
    kwargs: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "arch": self.arch, "kwargs": dict(self.kwargs)}


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    """Freeze (``False``) or unfreeze a network; D is frozen while G steps."""
    for p in module.parameters():
        p.requires_grad_(flag)


class GANModel:
    """Base of the translation models. Subclasses fill the networks and the two steps."""

    name = ""
    #: Loss names in CSV column order; generator terms first, then discriminator terms.
    loss_names: tuple[str, ...] = ()
    #: Panels of the loss plot: (title, loss names).
    plot_panels: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __init__(self, in_bands: int, out_bands: int, settings: GANSettings,
                 seed: int = 0) -> None:
        self.in_bands = in_bands
        self.out_bands = out_bands
        self.settings = settings
        self.seed = seed
        self.gan_loss = GANLoss(settings.gan_mode)
        self.specs: dict[str, NetSpec] = {}
        self.networks = nn.ModuleDict()
        # batch norm mixes the samples of a batch, so only without it may G and D run
        # real and fake images (or two inputs) through in one concatenated batch
        self.batched = settings.norm != "batch"

    def _add(self, spec: NetSpec, is_generator: bool) -> nn.Module:
        build = build_generator if is_generator else build_discriminator
        net = build(spec.arch, **spec.kwargs)
        self.specs[spec.key] = spec
        self.networks[spec.key] = net
        return net

    def _gen_kwargs(self, c_in: int, c_out: int) -> dict[str, Any]:
        s = self.settings
        return {"in_channels": c_in, "out_channels": c_out, "ngf": s.ngf, "norm": s.norm,
                "use_dropout": s.use_dropout, "upsample": s.upsample}

    def _disc_kwargs(self, c_in: int) -> dict[str, Any]:
        s = self.settings
        kwargs: dict[str, Any] = {"in_channels": c_in, "ndf": s.ndf, "norm": s.norm}
        if s.discriminator == "patchgan":
            kwargs["n_layers"] = s.n_layers
        return kwargs

    # -- what the training loop uses -------------------------------------------------
    g_net: nn.Module
    d_net: nn.Module

    @property
    def size_multiple(self) -> int:
        return max(size_multiple(self.networks[k]) for k in self.generator_keys)

    @property
    def generator_keys(self) -> tuple[str, ...]:
        return tuple(k for k in self.specs if k.startswith("G"))

    def generator_meta(self) -> dict[str, dict[str, Any]]:
        """``{"a2b": {"key", "arch", "kwargs"}, ...}`` for the checkpoint metadata."""
        raise NotImplementedError

    def discriminator_meta(self) -> dict[str, dict[str, Any]]:
        return {k: {"arch": s.arch, "kwargs": dict(s.kwargs)}
                for k, s in self.specs.items() if k.startswith("D")}

    def generator_step(self, g_run: nn.Module, real_a: Tensor,
                       real_b: Tensor) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        """G's total loss, its named parts, and the fakes the D step needs (detached)."""
        raise NotImplementedError

    def discriminator_step(self, d_run: nn.Module, real_a: Tensor, real_b: Tensor,
                           fakes: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def state_tensors(self) -> dict[str, Tensor]:
        """Training state beyond the weights (image pools), as tensors."""
        return {}

    def load_state_tensors(self, tensors: dict[str, Tensor], device: torch.device) -> None:
        """Restore :meth:`state_tensors`."""

    @torch.no_grad()
    def preview(self, real_a: Tensor, real_b: Tensor) -> list[list[tuple[str, str, Tensor]]]:
        """Rows of ``(label, domain "a"/"b", image (B, C, H, W))`` to show a person."""
        raise NotImplementedError


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
        g_a2b = self._add(NetSpec("G_A2B", s.generator, self._gen_kwargs(in_bands, out_bands)),
                          True)
        g_b2a = self._add(NetSpec("G_B2A", s.generator, self._gen_kwargs(out_bands, in_bands)),
                          True)
        d_a = self._add(NetSpec("D_A", s.discriminator, self._disc_kwargs(in_bands)), False)
        d_b = self._add(NetSpec("D_B", s.discriminator, self._disc_kwargs(out_bands)), False)
        # identity mapping G(b) ~ b only makes sense when both domains have the same bands
        self.identity = s.lambda_identity > 0 and in_bands == out_bands
        if s.lambda_identity > 0 and not self.identity:
            log.info("identity loss off: domain A has %d bands and B has %d", in_bands,
                     out_bands)
        self.g_net = CycleGANGenerators(g_a2b, g_b2a, self.batched)
        self.d_net = DiscriminatorPair(d_a, d_b, self.batched)
        self.pool_a = ImagePool(s.pool_size, seed=seed * 2 + 1)
        self.pool_b = ImagePool(s.pool_size, seed=seed * 2 + 2)

    def generator_meta(self) -> dict[str, dict[str, Any]]:
        return {"a2b": self.specs["G_A2B"].to_json(), "b2a": self.specs["G_B2A"].to_json()}

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
    loss_names = ("G_gan", "G_L1", "G_total", "D")
    plot_panels = (("adversarial terms", ("G_gan", "D")),
                   ("L1 to the target (weighted)", ("G_L1",)),
                   ("generator: total", ("G_total",)))

    def __init__(self, in_bands: int, out_bands: int, settings: GANSettings,
                 seed: int = 0) -> None:
        super().__init__(in_bands, out_bands, settings, seed)
        s = settings
        g = self._add(NetSpec("G_A2B", s.generator, self._gen_kwargs(in_bands, out_bands)), True)
        d = self._add(NetSpec("D", s.discriminator, self._disc_kwargs(in_bands + out_bands)),
                      False)
        self.g_net = g
        self.d_net = ConditionalDiscriminator(d, self.batched)

    def generator_meta(self) -> dict[str, dict[str, Any]]:
        return {"a2b": self.specs["G_A2B"].to_json()}

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
        g = self._add(NetSpec("G_A2B", s.generator, self._gen_kwargs(in_bands, out_bands)), True)
        d = self._add(NetSpec("D", s.discriminator, self._disc_kwargs(out_bands)), False)
        channels = getattr(g, "nce_channels", None)
        if channels is None:
            raise ValueError(f"generator {s.generator} exposes no encoder features for CUT")
        head = PatchSampleMLP(channels, num_patches=s.nce_patches)
        init_weights(head)
        self.networks["H"] = head
        # G(b) ~ b only makes sense when both domains have the same bands
        self.identity = self.nce_identity and in_bands == out_bands
        if self.nce_identity and not self.identity:
            log.info("identity PatchNCE off: domain A has %d bands and B has %d", in_bands,
                     out_bands)
        self.g_net = CUTGenerator(g, head, self.batched)
        self.d_net = d

    @property
    def generator_keys(self) -> tuple[str, ...]:
        return ("G_A2B", "H")  # H trains with G (one optimiser, the same Adam settings)

    def generator_meta(self) -> dict[str, dict[str, Any]]:
        return {"a2b": self.specs["G_A2B"].to_json()}

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


#: Translation models by name (the CLI's --model choices).
GAN_MODELS: dict[str, type[GANModel]] = {
    name: {"cyclegan": CycleGAN, "pix2pix": Pix2Pix, "cut": CUT, "fastcut": FastCUT}[name]
    for name in choices.MODELS}  # keyed by geogan.contract.choices.MODELS

#: Default generator per model, as in the papers.
DEFAULT_GENERATOR: dict[str, str] = {"cyclegan": "resnet_9blocks", "pix2pix": "unet_256",
                                     "cut": "resnet_9blocks", "fastcut": "resnet_9blocks"}

#: Chip layout each model trains on (see geogan.datasets.open_training_data).
DATA_LAYOUT: dict[str, str] = {"cyclegan": "cyclegan", "pix2pix": "pix2pix",
                               "cut": "cyclegan", "fastcut": "cyclegan"}
