"""Checkpoints: save/load round trips, optimiser state as tensors, clear errors; through the
CLI, checkpoints that claim huge or broken networks are refused before anything is built."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import cli_error, listing, make_checkpoint, run_cli

import geogan
from geogan.checkpoint import (
    load_checkpoint,
    load_generator,
    optimizer_state_from_tensors,
    optimizer_state_to_tensors,
    read_metadata,
    resolve_checkpoint_path,
    save_record,
)
from geogan.contract.limits import ARCH_LIMITS
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
    assert load_generator(tmp_path / "m.json").checkpoint.step == 10  # sidecar path works too
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
        save_record(path, {"x": torch.zeros(1)}, {"model": "pix2pix"})
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
    save_record(tmp_path / "s.safetensors", tensors, {"opt": meta})
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


# ----------------------------------------------------------- refused before anything is built

TILE = ["--tile", "32", "--overlap", "8"]


def _tampered(folder: Path, edit_meta=None, edit_tensors=None, **kwargs) -> Path:
    """``folder/bad.safetensors``: a tiny :func:`make_checkpoint` with its metadata and
    tensors changed by ``edit_meta(meta)`` and ``edit_tensors(tensors) -> tensors``."""
    good = make_checkpoint(folder / "good" / "model.safetensors", **kwargs)
    tensors, meta = load_checkpoint(good)
    if edit_meta is not None:
        edit_meta(meta)
    if edit_tensors is not None:
        tensors = edit_tensors(tensors)
    path = save_record(folder / "bad.safetensors", tensors, meta)  # as tampered, unchecked
    shutil.rmtree(folder / "good")
    return path


@pytest.mark.parametrize("ngf, shown", [(4096, "ngf 4096 is outside"),
                                        (1e9, "ngf 1000000000.0 is not a whole number"),
                                        (-8, "ngf -8 is outside")])
def test_translate_refuses_a_generator_wider_than_geogan_builds(tmp_path, make_raster, ngf,
                                                                shown):
    ckpt = _tampered(tmp_path, lambda m: m["generators"]["a2b"]["kwargs"].update(ngf=ngf))
    src = make_raster("r.tif", width=40, height=30)
    before = listing(tmp_path)
    low, high = ARCH_LIMITS["ngf"]
    for args in (["translate", ckpt, src, "-o", tmp_path / "out.tif", *TILE], ["info", ckpt]):
        msg = cli_error(run_cli(*args))
        assert shown in msg and f"{low} to {high}" in msg and str(ckpt) in msg
    assert listing(tmp_path) == before


def test_translate_refuses_a_generator_of_other_bands_than_its_domains(tmp_path, make_raster):
    """Before: "unexpected RuntimeError" from the first convolution, mid-translation."""
    ckpt = _tampered(tmp_path, lambda m: m["generators"]["a2b"]["kwargs"].update(in_channels=4))
    src = make_raster("r.tif", width=40, height=30)
    before = listing(tmp_path)
    msg = cli_error(run_cli("translate", ckpt, src, "-o", tmp_path / "out.tif", *TILE))
    assert "the a2b generator's in_channels is 4 but domain a normalises 3 band(s)" in msg
    assert listing(tmp_path) == before


@pytest.mark.skipif(not hasattr(os, "wait4"), reason="needs os.wait4 for the child's peak memory")
def test_tensors_are_checked_before_the_network_is_built(tmp_path, make_raster):
    """Metadata claiming ngf 512 (a 2.9 GB resnet_9blocks) over the tensors of ngf 4: the
    safetensors header alone refuses them, so translate never reaches 1 GB."""
    ckpt = _tampered(tmp_path, lambda m: m["generators"]["a2b"]["kwargs"].update(ngf=512),
                     arch="resnet_9blocks")
    src = make_raster("r.tif", width=40, height=30)
    before = listing(tmp_path)
    root = str(Path(geogan.__file__).resolve().parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "geogan", "--progress", "none", "translate",
                             str(ckpt), str(src), "-o", str(tmp_path / "out.tif"), *TILE],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 1, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    assert "do not fit resnet_9blocks: model.0.weight is (4, 3, 7, 7), the network needs " \
        "(512, 3, 7, 7)" in lines[0]
    assert usage.ru_maxrss * 1024 < 1e9  # kilobytes on Linux
    assert listing(tmp_path) == before


@pytest.mark.parametrize("norm, shown", [
    ({"hi": [float("nan")] * 3}, "band 1 has lo 0.0 and hi nan"),
    ({"lo": [-1e308] * 3, "hi": [1e308] * 3}, "band 1 has lo -1e+308 and hi 1e+308"),
    ({"lo": [-3e38] * 3, "hi": [3e38] * 3}, "band 1 spans 6e+38 (hi - lo), beyond float32"),
    ({"lo": [5.0] * 3, "hi": [5.0] * 3}, "band 1 has lo 5.0 not below hi 5.0"),
    ({"dtype": "complex64"}, "dtype 'complex64' is not one geogan reads or writes"),
])
def test_translate_refuses_an_unusable_normalisation(tmp_path, make_raster, norm, shown):
    """Before: an all-0 or all-255 raster with every pixel valid, or a complex64 GeoTIFF."""
    ckpt = _tampered(tmp_path, lambda m: m["domains"]["b"]["norm"].update(norm))
    src = make_raster("r.tif", width=40, height=30)
    before = listing(tmp_path)
    for args in (["translate", ckpt, src, "-o", tmp_path / "out.tif", *TILE], ["info", ckpt]):
        msg = cli_error(run_cli(*args))
        assert "the normalisation of domain b is unusable" in msg and shown in msg
    assert listing(tmp_path) == before


def test_translate_refuses_integer_weights(tmp_path, make_raster):
    """Before: the int8 weights were cast to float and gave a near-constant image."""
    ckpt = _tampered(tmp_path, edit_tensors=lambda t: {k: (v * 100).to(torch.int8)
                                                       for k, v in t.items()})
    src = make_raster("r.tif", width=40, height=30)
    before = listing(tmp_path)
    msg = cli_error(run_cli("translate", ckpt, src, "-o", tmp_path / "out.tif", *TILE))
    assert "tensor model.0.weight holds int8 values" in msg and "float32" in msg
    assert listing(tmp_path) == before


def test_deeply_nested_metadata_is_one_line(tmp_path):
    from safetensors.torch import save_file

    deep = "[" * 100_000 + "]" * 100_000
    in_meta = tmp_path / "meta.safetensors"
    save_file({"x": torch.zeros(1)}, str(in_meta), metadata={"geogan": deep})
    in_header = tmp_path / "header.safetensors"
    header = ('{"__metadata__":' + deep + "}").encode()
    in_header.write_bytes(struct.pack("<Q", len(header)) + header)
    before = listing(tmp_path)
    for path in (in_meta, in_header):
        msg = cli_error(run_cli("info", path))
        assert "malformed JSON (nested too deeply)" in msg and str(path) in msg
    assert listing(tmp_path) == before
