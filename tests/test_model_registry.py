"""Models that describe themselves: the family registry's checks, a new family trained
through the normal training code with nothing else edited, the Generator protocol, and
``--norm global`` refusing a generator it could not reach."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import cli_error, make_checkpoint, run_cli
from test_train import TINY, make_chips

from geogan import models
from geogan.checkpoint import load_generator, read_metadata
from geogan.contract.layouts import Layout, Pairing
from geogan.errors import InputError
from geogan.info import norm_modes
from geogan.models import build_generator, discriminator_kwargs
from geogan.models.base import DECLARED, GANModel, GANSettings, Tensor
from geogan.models.generators import norm_layer
from geogan.models.losses import l1_loss
from geogan.models.protocol import GeneratorContractError
from geogan.models.registry import FAMILIES, RegistryError, build_registry
from geogan.train import TrainConfig, train

torch.set_num_threads(1)


class ToyFamily(GANModel):
    """One generator learning B from A by L1 and an unconditional PatchGAN on B."""

    name = "toy"
    pairing = Pairing.UNPAIRED
    default_generator = "resnet_6blocks"
    generators = {"a2b": "G_A2B"}
    generator_keys = ("G_A2B",)
    needs_encoder = False
    loss_names = ("G_gan", "G_L1", "G_total", "D")
    plot_panels = (("all", ("G_gan", "G_L1", "G_total", "D")),)

    def __init__(self, in_bands: int, out_bands: int, settings: GANSettings,
                 seed: int = 0) -> None:
        super().__init__(in_bands, out_bands, settings, seed)
        self.g_net = self._add_generator("G_A2B", in_bands, out_bands)
        self.d_net = self._add_discriminator("D", out_bands)

    def generator_step(self, g_run: torch.nn.Module, real_a: Tensor,
                       real_b: Tensor) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        fake_b = g_run(real_a)
        gan = self.gan_loss(self.d_net(fake_b), True)
        l1 = l1_loss(fake_b, real_b)
        total = gan + l1
        return total, {"G_gan": gan, "G_L1": l1, "G_total": total}, {"fake_b": fake_b.detach()}

    def discriminator_step(self, d_run: torch.nn.Module, real_a: Tensor, real_b: Tensor,
                           fakes: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        loss = 0.5 * (self.gan_loss(d_run(real_b), True)
                      + self.gan_loss(d_run(fakes["fake_b"]), False))
        return loss, {"D": loss}

    @torch.no_grad()
    def preview(self, real_a: Tensor, real_b: Tensor) -> list[list[tuple[str, str, Tensor]]]:
        return [[("A", "a", real_a), ("G(A)", "b", self.g_net(real_a)), ("B", "b", real_b)]]


class PairedToy(ToyFamily):
    name = "paired_toy"
    pairing = Pairing.PAIRED


@pytest.mark.parametrize("family", [ToyFamily, PairedToy])
def test_a_registered_family_trains_through_the_training_code(
        tmp_path: Path, make_raster, monkeypatch: pytest.MonkeyPatch,
        family: type[GANModel]) -> None:
    monkeypatch.setitem(FAMILIES, family.name, family)
    if family.pairing is Pairing.PAIRED:
        make_chips(make_raster, "pairs/A", 2)
        a, b = tmp_path / "pairs", None
        make_chips(make_raster, "pairs/B", 2, seed=5)
    else:
        a, b = make_chips(make_raster, "a", 2), make_chips(make_raster, "b", 2, seed=9)
    out = tmp_path / "run"
    train(TrainConfig(a=a, b=b, output=out, model=family.name, max_steps=1,
                      **{**TINY, "generator": None, "ngf": 4, "ndf": 4}))
    meta = read_metadata(out)
    assert meta["model"] == family.name and meta["step"] == 1
    assert set(meta["generators"]) == {"a2b"}
    assert meta["generators"]["a2b"]["arch"] == "resnet_6blocks"  # its default generator
    assert set(meta["discriminators"]) == {"D"}
    assert meta["discriminators"]["D"]["kwargs"]["n_layers"] == 3
    assert meta["training"]["layout"] == ("paired" if family is PairedToy else "unpaired")
    assert set(meta["losses"]) == set(family.loss_names)
    gen = load_generator(out, "a2b")
    assert gen.out_bands == 3


def test_a_family_missing_a_declaration_is_refused_at_registry_build() -> None:
    attrs = {k: getattr(ToyFamily, k) for k in DECLARED if k != "pairing"}
    attrs.update(generator_step=ToyFamily.generator_step,
                 discriminator_step=ToyFamily.discriminator_step, preview=ToyFamily.preview)
    broken = type("NoPairing", (GANModel,), attrs)
    with pytest.raises(RegistryError, match=r"model family 'toy' \(.*NoPairing\) does not "
                                            r"declare pairing"):
        build_registry([ToyFamily, broken])


@pytest.mark.parametrize("change,message", [
    ({"pairing": "paired"}, "not a geogan.contract.layouts.Pairing"),
    ({"default_generator": "resnet_7blocks"}, "default_generator 'resnet_7blocks'"),
    ({"generators": {"b2a": "G_A2B"}}, "a2b at least"),
    ({"generator_keys": ("G_B2A",)}, "G_A2B among them"),
    ({"plot_panels": (("x", ("G_gan", "nope")),)}, "not among its loss_names"),
    ({"generator_step": GANModel.generator_step}, "does not implement generator_step"),
])
def test_registry_names_the_wrong_declaration(change: dict, message: str) -> None:
    bad = type("Bad", (ToyFamily,), change)
    with pytest.raises(RegistryError, match=message):
        build_registry([bad])
    with pytest.raises(RegistryError, match="differ from geogan.contract.choices.MODELS"):
        build_registry([ToyFamily], ["cyclegan"])


class _Bare(torch.nn.Module):
    """A generator that states nothing: no size_multiple, no encoder."""

    min_size = 4

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 8,
                 **_: object) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_a_generator_is_checked_against_the_protocol_when_built(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(models.GENERATORS, "bare", _Bare)
    with pytest.raises(GeneratorContractError, match=r"generator 'bare' .* does not state "
                                                     "size_multiple"):
        build_generator("bare")
    monkeypatch.setattr(_Bare, "size_multiple", 1, raising=False)
    assert build_generator("bare").size_multiple == 1
    with pytest.raises(GeneratorContractError, match="exposes no encoder features"):
        build_generator("bare", encoder=True)
    with pytest.raises(InputError, match="--generator bare exposes no encoder features, which "
                                         "--model cut reads"):
        FAMILIES["cut"](3, 3, GANSettings(generator="bare", ngf=4, ndf=4))
    bad = type("EncoderlessCut", (FAMILIES["cut"],), {"default_generator": "resnet_6blocks"})
    monkeypatch.setitem(models.GENERATORS, "resnet_6blocks", _Bare)
    with pytest.raises(RegistryError, match="exposes no encoder features"):
        build_registry([bad])


def test_discriminators_declare_the_settings_they_take() -> None:
    settings = GANSettings(n_layers=2)
    assert discriminator_kwargs("patchgan", 3, 8, "instance", settings) == {
        "in_channels": 3, "ndf": 8, "norm": "instance", "n_layers": 2}
    assert discriminator_kwargs("pixel", 3, 8, "batch", settings) == {
        "in_channels": 3, "ndf": 8, "norm": "batch"}


def test_one_layout_vocabulary() -> None:
    assert [layout.pairing for layout in Layout] == [
        Pairing.UNPAIRED, Pairing.PAIRED, Pairing.PAIRED, Pairing.UNPAIRED, Pairing.PAIRED]
    assert Layout.raster_windows(Pairing.PAIRED) == "paired_raster_windows"
    assert {f.pairing for f in FAMILIES.values()} == set(Pairing)


class GroupNormGenerator(torch.nn.Module):
    """A generator whose norm is GroupNorm: per-window statistics translate cannot replace."""

    size_multiple = 1
    min_size = 4

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 8,
                 **_: object) -> None:
        super().__init__()
        self.model = torch.nn.Sequential(
            torch.nn.Conv2d(in_channels, ngf, 3, padding=1, padding_mode="reflect"),
            torch.nn.GroupNorm(2, ngf), torch.nn.ReLU(),
            torch.nn.Conv2d(ngf, ngf, 3, padding=1, padding_mode="reflect"),
            norm_layer("instance", ngf), torch.nn.ReLU(),
            torch.nn.Conv2d(ngf, out_channels, 1), torch.nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def test_norm_global_refuses_a_generator_without_instance_norm_it_can_reach(
        tmp_path: Path, make_raster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(models.GENERATORS, "groupnorm", GroupNormGenerator)
    ckpt = make_checkpoint(tmp_path / "gn.safetensors", arch="groupnorm")
    src = make_raster("in.tif", 40, 36)
    out = tmp_path / "out.tif"
    for norm in ([], ["--norm", "global"], ["--norm", "dense"]):  # global is the default
        error = cli_error(run_cli("translate", ckpt, src, "-o", out, "--tile", "32",
                                  "--overlap", "8", *norm))
        assert "GroupNorm layers ('model.1')" in error and "--norm window" in error, error
        assert not out.exists()
    done = run_cli("translate", ckpt, src, "-o", out, "--tile", "32", "--overlap", "8",
                   "--norm", "window")
    assert done.exit_code == 0, done.output
    assert out.is_file()
    kwargs = {"in_channels": 3, "out_channels": 3, "ngf": 4}  # what info says it offers
    assert norm_modes("groupnorm", kwargs) == ["window"]
    assert norm_modes("resnet_6blocks", kwargs) == ["window", "global", "dense"]
