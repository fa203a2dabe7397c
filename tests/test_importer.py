"""``geogan import``: their generators, rebuilt here in their module layout, give the same
output as the imported geogan checkpoint; anything but a plain state dict is refused, and so
are huge, odd or integer tensors, in one line before any network is built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import cli_error, listing
from torch import nn

from geogan.checkpoint import load_generator, read_metadata
from geogan.cli import main
from geogan.contract.limits import ARCH_LIMITS


class TheirResnetBlock(nn.Module):
    def __init__(self, dim: int, dropout: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True),
                                   nn.InstanceNorm2d(dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True),
                   nn.InstanceNorm2d(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class TheirResnetGenerator(nn.Module):
    """models/networks.py ResnetGenerator of pytorch-CycleGAN-and-pix2pix (instance norm)."""

    def __init__(self, c_in: int, c_out: int, ngf: int, n_blocks: int,
                 dropout: bool = False) -> None:
        super().__init__()
        m: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(c_in, ngf, 7, bias=True),
                              nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for i in range(2):
            mult = 2 ** i
            m += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=True),
                  nn.InstanceNorm2d(ngf * mult * 2), nn.ReLU(True)]
        m += [TheirResnetBlock(ngf * 4, dropout) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            m += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1,
                                     output_padding=1, bias=True),
                  nn.InstanceNorm2d(ngf * mult // 2), nn.ReLU(True)]
        m += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, c_out, 7), nn.Tanh()]
        self.model = nn.Sequential(*m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class TheirUnetBlock(nn.Module):
    def __init__(self, outer: int, inner: int, c_in: int | None = None,
                 sub: nn.Module | None = None, outermost: bool = False,
                 innermost: bool = False, dropout: bool = False) -> None:
        super().__init__()
        c_in = outer if c_in is None else c_in
        downconv = nn.Conv2d(c_in, inner, 4, stride=2, padding=1, bias=True)
        downrelu, uprelu = nn.LeakyReLU(0.2, True), nn.ReLU(True)
        downnorm, upnorm = nn.InstanceNorm2d(inner), nn.InstanceNorm2d(outer)
        if outermost:
            upconv = nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1)
            model = [downconv, sub, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=True)
            model = [downrelu, downconv, uprelu, upconv, upnorm]
        else:
            upconv = nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=True)
            model = [downrelu, downconv, downnorm, sub, uprelu, upconv, upnorm]
            if dropout:
                model.append(nn.Dropout(0.5))
        self.outermost = outermost
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class TheirUnetGenerator(nn.Module):
    def __init__(self, c_in: int, c_out: int, num_downs: int, ngf: int) -> None:
        super().__init__()
        block = TheirUnetBlock(ngf * 8, ngf * 8, innermost=True)
        for _ in range(num_downs - 5):
            block = TheirUnetBlock(ngf * 8, ngf * 8, sub=block)
        block = TheirUnetBlock(ngf * 4, ngf * 8, sub=block)
        block = TheirUnetBlock(ngf * 2, ngf * 4, sub=block)
        block = TheirUnetBlock(ngf, ngf * 2, sub=block)
        self.model = TheirUnetBlock(c_out, ngf, c_in=c_in, sub=block, outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _save(net: nn.Module, path: Path) -> Path:
    torch.manual_seed(3)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05)
    torch.save(net.state_dict(), path)
    return path


def _import(*args: object):
    return CliRunner().invoke(main, ["--progress", "none", "import", *map(str, args)])


@pytest.mark.parametrize(("n_blocks", "size"), [(6, 32), (9, 36)])
def test_resnet_weights_give_their_output(tmp_path, n_blocks, size):
    theirs_a = TheirResnetGenerator(3, 3, 8, n_blocks).eval()
    theirs_b = TheirResnetGenerator(3, 3, 8, n_blocks).eval()
    a = _save(theirs_a, tmp_path / "latest_net_G_A.pth")
    b = _save(theirs_b, tmp_path / "latest_net_G_B.pth")
    theirs_b.load_state_dict(torch.load(b, weights_only=True))
    theirs_a.load_state_dict(torch.load(a, weights_only=True))
    out = tmp_path / "horse2zebra.safetensors"
    result = _import(a, "--b2a", b, "-o", out, "--name-a", "horse", "--name-b", "zebra")
    assert result.exit_code == 0, result.output
    meta = read_metadata(out)
    assert meta["model"] == "cyclegan" and meta["generators"]["a2b"]["arch"] == \
        f"resnet_{n_blocks}blocks"
    assert meta["domains"]["a"]["name"] == "horse"
    assert meta["domains"]["b"]["band_names"] == ["red", "green", "blue"]  # RGB pictures
    x = torch.rand(2, 3, size, size) * 2 - 1
    for direction, theirs in (("a2b", theirs_a), ("b2a", theirs_b)):
        ours = load_generator(out, direction).module
        with torch.no_grad():
            assert torch.allclose(ours(x), theirs(x), atol=1e-5)


def test_unet_weights_give_their_output(tmp_path):
    theirs = TheirUnetGenerator(3, 3, 7, 4).eval()
    g = _save(theirs, tmp_path / "latest_net_G.pth")
    out = tmp_path / "facades.safetensors"
    result = _import(g, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["checkpoint"] == str(out)
    meta = read_metadata(out)
    assert meta["model"] == "pix2pix" and meta["generators"]["a2b"]["arch"] == "unet_128"
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(load_generator(out).module(x), theirs(x), atol=1e-5)


def test_anything_but_a_plain_state_dict_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    pickled = tmp_path / "evil.pth"
    torch.save({"model": Payload()}, pickled)
    result = _import(pickled, "-o", tmp_path / "x.safetensors")
    assert result.exit_code != 0 and "not a plain tensor state dict" in result.stderr
    assert "this must never run" not in result.output
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    result = _import(other, "-o", tmp_path / "x.safetensors")
    assert result.exit_code != 0 and "ResnetGenerator or UnetGenerator" in result.stderr
    assert not (tmp_path / "x.safetensors").exists()


# ----------------------------------------------------------- refused before anything is built


def test_a_huge_first_convolution_is_refused_before_building(tmp_path):
    """A 2.5 MB file whose first convolution has 4096 filters claims a ResNet of hundreds of
    GB: ngf, read from that weight's shape, is bounded before any network is built."""
    state = TheirResnetGenerator(3, 3, 2, 9).state_dict()
    state["model.1.weight"] = torch.zeros(4096, 3, 7, 7)
    state["model.1.bias"] = torch.zeros(4096)
    pth = tmp_path / "huge.pth"
    torch.save(state, pth)
    low, high = ARCH_LIMITS["ngf"]
    msg = cli_error(_import(pth, "-o", tmp_path / "x.safetensors"))
    assert f"huge.pth: the generator's ngf 4096 is outside {low} to {high}" in msg
    assert listing(tmp_path) == ["huge.pth"]


