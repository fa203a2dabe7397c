"""pix2pixHD's perceptual loss: L1 between VGG19 activations, from weights the user gives.

geogan never downloads anything: the loss is on only when a file of VGG19 weights is given
(torchvision's ``vgg19`` state dict, or just its ``features.*`` part, as ``.safetensors``
or a file ``torch.load(..., weights_only=True)`` reads). The network is built here with
torchvision's layer indices, so torchvision is not needed.

The loss (pix2pixHD's ``VGGLoss``): relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1 of
``G(x)`` and of ``y``, L1 weighted 1/32, 1/16, 1/8, 1/4 and 1, images in ``[-1, 1]`` fed
as they are (as pix2pixHD does). VGG sees three bands: one band is repeated, of more the
first three are taken (the red, green and blue of an RGB or RGBN raster).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from geogan.errors import InputError

Tensor = torch.Tensor

#: VGG19's convolutions up to conv5_1 (channels), "M" a 2 x 2 max pooling.
_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                               512, 512, 512, 512, "M", 512)
#: Index after which each compared activation is taken (relu1_1 ... relu5_1).
_TAPS: tuple[int, ...] = (1, 6, 11, 20, 29)
WEIGHTS: tuple[float, ...] = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def _features() -> nn.Sequential:
    layers: list[nn.Module] = []
    c = 3
    for v in _CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            assert isinstance(v, int)
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=False)]
            c = v
    return nn.Sequential(*layers)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_state(path: Path) -> dict[str, Tensor]:
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is the user's input
        raise InputError(f"`vgg_weights` {path} could not be read as VGG19 weights "
                         f"({type(exc).__name__}); give torchvision's vgg19 state dict as "
                         ".safetensors or .pth") from exc
    if not isinstance(state, dict):
        raise InputError(f"`vgg_weights` {path} holds no state dict; give torchvision's "
                         "vgg19 state dict as .safetensors or .pth")
    return state


class VGGLoss(nn.Module):
    """Weighted L1 between VGG19 activations; frozen, never saved with the model."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        p = Path(path)
        if not p.is_file():
            raise InputError(f"`vgg_weights` {p} is not a file; give torchvision's vgg19 "
                             "weights, or leave it out to train without the perceptual loss")
        self.features = _features()
        state = _read_state(p)
        wanted = self.features.state_dict()
        got = {}
        for key, ref in wanted.items():
            value = state.get(f"features.{key}", state.get(key))
            if not isinstance(value, Tensor) or value.shape != ref.shape:
                raise InputError(f"`vgg_weights` {p} has no VGG19 tensor features.{key} of "
                                 f"shape {tuple(ref.shape)}; give torchvision's vgg19 weights")
            got[key] = value.float()
        self.features.load_state_dict(got)
        self.features.requires_grad_(False)
        self.features.eval()
        self.sha256 = sha256(p)

    def _taps(self, x: Tensor) -> list[Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _TAPS:
                out.append(x)
        return out

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        bands = fake.shape[1]
        if bands == 1:
            fake, real = fake.repeat(1, 3, 1, 1), real.repeat(1, 3, 1, 1)
        else:
            fake, real = fake[:, :3], real[:, :3]
        n = fake.shape[0]
        feats = self._taps(torch.cat([fake, real]).float())
        loss = torch.zeros((), device=fake.device)
        for w, f in zip(WEIGHTS, feats, strict=True):
            loss = loss + w * nn.functional.l1_loss(f[:n], f[n:].detach())
        return loss
