"""Checkpoints: save/load round trips, optimiser state as tensors, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import make_checkpoint

from geogan.checkpoint import (
    load_checkpoint,
    load_generator,
    optimizer_state_from_tensors,
    optimizer_state_to_tensors,
    read_metadata,
    resolve_checkpoint_path,
    save_checkpoint,
)
from geogan.errors import CheckpointError, OutputError
from geogan.models import build_generator
from geogan.normalize import BandNorm

torch.set_num_threads(1)

NORM_A = BandNorm("uint16", (10.0,) * 4, (4000.0,) * 4, 0.0)


def _save_generator(path: Path) -> Path:
    """A pix2pix checkpoint (resnet_6blocks, ngf 8, seed 0): 4 uint16 bands -> 3 uint8 bands."""
    return make_checkpoint(path, bands_a=4, bands_b=3, ngf=8, model="pix2pix",
                           nodata=None, norm_a=NORM_A, names=("nir", "map"),
                           meta={"epoch": 1, "step": 10})


def test_saved_generator_loads_and_gives_identical_output(tmp_path: Path) -> None:
    _save_generator(tmp_path / "m.safetensors")
    torch.manual_seed(0)  # the same generator, built afresh
    g = build_generator("resnet_6blocks", in_channels=4, out_channels=3, ngf=8).eval()
    loaded = load_generator(tmp_path / "m.safetensors")
    assert not loaded.module.training
    x = torch.rand(2, 4, 32, 32) * 2 - 1
    assert torch.equal(loaded.module(x), g(x))
    assert loaded.in_norm == NORM_A
    assert (loaded.in_bands, loaded.out_bands) == (4, 3)
    assert load_generator(tmp_path / "m.json").meta["step"] == 10  # sidecar path works too
    run = tmp_path / "run"
    _save_generator(run / "model.safetensors")
    assert resolve_checkpoint_path(run) == run / "model.safetensors"  # a run folder works


def test_truncated_checkpoint_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    _save_generator(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated") as err:
        load_generator(path)
    assert "\n" not in str(err.value)
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="truncated"):
        read_metadata(path)


def test_checkpoint_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_generator(tmp_path / "none.safetensors")
    _save_generator(tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="no 'b2a' generator; available: a2b"):
        load_generator(tmp_path / "m.safetensors", direction="b2a")


def test_save_is_atomic_and_keeps_the_last_good_checkpoint(tmp_path: Path,
                                                           monkeypatch) -> None:
    path = tmp_path / "model.safetensors"
    _save_generator(path)
    good = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken)
    with pytest.raises(OutputError, match="no space left on device writing .*model.safetensors"):
        save_checkpoint(path, {"x": torch.zeros(1)}, {"model": "pix2pix"})
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]


def test_optimizer_state_round_trips_through_tensors(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.999))
    for _ in range(2):
        opt.zero_grad()
        net(torch.randn(4, 3)).pow(2).sum().backward()
        opt.step()
    tensors, meta = optimizer_state_to_tensors(opt.state_dict(), "opt")
    save_checkpoint(tmp_path / "s.safetensors", tensors, {"opt": meta})
    loaded, loaded_meta = load_checkpoint(tmp_path / "s.safetensors")

    twin = torch.nn.Linear(3, 2)
    twin.load_state_dict(net.state_dict())
    opt2 = torch.optim.Adam(twin.parameters(), lr=0.5)
    opt2.load_state_dict(optimizer_state_from_tensors(loaded, loaded_meta["opt"], "opt"))
    assert opt2.param_groups[0]["betas"] == (0.5, 0.999) and opt2.param_groups[0]["lr"] == 1e-3
    x = torch.randn(4, 3)
    for o, n in ((opt, net), (opt2, twin)):
        o.zero_grad()
        n(x).pow(2).sum().backward()
        o.step()
    for p, q in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q)
