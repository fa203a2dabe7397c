"""``geogan tile`` through the real CLI: bad inputs give one line, exit non-zero, leave nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import rasterio
from click.testing import CliRunner, Result
from conftest import cli_error
from rasterio.transform import Affine

from geogan.cli import main
from geogan.contract.names import INDEX_NAME


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, ["--progress", "none", "tile", *args])


def _assert_error(result: Result, *needles: str) -> str:
    """One ``Error: ...`` line naming what is wrong, no traceback, non-zero exit."""
    line = cli_error(result)
    for needle in needles:
        assert needle in line, line
    return line


def _assert_nothing_left(parent: Path, out: Path) -> None:
    assert not out.exists()
    assert not [p for p in parent.iterdir() if p.name.startswith(".")]


def test_tile_writes_chips_and_index(make_raster, tmp_path: Path) -> None:
    src = make_raster("ok.tif", width=40, height=20)
    out = tmp_path / "chips"
    result = _run(str(src), "-o", str(out), "--size", "16", "--bands", "2,3")
    assert result.exit_code == 0, result.output
    assert f"Wrote 6 chips to {out}" in result.stdout
    assert (out / INDEX_NAME).exists() and len(list(out.glob("*.tif"))) == 6
    with rasterio.open(next(out.glob("*.tif"))) as chip:
        assert chip.count == 2


def test_raster_without_crs(make_raster, tmp_path: Path) -> None:
    src = make_raster("nocrs.tif", crs=None)
    out = tmp_path / "out"
    _assert_error(_run(str(src), "-o", str(out), "--size", "16"),
                  str(src), "has no CRS", "--allow-no-crs")
    _assert_nothing_left(tmp_path, out)
    result = _run(str(src), "-o", str(out), "--size", "16", "--allow-no-crs")
    assert result.exit_code == 0, result.output
    with rasterio.open(next(out.glob("*.tif"))) as chip:
        assert chip.crs is None


def test_rotated_transform(make_raster, tmp_path: Path) -> None:
    src = make_raster("rotated.tif", transform=Affine(5.0, 0.5, 485900.0, 0.5, -5.0, 5209247.0))
    out = tmp_path / "out"
    _assert_error(_run(str(src), "-o", str(out), "--size", "16"), str(src), "rotated")
    _assert_nothing_left(tmp_path, out)


def test_truncated_file(make_raster, tmp_path: Path) -> None:
    src = make_raster("cut.tif", width=300, height=300, tiled=True, blockxsize=64,
                      blockysize=64)
    size = src.stat().st_size
    with open(src, "r+b") as fh:
        fh.truncate(size // 2)
    out = tmp_path / "out"
    _assert_error(_run(str(src), "-o", str(out), "--size", "64"), str(src), "truncated")
    _assert_nothing_left(tmp_path, out)


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"this is not a raster")
    out = tmp_path / "out"
    _assert_error(_run(str(junk), "-o", str(out)), str(junk), "not a readable raster")
    missing = tmp_path / "missing.tif"
    _assert_error(_run(str(missing), "-o", str(out)), str(missing), "does not exist")
    _assert_nothing_left(tmp_path, out)


def test_raster_smaller_than_one_chip(make_raster, tmp_path: Path) -> None:
    src = make_raster("small.tif", width=30, height=20)
    out = tmp_path / "out"
    _assert_error(_run(str(src), "-o", str(out), "--size", "32"),
                  str(src), "smaller than one 32 px chip", "--size")
    _assert_nothing_left(tmp_path, out)


def test_small_raster_with_nodata_is_padded_when_allowed(make_raster, tmp_path: Path) -> None:
    src = make_raster("small.tif", width=30, height=20, nodata=0)
    out = tmp_path / "out"
    _assert_error(_run(str(src), "-o", str(out), "--size", "32"), "--max-nodata", "padded")
    _assert_nothing_left(tmp_path, out)
    result = _run(str(src), "-o", str(out), "--size", "32", "--max-nodata", "0.5")
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.tif"))) == 1


@pytest.mark.parametrize("bands", ["1,4", "0"])
def test_bands_out_of_range(make_raster, tmp_path: Path, bands: str) -> None:
    src = make_raster("three.tif", count=3)
    out = tmp_path / "out"
    _assert_error(_run(str(src), "-o", str(out), "--size", "16", "--bands", bands),
                  "--bands", bands)
    _assert_nothing_left(tmp_path, out)


def test_bands_not_numbers(make_raster, tmp_path: Path) -> None:
    src = make_raster("three.tif", count=3)
    result = _run(str(src), "-o", str(tmp_path / "out"), "--bands", "red,green")
    assert cli_error(result, alone=True).startswith("Error: --bands 'red,green'")
    assert not (tmp_path / "out").exists()


def test_output_exists_without_overwrite(make_raster, tmp_path: Path) -> None:
    src = make_raster("r.tif", width=32, height=32)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    _assert_error(_run(str(src), "-o", str(out), "--size", "16"), str(out), "--overwrite")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    # --overwrite never replaces a folder holding a file geogan did not write
    _assert_error(_run(str(src), "-o", str(out), "--size", "16", "--overwrite"), str(out),
                  "notes.txt")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (out / "notes.txt").unlink()
    assert _run(str(src), "-o", str(out), "--size", "32").exit_code == 0
    assert _run(str(src), "-o", str(out), "--size", "16", "--overwrite").exit_code == 0
    assert (out / INDEX_NAME).exists() and len(list(out.glob("*.tif"))) == 4


def test_output_folder_that_cannot_be_created(make_raster, tmp_path: Path) -> None:
    src = make_raster("r.tif", width=32, height=32)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "chips"
    _assert_error(_run(str(src), "-o", str(out), "--size", "16"), str(out), "writable")
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root can write into read-only folders")
def test_output_folder_without_permission(make_raster, tmp_path: Path) -> None:
    src = make_raster("r.tif", width=32, height=32)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        _assert_error(_run(str(src), "-o", str(locked / "out"), "--size", "16"), "writable")
        assert not any(locked.iterdir())
    finally:
        locked.chmod(0o700)


def test_aoi_that_does_not_intersect(make_raster, tmp_path: Path) -> None:
    import geopandas as gpd
    import shapely

    src = make_raster("r.tif", width=32, height=32)
    aoi = tmp_path / "elsewhere.gpkg"
    gpd.GeoDataFrame(geometry=[shapely.box(2.0, 48.0, 2.1, 48.1)], crs="EPSG:4326").to_file(aoi)
    out = tmp_path / "out"
    _assert_error(_run(str(src), "-o", str(out), "--size", "16", "--aoi", str(aoi)),
                  str(aoi), "does not intersect", str(src))
    _assert_nothing_left(tmp_path, out)


def test_aoi_that_is_not_a_vector_file(make_raster, tmp_path: Path) -> None:
    src = make_raster("r.tif", width=32, height=32)
    aoi = tmp_path / "aoi.gpkg"
    aoi.write_text("nonsense")
    out = tmp_path / "out"
    _assert_error(_run(str(src), "-o", str(out), "--size", "16", "--aoi", str(aoi)),
                  str(aoi), "not a vector file")
    _assert_nothing_left(tmp_path, out)


def test_bad_option_combinations(make_raster, tmp_path: Path) -> None:
    src = make_raster("r.tif", width=32, height=32)
    out = tmp_path / "out"
    _assert_error(_run(str(src), "-o", str(out), "--size", "16", "--overlap", "16"),
                  "--overlap 16", "--size 16")
    _assert_error(_run(str(src), "-o", str(out), "--crs", "EPSG:4326", "--align-to", str(src)),
                  "--align-to")
    _assert_error(_run(str(src), "-o", str(out), "--crs", "not-a-crs"), "--crs", "not-a-crs")
    _assert_nothing_left(tmp_path, out)


def test_pair_that_does_not_overlap(make_raster, tmp_path: Path) -> None:
    a = make_raster("a.tif", width=32, height=32)
    b = make_raster("b.tif", width=32, height=32,
                    transform=Affine(5.0, 0.0, 100000.0, 0.0, -5.0, 100000.0))
    out = tmp_path / "out"
    _assert_error(_run(str(a), "-o", str(out), "--size", "16", "--pair", str(b)),
                  str(b), "does not overlap", str(a))
    _assert_nothing_left(tmp_path, out)
