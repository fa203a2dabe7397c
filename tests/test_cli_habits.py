"""GDAL/rio habits on the command line: --json results, geogan info, -v levels, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from geogan.checkpoint import save_checkpoint
from geogan.cli import main
from geogan.normalize import BandNorm

TILE = ["--tile", "32", "--overlap", "8"]


def _cli(*args: object):
    return CliRunner().invoke(main, ["--progress", "none", *map(str, args)])


def _ckpt(path: Path, bands: int = 3, ngf: int = 4) -> Path:
    from geogan.models import build_generator

    torch.manual_seed(0)
    kwargs = {"in_channels": bands, "out_channels": bands, "ngf": ngf}
    g = build_generator("resnet_6blocks", **kwargs)
    norm = BandNorm.full_range("uint8", bands, 0).to_json()
    meta = {"model": "cyclegan", "step": 7, "chip_size": 32,
            "generators": {"a2b": {"key": "G", "arch": "resnet_6blocks", "kwargs": kwargs}},
            "domains": {"a": {"name": "dry", "norm": norm}, "b": {"name": "wet", "norm": norm}}}
    return save_checkpoint(path, {f"G.{k}": v for k, v in g.state_dict().items()}, meta)


def test_every_result_command_prints_json(make_raster, tmp_path):
    src = make_raster("r.tif", width=64, height=48, nodata=0)
    ckpt = _ckpt(tmp_path / "m.safetensors")
    tiled = _cli("tile", src, "-o", tmp_path / "chips", "--size", "32", "--json")
    assert tiled.exit_code == 0, tiled.output
    data = json.loads(tiled.stdout)
    assert data["chips"] == len(list((tmp_path / "chips").glob("*.tif"))) == 4
    assert data["index"] == str(tmp_path / "chips" / "index.gpkg")
    mosaic = json.loads(_cli("mosaic", tmp_path / "chips", "-o", tmp_path / "m.tif",
                             "--json").stdout)
    assert mosaic == {"output": str(tmp_path / "m.tif")}
    out = json.loads(_cli("translate", ckpt, src, "-o", tmp_path / "t.tif", "--json",
                          *TILE).stdout)
    assert out == {"outputs": [str(tmp_path / "t.tif")]} and (tmp_path / "t.tif").is_file()
    exported = json.loads(_cli("export", ckpt, "-o", tmp_path / "g.safetensors",
                               "--json").stdout)
    assert exported["outputs"][0] == str(tmp_path / "g.safetensors")
    plain = _cli("mosaic", tmp_path / "chips", "-o", tmp_path / "m2.tif")
    assert plain.stdout.strip() == f"Wrote {tmp_path / 'm2.tif'}"


def test_info_describes_a_checkpoint(tmp_path):
    ckpt = _ckpt(tmp_path / "m.safetensors")
    result = _cli("info", ckpt, "--json")
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)["items"]
    assert item["kind"] == "checkpoint" and item["model"] == "cyclegan" and item["step"] == 7
    g = item["generators"]["a2b"]
    assert g["arch"] == "resnet_6blocks" and g["input"]["bands"] == 3
    assert g["input"]["name"] == "dry" and g["output"]["name"] == "wet"
    assert g["input"]["dtype"] == "uint8" and "window" in g["norm_modes"]
    text = _cli("info", ckpt).stdout
    assert "a2b: resnet_6blocks dry (3 x uint8) -> wet (3 x uint8)" in text


def test_info_describes_a_raster_and_whether_it_fits(make_raster, tmp_path):
    ckpt = _ckpt(tmp_path / "m.safetensors")
    four = make_raster("four.tif", width=20, height=10, count=4, crs="EPSG:4326", nodata=0)
    three = make_raster("three.tif", width=20, height=10, count=3)
    result = _cli("info", four, three, "--checkpoint", ckpt, "--json")
    assert result.exit_code == 0, result.output
    a, b = json.loads(result.stdout)["items"]
    assert (a["width"], a["height"], a["count"], a["crs"]) == (20, 10, 4, "EPSG:4326")
    assert a["geographic"] is True and a["nodata"] == 0
    assert a["fit"]["fits"] is False and a["fit"]["option"] == "--bands 1,2,3"
    assert b["fit"] == {"fits": True, "reason": None, "bands": "1,2,3", "option": None,
                        "georeferenced": True}
    ok = json.loads(_cli("info", four, "--checkpoint", ckpt, "--bands", "2,3,4",
                         "--json").stdout)["items"][0]["fit"]
    assert ok["fits"] is True and ok["option"] == "--bands 2,3,4"


def test_verbosity_levels(make_raster, tmp_path, caplog):
    src = make_raster("r.tif", width=64, height=48)
    import logging

    for flags, shown in (([], False), (["-v"], True)):
        caplog.clear()
        out = tmp_path / f"chips{len(flags)}"
        result = CliRunner().invoke(main, [*flags, "--progress", "none", "tile", str(src), "-o",
                                           str(out), "--size", "32"])
        assert result.exit_code == 0, result.output
        infos = [r for r in caplog.records if r.name.startswith("geogan")
                 and r.levelno == logging.INFO]
        assert bool(infos) is shown, flags


_SLOW_GENERATOR = """
import sys
from geogan.cli import main
sys.argv = ["geogan", "--progress", "json", "translate", *sys.argv[1:]]
main()
"""


def test_sigterm_exits_143_and_leaves_nothing(make_raster, tmp_path):
    rng = np.random.default_rng(0)
    src = make_raster("big.tif", data=rng.integers(1, 255, (3, 1200, 1200), dtype=np.uint8))
    ckpt = _ckpt(tmp_path / "m.safetensors", ngf=16)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_GENERATOR, str(ckpt), str(src), "-o",
                             str(out / "t.tif"), "--tile", "64", "--overlap", "8"],
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.stderr is not None
    for line in proc.stderr:  # wait for the first progress line: the job is running
        if line.startswith("{") and json.loads(line).get("done", 0) > 0:
            break
    else:
        pytest.fail(f"no progress line; exit {proc.wait()}")
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 143, rest
    assert not out.exists() or not any(out.iterdir())
