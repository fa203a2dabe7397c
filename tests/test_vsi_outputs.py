"""Outputs at GDAL paths: translate and mosaic write /vsizip/ and /vsimem/ (and cloud) paths
through a local temporary that is copied there once complete; other outputs are refused."""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from click.testing import CliRunner
from conftest import cli_error

from geogan.cli import main

TILE = ["--tile", "32", "--overlap", "8"]


def _cli(*args: object):
    return CliRunner().invoke(main, ["--progress", "none", *map(str, args)])


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch) -> Path:
    """TMPDIR of this test only, to see what geogan leaves in the temporary folder."""
    folder = tmp_path / "systmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)
    return folder


def _leftovers(folder: Path) -> list[Path]:
    """What is left in ``folder`` but torch's compiler cache (``torchinductor_USER``), which
    torch makes in TMPDIR the first time its compiler loads in a process: not geogan's."""
    return [p for p in folder.iterdir() if not p.name.startswith("torchinductor_")]


def _same_raster(a: str | Path, b: str | Path) -> None:
    with rasterio.open(a) as x, rasterio.open(b) as y:
        assert (x.crs, x.transform, x.shape, x.count, x.nodata, x.colorinterp) == \
            (y.crs, y.transform, y.shape, y.count, y.nodata, y.colorinterp)
        assert np.array_equal(x.read(), y.read())
        when = ("TIFFTAG_DATETIME", "GEOGAN_CREATED")  # the moment each was made
        assert {k: v for k, v in x.tags().items() if k not in when} == \
            {k: v for k, v in y.tags().items() if k not in when}


