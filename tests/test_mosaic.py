"""geogan.mosaic: tile then mosaic is bit-exact; blending, gaps, COG, bad chips."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import GEOGRAPHIC, PROJECTED, cli_error, make_raster_array
from rasterio.transform import from_origin

import geogan.mosaic as mosaic_mod
from geogan.cli import main
from geogan.contract.names import chip_name
from geogan.errors import Cancelled, InputError, OutputError
from geogan.mosaic import MosaicConfig, mosaic_chips
from geogan.tiling import TileConfig, tile_rasters

CASES = [  # dtype, nodata (None: no nodata value)
    ("uint8", 0),
    ("uint16", None),
    ("float32", -9999.0),
    ("float32", float("nan")),
]


def _assert_same_raster(a_path: Path, b_path: Path) -> None:
    """Same CRS (==), size, band count, dtype, nodata, transform (1e-9 px) and pixels."""
    with rasterio.open(a_path) as a, rasterio.open(b_path) as b:
        assert b.crs == a.crs
        assert (b.width, b.height, b.count) == (a.width, a.height, a.count)
        assert b.dtypes == a.dtypes
        assert (b.nodata == a.nodata) or (math.isnan(a.nodata) and math.isnan(b.nodata))
        tol = 1e-9 * abs(a.transform.a)
        for x, y in zip(a.transform, b.transform, strict=True):
            assert abs(x - y) <= tol
        np.testing.assert_array_equal(b.read(), a.read())


def _leftovers(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("crs", [PROJECTED, GEOGRAPHIC])
@pytest.mark.parametrize("overlap", [0, 5])
@pytest.mark.parametrize("dtype,nodata", CASES)
def test_tile_then_mosaic_is_bit_exact(make_raster, tmp_path: Path, dtype: str,
                                       nodata: float | None, overlap: int, crs: str) -> None:
    box = (3, 20, 40, 67) if nodata is not None else None  # a nodata hole at the right edge
    src = make_raster("src.tif", width=67, height=45, count=3, dtype=dtype, crs=crs,
                      nodata=nodata, nodata_box=box)
    chips = tmp_path / "chips"
    tile_rasters([src], chips, TileConfig(size=16, overlap=overlap, max_nodata=1.0))
    out = mosaic_chips([chips], tmp_path / "mosaic.tif", MosaicConfig())
    _assert_same_raster(src, out)


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_feather_blend_is_also_exact_on_identical_overlaps(make_raster, tmp_path: Path,
                                                          dtype: str) -> None:
    src = make_raster("src.tif", width=53, height=41, count=2, dtype=dtype)
    chips = tmp_path / "chips"
    tile_rasters([src], chips, TileConfig(size=16, overlap=7))
    out = mosaic_chips([chips], tmp_path / "m.tif", MosaicConfig(blend="feather"))
    _assert_same_raster(src, out)


def test_padded_chip_mosaics_back_to_the_small_raster(make_raster, tmp_path: Path) -> None:
    src = make_raster("tiny.tif", width=10, height=7, count=2, nodata=0, crs=GEOGRAPHIC)
    chips = tmp_path / "chips"
    tile_rasters([src], chips, TileConfig(size=16, max_nodata=1.0))
    _assert_same_raster(src, mosaic_chips([chips], tmp_path / "m.tif", MosaicConfig()))


def test_many_output_windows(make_raster, tmp_path: Path, monkeypatch) -> None:
    # A tiny budget forces 256 px output windows, so chips straddle window edges.
    monkeypatch.setattr(mosaic_mod, "_WINDOW_BUDGET", 1)
    src = make_raster("big.tif", width=300, height=270, count=1, dtype="uint16", nodata=0,
                      nodata_box=(250, 270, 0, 30))
    chips = tmp_path / "chips"
    tile_rasters([src], chips, TileConfig(size=64, overlap=9, max_nodata=1.0))
    calls: list[tuple[float, float]] = []
    out = mosaic_chips([chips], tmp_path / "m.tif", MosaicConfig(),
                       progress=lambda d, t, **kw: calls.append((d, t)))
    _assert_same_raster(src, out)
    assert calls[-1] == (4, 4)  # 2 x 2 windows of 256 px
    with rasterio.open(out) as m:
        assert m.profile["tiled"] and m.compression.value == "ZSTD"
        assert m.block_shapes[0] == (256, 256)
        assert m.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == "2"


def _write_chip(path: Path, data: np.ndarray, transform, nodata=None, crs=PROJECTED) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype, crs=crs, transform=transform,
                       nodata=nodata) as dst:
        dst.write(data)
    return path


def test_overlaps_are_averaged_and_gaps_are_nodata(tmp_path: Path) -> None:
    t = from_origin(1000.0, 2000.0, 2.0, 2.0)
    a = np.full((1, 4, 4), 10, np.uint8)
    b = np.full((1, 4, 4), 21, np.uint8)
    b[0, 0, 1] = 0  # a nodata pixel in B where it overlaps A: A's value wins there
    c = np.full((1, 2, 2), 50, np.uint8)
    paths = [_write_chip(tmp_path / "a.tif", a, t, 0),
             _write_chip(tmp_path / "b.tif", b, t @ rasterio.Affine.translation(2, 0), 0),
             _write_chip(tmp_path / "c.tif", c, t @ rasterio.Affine.translation(0, 6), 0)]
    out = mosaic_chips(paths, tmp_path / "m.tif", MosaicConfig())
    with rasterio.open(out) as m:
        assert m.transform == t and (m.width, m.height) == (6, 8) and m.nodata == 0
        got = m.read(1)
    expected = np.zeros((8, 6), np.uint8)
    expected[:4, :2] = 10
    expected[:4, 2:4] = round((10 + 21) / 2)  # 15.5 rounds to even: 16
    expected[:4, 4:6] = 21
    expected[0, 3] = 10
    expected[6:8, 0:2] = 50
    np.testing.assert_array_equal(got, expected)


def test_feather_favours_the_nearer_chip_centre(tmp_path: Path) -> None:
    t = from_origin(0.0, 100.0, 1.0, 1.0)
    a = np.zeros((1, 8, 8), np.float32)
    b = np.full((1, 8, 8), 100.0, np.float32)
    paths = [_write_chip(tmp_path / "a.tif", a, t),
             _write_chip(tmp_path / "b.tif", b, t @ rasterio.Affine.translation(4, 0))]
    out = mosaic_chips(paths, tmp_path / "m.tif", MosaicConfig(blend="feather"))
    with rasterio.open(out) as m:
        row = m.read(1)[4]
    assert (row[:4] == 0).all() and (row[8:] == 100).all()
    overlap = row[4:8]
    assert (np.diff(overlap) > 0).all()  # rises from A's value towards B's
    assert 0 < overlap[0] < 50 < overlap[-1] < 100


def test_chips_without_nodata_mark_gaps_in_a_mask(tmp_path: Path) -> None:
    t = from_origin(0.0, 100.0, 1.0, 1.0)
    a = np.full((2, 4, 4), 7, np.uint16)
    paths = [_write_chip(tmp_path / "a.tif", a, t),
             _write_chip(tmp_path / "b.tif", a, t @ rasterio.Affine.translation(8, 0))]
    out = mosaic_chips(paths, tmp_path / "m.tif", MosaicConfig())
    with rasterio.open(out) as m:
        assert m.nodata is None
        mask = m.dataset_mask()
    assert (mask[:, :4] == 255).all() and (mask[:, 8:] == 255).all()
    assert (mask[:, 4:8] == 0).all()


def test_cog_output(make_raster, tmp_path: Path) -> None:
    src = make_raster("src.tif", width=700, height=600, count=3, nodata=0)
    chips = tmp_path / "chips"
    tile_rasters([src], chips, TileConfig(size=256, max_nodata=1.0))
    out = mosaic_chips([chips], tmp_path / "m.tif", MosaicConfig(cog=True))
    _assert_same_raster(src, out)
    with rasterio.open(out) as m:
        assert m.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert m.overviews(1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chips", "m.tif", "src.tif"]


def test_paired_chips_mosaic_back_per_side(make_raster, tmp_path: Path) -> None:
    a = make_raster("a.tif", width=40, height=40, count=3)
    b = make_raster("b.tif", width=40, height=40, count=1, dtype="float32", seed=4)
    chips = tmp_path / "pairs"
    tile_rasters([a], chips, TileConfig(size=16, overlap=4, pair=b))
    with pytest.raises(InputError, match=r"no \.tif chips; for paired chips pass"):
        mosaic_chips([chips], tmp_path / "m.tif", MosaicConfig())
    _assert_same_raster(a, mosaic_chips([chips / "A"], tmp_path / "ma.tif", MosaicConfig()))
    _assert_same_raster(b, mosaic_chips([chips / "B"], tmp_path / "mb.tif", MosaicConfig()))


@pytest.mark.parametrize("what", ["crs", "dtype", "grid", "count"])
def test_chips_that_do_not_fit_together(tmp_path: Path, what: str) -> None:
    t = from_origin(0.0, 100.0, 1.0, 1.0)
    data = np.ones((1, 4, 4), np.uint8)
    _write_chip(tmp_path / "a.tif", data, t)
    other = {"crs": dict(data=data, transform=t, crs=GEOGRAPHIC),
             "dtype": dict(data=data.astype(np.uint16), transform=t),
             "grid": dict(data=data, transform=t @ rasterio.Affine.translation(0.5, 0)),
             "count": dict(data=np.ones((2, 4, 4), np.uint8), transform=t)}[what]
    _write_chip(tmp_path / "b.tif", **other)
    with pytest.raises(InputError, match=r"chip .*b\.tif"):
        mosaic_chips([tmp_path], tmp_path / "out" / "m.tif", MosaicConfig())
    assert not (tmp_path / "out").exists()


def test_cancel_leaves_nothing(make_raster, tmp_path: Path) -> None:
    src = make_raster("src.tif", width=40, height=40, count=1)
    chips = tmp_path / "chips"
    tile_rasters([src], chips, TileConfig(size=16))
    with pytest.raises(Cancelled):
        mosaic_chips([chips], tmp_path / "m.tif", MosaicConfig(), cancel=lambda: True)
    assert not (tmp_path / "m.tif").exists() and not _leftovers(tmp_path)


def test_existing_output_needs_overwrite(make_raster, tmp_path: Path) -> None:
    src = make_raster("src.tif", width=40, height=40, count=1)
    chips = tmp_path / "chips"
    tile_rasters([src], chips, TileConfig(size=16))
    out = tmp_path / "m.tif"
    out.write_bytes(b"mine")
    with pytest.raises(OutputError, match="--overwrite"):
        mosaic_chips([chips], out, MosaicConfig())
    assert out.read_bytes() == b"mine"
    mosaic_chips([chips], out, MosaicConfig(overwrite=True))
    _assert_same_raster(src, out)


# ----------------------------------------------------------------- CLI


def _run(args: list[str]):
    return CliRunner().invoke(main, ["--progress", "none", *args])


def test_cli_mosaic_round_trip(make_raster, tmp_path: Path) -> None:
    src = make_raster("src.tif", width=45, height=33, count=2, dtype="uint16", nodata=0)
    chips = tmp_path / "chips"
    assert _run(["tile", str(src), "-o", str(chips), "--size", "16", "--overlap", "4",
                 "--max-nodata", "1"]).exit_code == 0
    result = _run(["mosaic", str(chips), "-o", str(tmp_path / "m.tif"), "--blend", "feather"])
    assert result.exit_code == 0, result.output
    _assert_same_raster(src, tmp_path / "m.tif")


def test_cli_mosaic_bad_inputs(make_raster, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run(["mosaic", str(empty), "-o", str(tmp_path / "m.tif")])
    assert result.exit_code != 0
    assert f"Error: {empty} holds no .tif chips" in result.stderr
    assert not (tmp_path / "m.tif").exists()

    bad = tmp_path / "bad"
    bad.mkdir()
    data = make_raster_array(16, 16, 1)
    _write_chip(bad / chip_name("x", 0, 0), data, from_origin(0, 16, 1, 1))
    (bad / chip_name("x", 16, 0)).write_bytes(b"II*\x00 truncated")
    result = _run(["mosaic", str(bad), "-o", str(tmp_path / "m.tif")])
    assert "x__c000016_r000000.tif is not a readable raster" in cli_error(result, alone=True)
    assert not (tmp_path / "m.tif").exists() and not _leftovers(tmp_path)