@pytest.mark.parametrize("key", ["../../x", "model.1.weight\nError: forged", "model.x.weight",
                                 "model.1.conv_block.2.weight.extra"])
def test_tensors_their_generators_do_not_have_are_refused(tmp_path, key):
    state = TheirResnetGenerator(3, 3, 2, 6).state_dict()
    state[key] = torch.zeros(1)
    pth = tmp_path / "odd.pth"
    torch.save(state, pth)
    msg = cli_error(_import(pth, "-o", tmp_path / "x.safetensors"))
    assert f"holds tensor {key!r}, which is not a layer of a ResnetGenerator" in msg
    assert listing(tmp_path) == ["odd.pth"]


def test_integer_weights_are_refused(tmp_path):
    """Before: the int8 tensors were cast to float and the import 'succeeded'."""
    state = {k: (v * 100).to(torch.int8) for k, v in
             TheirResnetGenerator(3, 3, 2, 6).state_dict().items()}
    pth = tmp_path / "int8.pth"
    torch.save(state, pth)
    msg = cli_error(_import(pth, "-o", tmp_path / "x.safetensors"))
    assert "tensor model.1.weight holds int8 values" in msg and "float32" in msg
    assert listing(tmp_path) == ["int8.pth"]


def test_weights_of_another_width_are_refused_before_building(tmp_path):
    """Their first convolution says ngf 8, the rest is ngf 2: refused from the shapes."""
    state = TheirResnetGenerator(3, 3, 2, 6).state_dict()
    state["model.1.weight"] = torch.zeros(8, 3, 7, 7)
    state["model.1.bias"] = torch.zeros(8)
    pth = tmp_path / "mixed.pth"
    torch.save(state, pth)
    msg = cli_error(_import(pth, "-o", tmp_path / "x.safetensors"))
    assert "do not fit resnet_6blocks: model.3.weight is (4, 2, 3, 3), the network needs " \
        "(16, 8, 3, 3)" in msg
    assert listing(tmp_path) == ["mixed.pth"]