def test_translate_writes_into_a_zip(make_raster, tmp_path, private_tmp, tiny_checkpoint):
    src = make_raster("ortho.tif", width=67, height=45, nodata=0, nodata_box=(0, 5, 0, 9))
    local = _cli("translate", tiny_checkpoint, src, "-o", tmp_path / "local.tif", *TILE)
    assert local.exit_code == 0, local.output
    zip_path = tmp_path / "out.zip"
    member = f"/vsizip/{zip_path}/ortho_2020.tif"
    res = _cli("translate", tiny_checkpoint, src, "-o", member, *TILE, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["outputs"] == [member]
    assert zipfile.ZipFile(zip_path).namelist() == ["ortho_2020.tif"]
    _same_raster(member, tmp_path / "local.tif")
    assert _leftovers(private_tmp) == []  # the local temporary is gone
    # a zip member cannot be replaced, with or without --overwrite; the zip is untouched
    before = zip_path.read_bytes()
    for extra in ([], ["--overwrite"]):
        again = _cli("translate", tiny_checkpoint, src, "-o", member, *TILE, *extra)
        assert "already exists" in cli_error(again, alone=True)
    assert zip_path.read_bytes() == before
    # another member goes in beside it, here as a COG
    cog = f"/vsizip/{zip_path}/ortho_cog.tif"
    res = _cli("translate", tiny_checkpoint, src, "-o", cog, *TILE, "--cog")
    assert res.exit_code == 0, res.output
    assert sorted(zipfile.ZipFile(zip_path).namelist()) == ["ortho_2020.tif", "ortho_cog.tif"]
    with rasterio.open(cog) as c:
        assert c.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    # several inputs: the zip is the output folder
    other = make_raster("other.tif", width=40, height=40, seed=3)
    many = tmp_path / "many.zip"
    res = _cli("translate", tiny_checkpoint, src, other, "-o", f"/vsizip/{many}", *TILE)
    assert res.exit_code == 0, res.output
    assert sorted(zipfile.ZipFile(many).namelist()) == ["ortho.tif", "other.tif"]
    _same_raster(f"/vsizip/{many}/ortho.tif", tmp_path / "local.tif")
    assert _leftovers(private_tmp) == []


def test_the_library_mosaics_to_vsimem_and_overwrites_only_when_asked(make_raster, tmp_path,
                                                                       private_tmp):
    """/vsimem/ lasts as long as the process: the library writes there (a caller in the same
    process reads it), the command line refuses it."""
    from rasterio.transform import from_origin

    from geogan.errors import OutputError
    from geogan.mosaic import MosaicConfig, mosaic_chips

    left = make_raster("chips/a.tif", width=32, height=32,
                       transform=from_origin(500000, 4000000, 1, 1), seed=1)
    make_raster("chips/b.tif", width=32, height=32,
                transform=from_origin(500032, 4000000, 1, 1), seed=2)
    local = _cli("mosaic", left.parent, "-o", tmp_path / "local.tif")
    assert local.exit_code == 0, local.output
    out = "/vsimem/geogan-test/mosaic.tif"
    try:
        assert mosaic_chips([left.parent], out, MosaicConfig()) == out
        _same_raster(out, tmp_path / "local.tif")
        with pytest.raises(OutputError, match="already exists; pass --overwrite"):
            mosaic_chips([left.parent], out, MosaicConfig(blend="mean"))
        make_raster("chips/c.tif", width=32, height=32,
                    transform=from_origin(500000, 3999968, 1, 1), seed=4)
        mosaic_chips([left.parent], out, MosaicConfig(overwrite=True))
        with rasterio.open(out) as m:
            assert (m.width, m.height) == (64, 64)
    finally:
        rasterio.shutil.delete(out)
    assert _leftovers(private_tmp) == []


def test_a_zip_in_a_missing_folder_is_refused_before_any_work(make_raster, tmp_path,
                                                              private_tmp, tiny_checkpoint):
    src = make_raster("ortho.tif", width=40, height=40)
    member = f"/vsizip/{tmp_path / 'missing_folder' / 'out.zip'}/a.tif"
    res = _cli("translate", tiny_checkpoint, src, "-o", member, *TILE)
    assert res.exit_code != 0
    errors = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert errors == [f"Error: folder {tmp_path / 'missing_folder'} does not exist; create it "
                      "first, or give a zip file in an existing folder"]
    assert not (tmp_path / "missing_folder").exists()
    assert _leftovers(private_tmp) == []


def test_a_full_disk_leaves_the_zip_as_it_was(make_raster, tmp_path, private_tmp, full_disk,
                                              tiny_checkpoint):
    small = make_raster("small.tif", width=40, height=40)
    rng = np.random.default_rng(1)
    big = make_raster("big.tif", data=rng.integers(1, 256, (3, 700, 700), dtype=np.uint8))
    zip_path = full_disk / "out.zip"
    res = _cli("translate", tiny_checkpoint, small, "-o", f"/vsizip/{zip_path}/small.tif", *TILE)
    assert res.exit_code == 0, res.output
    before = zip_path.read_bytes()
    # the noisy 700 x 700 translation cannot fit in what is left of 1 MiB
    res = _cli("translate", tiny_checkpoint, big, "-o", f"/vsizip/{zip_path}/big.tif", *TILE)
    assert "no space left on device" in cli_error(res)
    assert sorted(p.name for p in full_disk.iterdir()) == ["out.zip"]  # no temporary beside it
    assert zip_path.read_bytes() == before
    assert zipfile.ZipFile(zip_path).namelist() == ["small.tif"]
    assert _leftovers(private_tmp) == []


def test_an_object_store_without_credentials_is_refused_before_any_work(
        make_raster, tmp_path, private_tmp, tiny_checkpoint, monkeypatch):
    for name in ("AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_CONNECTION_STRING",
                 "AZURE_STORAGE_ACCESS_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_NO_SIGN_REQUEST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no Azure CLI configuration either
    src = make_raster("ortho.tif", width=40, height=40)
    res = _cli("translate", tiny_checkpoint, src, "-o", "/vsiaz/photos/out.tif", *TILE)
    error = cli_error(res, alone=True)
    assert error.startswith("Error: cannot reach /vsiaz/photos/out.tif: ")
    assert "AZURE_STORAGE_ACCOUNT" in error and "credentials" in error
    assert _leftovers(private_tmp) == []


@pytest.mark.parametrize("args, expect", [
    (["translate", "CKPT", "SRC", "-o", "https://example.com/out.tif"],
     "--output https://example.com/out.tif: GDAL cannot write there"),
    (["translate", "CKPT", "SRC", "-o", "/vsicurl/http://example.com/out.tif"],
     "GDAL cannot write there"),
    (["translate", "CKPT", "SRC", "-o", "/vsizip/geogan-x.zip/x.tif", "--save-stats"],
     "--save-stats writes a JSON file beside the output"),
    (["translate", "CKPT", "SRC", "-o", "/vsimem/geogan-x.tif"],
     "--output /vsimem/geogan-x.tif: a /vsimem/ file lives in geogan's memory and is gone"),
    (["mosaic", "SRC", "-o", "/vsimem/geogan-x.tif"],
     "--output /vsimem/geogan-x.tif: a /vsimem/ file lives in geogan's memory and is gone"),
    (["tile", "SRC", "-o", "/vsis3/bucket/chips"],
     "--output /vsis3/bucket/chips: geogan tile writes chips and an index to a local folder"),
    (["train", "--a", "SRC", "--b", "SRC", "-o", "/vsimem/run"],
     "geogan train writes a run folder to a local folder"),
])
def test_outputs_gdal_cannot_take_are_refused_before_any_work(args, expect, make_raster,
                                                              tiny_checkpoint, tmp_path):
    src = make_raster("ortho.tif", width=40, height=40)
    given = [str(tiny_checkpoint) if a == "CKPT" else str(src) if a == "SRC" else a
             for a in args]
    res = _cli(*given)
    assert expect in cli_error(res, alone=True)
    for root in ("/vsis3", "/vsimem", "/vsicurl"):  # no local folder of that name
        assert not Path(root).exists()
    assert not Path("geogan-x.zip").exists()
    with pytest.raises(rasterio.errors.RasterioIOError):  # nothing kept in memory either
        rasterio.open("/vsimem/geogan-x.tif")


def test_a_full_tmpdir_is_reported_as_a_full_disk(make_raster, tmp_path, full_disk,
                                                  monkeypatch, tiny_checkpoint):
    """A /vsizip/ output is written in TMPDIR first; with TMPDIR full, GDAL said only
    "TIFFAppendToStrip: Write error at scanline 4294967295"."""
    monkeypatch.setenv("TMPDIR", str(full_disk))
    monkeypatch.setattr(tempfile, "tempdir", None)
    rng = np.random.default_rng(1)
    big = make_raster("big.tif", data=rng.integers(1, 256, (3, 700, 700), dtype=np.uint8))
    zip_path = tmp_path / "out.zip"
    res = _cli("translate", tiny_checkpoint, big, "-o", f"/vsizip/{zip_path}/big.tif", *TILE)
    assert res.exit_code == 1
    error = cli_error(res)
    assert error.startswith(f"Error: no space left on device writing /vsizip/{zip_path}/big.tif")
    assert f"written in {full_disk} first" in error and "scanline" not in error
    assert not zip_path.exists()
    assert not [p for p in full_disk.iterdir() if p.name.startswith(".geogan-")]
