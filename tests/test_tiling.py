"""geogan.tiling: chips carry their window's georeference; filters, AOI, warps and pairs."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import GEOGRAPHIC, PROJECTED, make_raster_array
from rasterio.transform import from_origin
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from geogan.contract.names import (
    INDEX_LAYER,
    INDEX_NAME,
    VALID_WINDOW_TAG,
    chip_name,
    parse_chip_name,
)
from geogan.errors import Cancelled, InputError, OutputError
from geogan.grid import chip_count, chip_windows
from geogan.tiling import TileConfig, tile_rasters


def _chips(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.tif"))


def _index(outdir: Path, layer: str = INDEX_LAYER):
    import geopandas as gpd

    return gpd.read_file(outdir / INDEX_NAME, layer=layer)


def _leftovers(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith(".")]


def test_chip_names_round_trip() -> None:
    name = chip_name("naip_2009", 512, 256)
    assert name == "naip_2009__c000512_r000256.tif"
    assert parse_chip_name(name) == ("naip_2009", 512, 256)
    assert parse_chip_name(chip_name("a__b", 1234567, 0)) == ("a__b", 1234567, 0)
    with pytest.raises(ValueError):
        parse_chip_name("naip_2009.tif")


@pytest.mark.parametrize("crs", [PROJECTED, GEOGRAPHIC])
def test_chips_carry_window_georeference_and_index_matches(make_raster, tmp_path: Path,
                                                           crs: str) -> None:
    src_path = make_raster("ortho.tif", width=67, height=45, count=3, dtype="uint16", crs=crs,
                           nodata=0)
    out = tmp_path / "chips"
    result = tile_rasters([src_path], out, TileConfig(size=16, overlap=3, max_nodata=1.0))

    with rasterio.open(src_path) as src:
        source = src.read()
        expected = chip_windows(src.width, src.height, 16, 3)
        assert result.chips == len(expected) == chip_count(67, 16, 3) * chip_count(45, 16, 3)
        index = _index(out)
        assert len(index) == result.chips
        assert rasterio.crs.CRS.from_wkt(index.crs.to_wkt()) == src.crs
        seen = set()
        for row in index.itertuples():
            stem, col, r = parse_chip_name(row.chip)
            assert (stem, col, r) == ("ortho", row.col_off, row.row_off)
            assert row.source == str(src_path)
            seen.add((col, r))
            with rasterio.open(out / row.chip) as chip:
                assert chip.crs == src.crs
                assert chip.transform == window_transform(Window(col, r, 16, 16), src.transform)
                assert (chip.width, chip.height, chip.count) == (16, 16, 3)
                assert chip.dtypes[0] == "uint16" and chip.nodata == 0
                np.testing.assert_array_equal(chip.read(), source[:, r:r + 16, col:col + 16])
                np.testing.assert_allclose(row.geometry.bounds, tuple(chip.bounds), rtol=0,
                                           atol=1e-9 * abs(src.transform.a))
                assert row.geometry.area == pytest.approx(abs(chip.transform.a * 16) ** 2)
        assert seen == {(w.col_off, w.row_off) for w in expected}


def test_edge_chips_shift_inward_so_no_pixel_is_dropped(make_raster, tmp_path: Path) -> None:
    src_path = make_raster("odd.tif", width=37, height=21, count=1)
    out = tmp_path / "chips"
    tile_rasters([src_path], out, TileConfig(size=16))
    covered = np.zeros((21, 37), dtype=int)
    for chip in _chips(out):
        _, col, row = parse_chip_name(chip.name)
        assert col + 16 <= 37 and row + 16 <= 21  # inside the raster, never padded
        covered[row:row + 16, col:col + 16] += 1
    assert (covered >= 1).all()


def test_max_nodata_skips_exactly_the_chips_over_the_limit(make_raster, tmp_path: Path) -> None:
    src_path = make_raster("holes.tif", width=64, height=48, count=2, nodata=0,
                           nodata_box=(0, 21, 0, 30))
    out = tmp_path / "chips"
    result = tile_rasters([src_path], out, TileConfig(size=16, max_nodata=0.3, threads=0))
    with rasterio.open(src_path) as src:
        nodata_px = (src.read() == 0).all(axis=0)
    fractions = {chip_name("holes", w.col_off, w.row_off):
                 nodata_px[w.row_off:w.row_end, w.col_off:w.col_end].mean()
                 for w in chip_windows(64, 48, 16)}
    kept = {n for n, f in fractions.items() if f <= 0.3}
    assert 0 < len(kept) < len(fractions)
    assert {p.name for p in _chips(out)} == kept
    assert result.skipped_nodata == len(fractions) - len(kept)
    index = _index(out)
    for row in index.itertuples():
        assert row.nodata_frac == pytest.approx(fractions[row.chip])


def test_min_std_skips_near_constant_chips(make_raster, tmp_path: Path) -> None:
    data = make_raster_array(48, 32, 3, "uint8")
    data[:, :16, 16:32] = 90  # one flat chip
    data[0, 16:, :16] = 5  # constant in one band only: still has texture, kept
    src_path = make_raster("flat.tif", data=data)
    out = tmp_path / "chips"
    result = tile_rasters([src_path], out, TileConfig(size=16, min_std=1.0))
    names = {p.name for p in _chips(out)}
    assert chip_name("flat", 16, 0) not in names
    assert chip_name("flat", 0, 16) in names
    assert result.skipped_std == 1 and result.chips == 5


def test_bands_are_selected_in_order(make_raster, tmp_path: Path) -> None:
    src_path = make_raster("four.tif", width=32, height=32, count=4)
    out = tmp_path / "chips"
    tile_rasters([src_path], out, TileConfig(size=16, bands=(3, 1)))
    with rasterio.open(src_path) as src:
        source = src.read()
    assert len(_chips(out)) == 4
    for chip_path in _chips(out):
        _, col, row = parse_chip_name(chip_path.name)
        with rasterio.open(chip_path) as chip:
            np.testing.assert_array_equal(chip.read(),
                                          source[[2, 0], row:row + 16, col:col + 16])


def test_bands_out_of_range_is_an_input_error(make_raster, tmp_path: Path) -> None:
    src_path = make_raster("three.tif", count=3)
    with pytest.raises(InputError, match=r"--bands 1,4 .*three.tif.*3 band"):
        tile_rasters([src_path], tmp_path / "out", TileConfig(size=16, bands=(1, 4)))
    assert not (tmp_path / "out").exists()


def test_aoi_in_another_crs_keeps_intersecting_chips(make_raster, tmp_path: Path) -> None:
    import geopandas as gpd
    import shapely
    from rasterio.warp import transform_geom

    src_path = make_raster("field.tif", width=67, height=45, crs=PROJECTED)
    with rasterio.open(src_path) as src:
        t = src.transform
    # A pixel rectangle (cols 5..20, rows 5..12), far from chip edges, given in degrees.
    (x0, y0), (x1, y1) = t @ (5, 5), t @ (20, 12)
    box = shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    geo = shapely.geometry.shape(transform_geom(PROJECTED, GEOGRAPHIC, box.__geo_interface__))
    aoi = tmp_path / "aoi.geojson"
    gpd.GeoDataFrame(geometry=[geo], crs=GEOGRAPHIC).to_file(aoi)

    out = tmp_path / "chips"
    result = tile_rasters([src_path], out, TileConfig(size=16, aoi=aoi))
    windows = chip_windows(67, 45, 16)
    expected = {chip_name("field", w.col_off, w.row_off) for w in windows
                if w.col_off < 20 and w.col_end > 5 and w.row_off < 12 and w.row_end > 5}
    assert {p.name for p in _chips(out)} == expected
    assert result.skipped_aoi == len(windows) - len(expected)


def test_aoi_that_misses_the_raster_is_an_input_error(make_raster, tmp_path: Path) -> None:
    import geopandas as gpd
    import shapely

    src_path = make_raster("field.tif", crs=PROJECTED)
    aoi = tmp_path / "far.gpkg"
    gpd.GeoDataFrame(geometry=[shapely.box(10, 10, 11, 11)], crs=GEOGRAPHIC).to_file(aoi)
    with pytest.raises(InputError, match="does not intersect"):
        tile_rasters([src_path], tmp_path / "out", TileConfig(size=16, aoi=aoi))
    assert not (tmp_path / "out").exists()


def test_warp_to_crs_gives_chips_in_that_crs(make_raster, tmp_path: Path) -> None:
    src_path = make_raster("utm.tif", width=67, height=45, crs=PROJECTED, nodata=0)
    out = tmp_path / "chips"
    tile_rasters([src_path], out, TileConfig(size=16, crs=GEOGRAPHIC, resampling="nearest",
                                             max_nodata=1.0))
    with rasterio.open(src_path) as src:
        values = set(np.unique(src.read()))
    index = _index(out)
    assert rasterio.crs.CRS.from_wkt(index.crs.to_wkt()) == rasterio.crs.CRS.from_user_input(
        GEOGRAPHIC)
    first = None
    assert len(_chips(out)) > 1  # one grid for several chips
    for chip_path in _chips(out):
        _, col, row = parse_chip_name(chip_path.name)
        with rasterio.open(chip_path) as chip:
            assert chip.crs == GEOGRAPHIC
            t = chip.transform
            if first is None:
                first = t @ rasterio.Affine.translation(-col, -row)
            # All chips sit on one grid: origin + offset * pixel size.
            assert t.a == pytest.approx(first.a) and t.e == pytest.approx(first.e)
            assert t.c == pytest.approx(first.c + col * first.a, abs=1e-9 * abs(first.a))
            assert t.f == pytest.approx(first.f + row * first.e, abs=1e-9 * abs(first.a))
            assert set(np.unique(chip.read())) <= values | {0}  # nearest keeps values


def test_res_aligns_the_grid_to_multiples_of_res(make_raster, tmp_path: Path) -> None:
    src_path = make_raster("utm.tif", width=67, height=45, crs=PROJECTED,
                           transform=from_origin(485903.0, 5209247.0, 5.0, 5.0), nodata=0)
    out = tmp_path / "chips"
    tile_rasters([src_path], out, TileConfig(size=8, res=10.0, max_nodata=1.0))
    assert len(_chips(out)) == 15  # 5 x 3 chips of 8 px cover the 35 x 24 px grid at 10 m
    for chip_path in _chips(out):
        with rasterio.open(chip_path) as chip:
            assert chip.crs == PROJECTED
            assert (chip.transform.a, chip.transform.e) == (10.0, -10.0)
            assert chip.transform.c % 10 == 0 and chip.transform.f % 10 == 0


@pytest.mark.parametrize("ref_crs", [PROJECTED, GEOGRAPHIC])
def test_align_to_puts_chips_on_the_reference_grid(make_raster, tmp_path: Path,
                                                   ref_crs: str) -> None:
    src_path = make_raster("utm.tif", width=67, height=45, crs=PROJECTED, nodata=0)
    if ref_crs == PROJECTED:  # inside the raster: the grid is the reference's extent
        ref_t = from_origin(485950.5, 5209200.5, 7.0, 7.0)
    else:
        ref_t = from_origin(-99.1855, 47.0362, 0.0001, 0.0001)
    ref = make_raster("ref.tif", width=20, height=15, count=1, crs=ref_crs, transform=ref_t)
    out = tmp_path / "chips"
    tile_rasters([src_path], out, TileConfig(size=16, align_to=ref, max_nodata=1.0))
    assert _chips(out)
    for chip_path in _chips(out):
        with rasterio.open(chip_path) as chip:
            t = chip.transform
            assert chip.crs == ref_crs
            assert t.a == pytest.approx(ref_t.a) and t.e == pytest.approx(ref_t.e)
            dc, dr = (t.c - ref_t.c) / ref_t.a, (t.f - ref_t.f) / ref_t.e
            assert abs(dc - round(dc)) < 1e-6 and abs(dr - round(dr)) < 1e-6


def test_pair_on_the_same_grid_is_read_without_resampling(make_raster, tmp_path: Path) -> None:
    a_path = make_raster("a.tif", width=67, height=45, count=3, crs=PROJECTED)
    with rasterio.open(a_path) as a:
        at = a.transform
    b_data = make_raster_array(50, 35, 1, "float32", seed=3)
    b_path = make_raster("b.tif", data=b_data, crs=PROJECTED, nodata=-9999.0,
                         transform=at @ rasterio.Affine.translation(10, 5))
    out = tmp_path / "pairs"
    result = tile_rasters([a_path], out, TileConfig(size=16, pair=b_path))
    a_names = {p.name for p in _chips(out / "A")}
    assert result.paired and a_names == {p.name for p in _chips(out / "B")}
    assert len(a_names) == result.chips > 0
    with rasterio.open(a_path) as a:
        a_data = a.read()
    for name in a_names:
        _, col, row = parse_chip_name(name)
        # Inside the overlap of A and B: cols 10..60, rows 5..40 of A.
        assert 10 <= col and col + 16 <= 60 and 5 <= row and row + 16 <= 40
        with rasterio.open(out / "A" / name) as ca, rasterio.open(out / "B" / name) as cb:
            assert ca.transform == cb.transform and ca.crs == cb.crs
            np.testing.assert_array_equal(ca.read(), a_data[:, row:row + 16, col:col + 16])
            assert cb.dtypes[0] == "float32" and cb.nodata == -9999.0 and cb.count == 1
            np.testing.assert_array_equal(
                cb.read(), b_data[:, row - 5:row - 5 + 16, col - 10:col - 10 + 16])
    index = _index(out)
    assert set(index.chip) == a_names and set(index.source_b) == {str(b_path)}


def test_pair_in_another_crs_is_resampled_onto_a(make_raster, tmp_path: Path) -> None:
    from rasterio.warp import transform_bounds

    a_path = make_raster("a.tif", width=67, height=45, crs=PROJECTED)
    with rasterio.open(a_path) as a:
        left, bottom, right, top = transform_bounds(PROJECTED, GEOGRAPHIC, *a.bounds)
    # B in degrees, a little larger than A on every side.
    b_t = from_origin(left - 0.001, top + 0.001, 0.00005, 0.00005)
    bw = math.ceil((right - left + 0.002) / 0.00005)
    bh = math.ceil((top - bottom + 0.002) / 0.00005)
    b_path = make_raster("b.tif", width=bw, height=bh, count=2, crs=GEOGRAPHIC, transform=b_t,
                         nodata=0)
    out = tmp_path / "pairs"
    tile_rasters([a_path], out, TileConfig(size=16, pair=b_path, resampling="nearest"))
    with rasterio.open(b_path) as b:
        b_values = set(np.unique(b.read()))
    names = {p.name for p in _chips(out / "A")}
    assert names == {p.name for p in _chips(out / "B")}
    assert len(names) == chip_count(67, 16) * chip_count(45, 16)  # B covers all of A
    for name in names:
        with rasterio.open(out / "A" / name) as ca, rasterio.open(out / "B" / name) as cb:
            assert cb.crs == PROJECTED and cb.transform == ca.transform
            assert set(np.unique(cb.read())) <= b_values


def test_pair_that_does_not_overlap_is_an_input_error(make_raster, tmp_path: Path) -> None:
    a_path = make_raster("a.tif", crs=PROJECTED)
    b_path = make_raster("b.tif", crs=PROJECTED, transform=from_origin(0.0, 0.0, 5.0, 5.0))
    with pytest.raises(InputError, match="does not overlap"):
        tile_rasters([a_path], tmp_path / "out", TileConfig(size=16, pair=b_path))


def test_raster_smaller_than_a_chip_is_padded_with_nodata(make_raster, tmp_path: Path) -> None:
    src_path = make_raster("tiny.tif", width=10, height=7, count=2, nodata=0)
    out = tmp_path / "chips"
    result = tile_rasters([src_path], out, TileConfig(size=16, max_nodata=1.0))
    assert result.chips == 1
    with rasterio.open(src_path) as src, rasterio.open(out / chip_name("tiny", 0, 0)) as chip:
        data = chip.read()
        assert chip.transform == src.transform and (chip.width, chip.height) == (16, 16)
        np.testing.assert_array_equal(data[:, :7, :10], src.read())
        assert (data[:, 7:, :] == 0).all() and (data[:, :, 10:] == 0).all()
        assert chip.tags()[VALID_WINDOW_TAG] == "0 0 10 7"


def test_padded_chips_count_as_nodata(make_raster, tmp_path: Path) -> None:
    src_path = make_raster("tiny.tif", width=10, height=7, count=2, nodata=0)
    with pytest.raises(InputError, match="padded with nodata"):
        tile_rasters([src_path], tmp_path / "out", TileConfig(size=16))
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path)


def test_small_raster_without_nodata_is_an_input_error(make_raster, tmp_path: Path) -> None:
    src_path = make_raster("tiny.tif", width=10, height=40, count=1)
    with pytest.raises(InputError, match=r"tiny.tif.*smaller than one 16 px chip"):
        tile_rasters([src_path], tmp_path / "out", TileConfig(size=16))


def test_progress_reaches_total_and_cancel_leaves_nothing(make_raster, tmp_path: Path) -> None:
    src_path = make_raster("p.tif", width=64, height=64, count=1)
    calls: list[tuple[float, float]] = []
    result = tile_rasters([src_path], tmp_path / "ok", TileConfig(size=8),
                          progress=lambda d, t, **kw: calls.append((d, t)))
    assert calls[-1] == (result.candidates, result.candidates) == (64, 64)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)

    asked = []

    def cancel() -> bool:
        asked.append(1)
        return len(asked) > 2

    with pytest.raises(Cancelled):
        tile_rasters([src_path], tmp_path / "cancelled", TileConfig(size=8), cancel=cancel)
    assert not (tmp_path / "cancelled").exists() and not _leftovers(tmp_path)


def test_existing_output_needs_overwrite(make_raster, tmp_path: Path) -> None:
    src_path = make_raster("r.tif", width=32, height=32)
    out = tmp_path / "chips"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="--overwrite"):
        tile_rasters([src_path], out, TileConfig(size=16))
    assert (out / "keep.txt").read_text() == "mine"
    # a folder geogan did not make is never replaced, even with --overwrite
    with pytest.raises(OutputError, match="not a geogan chip folder .*keep.txt"):
        tile_rasters([src_path], out, TileConfig(size=16, overwrite=True))
    assert (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    tile_rasters([src_path], out, TileConfig(size=32))
    assert len(_chips(out)) == 1
    tile_rasters([src_path], out, TileConfig(size=16, overwrite=True))  # geogan's: replaced
    assert len(_chips(out)) == 4
    assert not _leftovers(tmp_path)


def test_input_inside_the_output_folder_is_refused(make_raster, tmp_path: Path) -> None:
    src_path = make_raster("chips/r.tif", width=32, height=32)
    with pytest.raises(InputError, match="inside the output folder"):
        tile_rasters([src_path], src_path.parent, TileConfig(size=16, overwrite=True))
    assert src_path.exists()


def test_inputs_with_the_same_name_are_refused(make_raster, tmp_path: Path) -> None:
    a = make_raster("x/r.tif", width=32, height=32)
    b = make_raster("y/r.tif", width=32, height=32)
    with pytest.raises(InputError, match="same name"):
        tile_rasters([a, b], tmp_path / "out", TileConfig(size=16))


def test_several_inputs_and_crss(make_raster, tmp_path: Path) -> None:
    import pyogrio

    a = make_raster("a.tif", width=32, height=32, crs=PROJECTED)
    b = make_raster("b.tif", width=32, height=16, crs=GEOGRAPHIC, dtype="float32")
    out = tmp_path / "chips"
    result = tile_rasters([a, b], out, TileConfig(size=16, compress="zstd"))
    assert result.chips == 4 + 2
    layers = [name for name, _ in pyogrio.list_layers(out / INDEX_NAME)]
    assert layers == [INDEX_LAYER, f"{INDEX_LAYER}_2"]
    first, second = _index(out), _index(out, f"{INDEX_LAYER}_2")
    assert set(first.source) == {str(a)} and set(second.source) == {str(b)}
    assert second.crs.to_epsg() == 4326
    with rasterio.open(out / chip_name("b", 16, 0)) as chip:
        assert chip.compression is not None and chip.compression.value == "ZSTD"
        assert chip.dtypes[0] == "float32"


@pytest.mark.parametrize("kwargs,match", [
    ({"overlap": 16}, "--overlap"),
    ({"max_nodata": 1.5}, "--max-nodata"),
    ({"align_to": Path("r.tif"), "crs": "EPSG:4326"}, "--align-to"),
    ({"bands": (0,)}, "--bands"),
    ({"resampling": "magic"}, "resampling"),
])
def test_bad_config_is_an_input_error(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        TileConfig(size=16, **kwargs)


def test_geometry_modules_import_without_geopandas() -> None:
    code = ("import sys, geogan.grid, geogan.rasterio_io, geogan.tiling, geogan.mosaic; "
            "sys.exit('geopandas' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
