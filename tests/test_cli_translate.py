"""``geogan translate`` on the command line: outputs, batches, progress and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import cli_error, make_checkpoint
from torch import nn

from geogan.checkpoint import LoadedGenerator
from geogan.cli import main
from geogan.normalize import BandNorm

TILE = ("--tile", "32", "--overlap", "8")


def _run(*args: object, progress: str = "none"):
    return CliRunner().invoke(main, ["--progress", progress, "translate", *map(str, args)])


def _read(path: Path) -> tuple[np.ndarray, rasterio.profiles.Profile, np.ndarray]:
    with rasterio.open(path) as src:
        return src.read(), src.profile, src.dataset_mask()


@pytest.fixture
def identity(monkeypatch):
    """Replace checkpoint loading by an identity generator; record the directions asked for."""
    asked: list[str] = []

    def fake_load(path, direction="a2b", device="cpu"):
        asked.append(direction)
        norm = BandNorm.full_range("uint8", 3, 0)
        return LoadedGenerator(nn.Identity(), direction, norm, norm)

    monkeypatch.setattr("geogan.translate.load_generator", fake_load)
    return asked


def test_command_module_is_light():
    code = ("import sys, geogan.cli.translate; "
            "print(sorted(m for m in ('torch', 'rasterio', 'geopandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_choices_come_from_the_library():
    from geogan.contract.choices import COMPRESSIONS, WINDOW_BLENDS

    result = CliRunner().invoke(main, ["translate", "--help"])
    assert result.exit_code == 0
    assert f"[{'|'.join(WINDOW_BLENDS)}]" in result.output.replace("\n", "").replace(" ", "")
    assert f"[{'|'.join(COMPRESSIONS)}]" in result.output.replace("\n", "").replace(" ", "")


def test_real_checkpoint_end_to_end_with_json_progress(make_raster, tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.safetensors", directions=("a2b", "b2a"))
    src = make_raster("in.tif", 45, 37, nodata=0, nodata_box=(0, 9, 0, 12))
    out = tmp_path / "out.tif"
    result = _run(ckpt, src, "-o", out, *TILE, "--direction", "b2a", progress="json")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert records and records[-1]["progress"] == pytest.approx(1.0)
    assert records[-1]["file"] == "in.tif" and "mpx_s" in records[-1]
    a, pa, ma = _read(src)
    b, pb, mb = _read(out)
    for key in ("crs", "transform", "width", "height", "nodata", "count", "dtype"):
        assert pa[key] == pb[key], key
    np.testing.assert_array_equal(ma, mb)


def test_folder_batch_existing_skip_and_overwrite(make_raster, tmp_path, identity):
    srcs = [make_raster(f"in/r{i}.tif", 30 + i, 20, seed=i) for i in range(3)]
    out = tmp_path / "out"
    result = _run("ckpt", tmp_path / "in", "-o", out, *TILE)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["r0.tif", "r1.tif", "r2.tif"]
    for s in srcs:
        np.testing.assert_array_equal(_read(s)[0], _read(out / s.name)[0])

    line = cli_error(_run("ckpt", tmp_path / "in", "-o", out, *TILE), alone=True)
    assert "already exists" in line and "--overwrite" in line

    (out / "r1.tif").unlink()
    mtime = (out / "r0.tif").stat().st_mtime_ns
    result = _run("ckpt", str(tmp_path / "in" / "*.tif"), "-o", out, *TILE, "--skip-existing")
    assert result.exit_code == 0, result.output
    assert (out / "r1.tif").exists() and (out / "r0.tif").stat().st_mtime_ns == mtime

    result = _run("ckpt", *srcs, "-o", out, *TILE, "--overwrite", "--cog")
    assert result.exit_code == 0, result.output
    assert (out / "r0.tif").stat().st_mtime_ns != mtime
    assert identity == ["a2b", "a2b", "a2b"]


def test_band_errors_and_bands_option(make_raster, tmp_path, identity):
    src = make_raster("four.tif", 30, 20, count=4)
    line = cli_error(_run("ckpt", src, "-o", tmp_path / "o.tif", *TILE), alone=True)
    assert "four.tif has 4 band(s)" in line and "--bands 1,2,3" in line
    assert not (tmp_path / "o.tif").exists()
    result = _run("ckpt", src, "-o", tmp_path / "o.tif", *TILE, "--bands", "3,2,1")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(_read(tmp_path / "o.tif")[0], _read(src)[0][[2, 1, 0]])
    assert "--bands" in cli_error(_run("ckpt", src, "-o", tmp_path / "p.tif", "--bands",
                                       "red"), alone=True)


@pytest.mark.parametrize("args,expected", [
    (("--overlap", "300"), "--overlap must be between 0 and half the tile"),
    (("--device", "tpu"), "unknown --device 'tpu'"),
    (("--skip-existing", "--overwrite"), "contradict"),
])
def test_bad_options(make_raster, tmp_path, identity, args, expected):
    src = make_raster("in.tif", 20, 20)
    assert expected in cli_error(_run("ckpt", src, "-o", tmp_path / "o.tif", *args), alone=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_missing_unreadable_and_unwritable(make_raster, tmp_path, identity):
    assert "nope.tif does not exist" in cli_error(
  _run("ckpt", tmp_path / "nope.tif", "-o", tmp_path / "o.tif"), alone=True)
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a raster at all")
    assert "bad.tif" in cli_error(_run("ckpt", bad, "-o", tmp_path / "o.tif"), alone=True)
    src = make_raster("in.tif", 20, 20)
    (tmp_path / "blocker").write_text("x")
    assert "not a folder" in cli_error(
  _run("ckpt", src, "-o", tmp_path / "blocker" / "o.tif"), alone=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tif", "blocker", "in.tif"]


def test_missing_checkpoint_is_a_clear_error(make_raster, tmp_path):
    src = make_raster("in.tif", 20, 20)
    line = cli_error(_run(tmp_path / "none.safetensors", src, "-o", tmp_path / "o.tif"), alone=True)
    assert "checkpoint" in line and "not found" in line


@pytest.mark.parametrize("masked_rows", [False, True])
def test_no_valid_pixel_reads_as_nodata_in_any_band(make_raster, tmp_path, identity,
                                                     masked_rows):
    """A valid pixel whose value equals nodata in one band is nudged off it (as GDAL's
    warper does), so GDAL's per-band masks keep it; only the input's nodata stays nodata."""
    data = np.full((3, 40, 50), 90, dtype=np.uint8)
    data[1, 5:15, 5:20] = 0  # valid pixels (bands 1 and 3 are 90) with band 2 at nodata
    data[:, 30:, 30:] = 0 if masked_rows else 90  # a nodata block (in the same rows or not)
    src = make_raster("in.tif", data=data, nodata=0)
    out = tmp_path / "out.tif"
    result = _run("ckpt", src, "-o", out, *TILE)
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as dst:
        got = dst.read()
        per_band = [dst.read_masks(b) for b in (1, 2, 3)]
        dataset = dst.dataset_mask()
    valid = (data != 0).any(axis=0)
    np.testing.assert_array_equal(dataset > 0, valid)
    for band_mask in per_band:  # GDAL's per-band masks: nodata where the band equals it
        np.testing.assert_array_equal(band_mask > 0, valid)
    assert (got[1, 5:15, 5:20] == 1).all()  # 0 -> 1, the nearest value that is not nodata
    np.testing.assert_array_equal(got[:, valid][[0, 2]], data[:, valid][[0, 2]])
    assert (got[:, ~valid] == 0).all()
