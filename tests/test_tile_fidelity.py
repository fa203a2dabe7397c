"""``geogan tile`` writes the same chips and index however fast it writes them (#26).

Chips written from a template (:mod:`geogan.tiling.fastchips`) must be byte for byte
the chips GDAL writes one by one, for every kind of source (with or without nodata,
band meaning, tags, masks, pairs, padding, compression, PixelIsPoint); and what
they hold (pixels, georeference, tags, band meaning) and the index rows are checked
against the source itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from conftest import listing, make_raster_array, run_cli
from rasterio.enums import ColorInterp as CI
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

import geogan.tiling.fastchips as fastchips
from geogan.contract.names import INDEX_LAYER, INDEX_NAME, chip_name
from geogan.grid import chip_windows
from geogan.tiling import TileConfig, tile_rasters

#: Chips GDAL writes before the template is trusted (read before any test patches it).
PROBES = fastchips.PROBES


def _naip_like(make_raster: Any, name: str = "ortho.tif", width: int = 150,
               height: int = 100, **extra: Any) -> Path:
    """4-band uint8 with nodata 0, a nodata block, dataset and band tags, descriptions,
    scales/offsets and units: everything a chip header carries."""
    path = make_raster(name, width=width, height=height, count=4, nodata=0,
                       nodata_box=(0, 20, 0, 30), **extra)
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(SENSOR="naip", AREA_OR_POINT="Area")
        dst.update_tags(2, WAVELENGTH="560")
        dst.descriptions = ("red", "green", "blue", "nir")
        dst.scales = (1.0, 1.0, 0.5, 1.0)
        dst.offsets = (0.0, 0.0, 2.0, 0.0)
        dst.units = ("dn", "dn", "dn", "dn")
    return path


def _tile_both_ways(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, inputs: list[Path],
                    config: TileConfig) -> tuple[Path, Path, int, int]:
    """Tile ``inputs`` as geogan does and with every chip written by GDAL; return both
    folders and how many chips GDAL wrote in each run."""
    calls = {"n": 0}
    real = fastchips.write_chip

    def counting(*args: Any) -> None:
        calls["n"] += 1
        real(*args)

    monkeypatch.setattr(fastchips, "write_chip", counting)
    fast = tmp_path / "fast"
    tile_rasters(inputs, fast, config)
    by_template = calls["n"]
    calls["n"] = 0
    monkeypatch.setattr(fastchips, "PROBES", 10**9)  # never trusted: GDAL writes every chip
    slow = tmp_path / "gdal"
    tile_rasters(inputs, slow, config)
    return fast, slow, by_template, calls["n"]


def _same_chips(fast: Path, slow: Path) -> int:
    names = [n for n in listing(fast) if n.endswith(".tif")]
    assert names and names == [n for n in listing(slow) if n.endswith(".tif")]
    assert listing(fast) == listing(slow)  # no sidecar on either side
    for name in names:
        assert (fast / name).read_bytes() == (slow / name).read_bytes(), name
    return len(names)


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_template_chips_are_byte_identical_to_gdal_chips(make_raster, tmp_path: Path,
                                                         monkeypatch, threads: int) -> None:
    src = _naip_like(make_raster)
    config = TileConfig(size=32, overlap=5, max_nodata=1.0, threads=threads)
    fast, slow, gdal_fast, gdal_slow = _tile_both_ways(monkeypatch, tmp_path, [src], config)
    n = _same_chips(fast, slow)
    assert n == len(chip_windows(150, 100, 32, 5)) > PROBES
    assert gdal_fast == PROBES  # the rest came from the template
    assert gdal_slow == n


@pytest.mark.parametrize("case", ["uint16_rgb", "float_point", "alpha", "padded", "deflate",
                                  "pair", "no_crs", "co_tiled"])
def test_every_kind_of_source_gives_the_same_chips(make_raster, tmp_path: Path, monkeypatch,
                                                   case: str) -> None:
    extra: dict[str, Any] = {}
    if case == "uint16_rgb":
        src = make_raster("rgb.tif", width=90, height=70, count=3, dtype="uint16")
    elif case == "float_point":
        src = make_raster("pt.tif", width=90, height=70, count=2, dtype="float32",
                          nodata=-9999.0)
        with rasterio.open(src, "r+") as dst:
            dst.update_tags(AREA_OR_POINT="Point")
    elif case == "alpha":
        data = make_raster_array(90, 70, 4)
        data[3] = 255
        data[3, :10, :10] = 0
        src = make_raster("rgba.tif", data=data, photometric="RGB", alpha="YES")
    elif case == "padded":
        src = make_raster("tiny.tif", width=20, height=12, count=3, nodata=0)
    elif case == "deflate":
        src = _naip_like(make_raster, width=90, height=70)
        extra["compress"] = "deflate"
    elif case == "pair":
        src = _naip_like(make_raster, width=90, height=70)
        with rasterio.open(src) as a:
            at = a.transform
        b = make_raster("b.tif", data=make_raster_array(80, 60, 1, "float32", seed=3),
                        nodata=-9999.0, transform=at @ rasterio.Affine.translation(4, 3))
        extra["pair"] = b
    elif case == "no_crs":
        src = make_raster("nocrs.tif", width=90, height=70, count=3, crs=None)
        extra["allow_no_crs"] = True
    else:  # --co changing the layout: tiled chips are never templated
        src = _naip_like(make_raster, width=90, height=70)
        extra["creation_options"] = (("TILED", "YES"), ("BLOCKXSIZE", "16"),
                                     ("BLOCKYSIZE", "16"))
    config = TileConfig(size=32, max_nodata=1.0, **extra)
    fast, slow, gdal_fast, gdal_slow = _tile_both_ways(monkeypatch, tmp_path, [src], config)
    n = _same_chips(fast, slow)
    assert gdal_slow == n
    if case in ("uint16_rgb", "no_crs"):
        assert gdal_fast == PROBES
    elif case == "pair":  # A and B each probed
        assert gdal_fast == 2 * PROBES
    else:  # masks, padding, compression, PixelIsPoint, tiles: every chip through GDAL
        assert gdal_fast == n


def test_cli_chips_hold_their_window_and_the_source_meaning(make_raster, tmp_path: Path) -> None:
    src = _naip_like(make_raster)
    out = tmp_path / "chips"
    result = run_cli("tile", src, "-o", out, "--size", "32", "--overlap", "5",
                     "--max-nodata", "0.5")
    assert result.exit_code == 0, result.output
    import geopandas as gpd

    index = gpd.read_file(out / INDEX_NAME, layer=INDEX_LAYER)
    with rasterio.open(src) as s:
        windows = chip_windows(s.width, s.height, 32, 5)
        kept = []
        for win in windows:
            data = s.read(window=Window(*win))
            frac = 1.0 - np.count_nonzero((data != 0).any(axis=0)) / (32 * 32)
            if frac <= 0.5:
                kept.append((win, data, frac))
        assert 0 < len(kept) < len(windows)  # the nodata block drops some
        assert f"Wrote {len(kept)} chips to {out}" in result.output
        assert sorted(index["chip"]) == sorted(chip_name("ortho", w.col_off, w.row_off)
                                               for w, _, _ in kept)
        rows = index.set_index("chip")
        for win, data, frac in kept:
            name = chip_name("ortho", win.col_off, win.row_off)
            t = window_transform(Window(*win), s.transform)
            with rasterio.open(out / name) as c:
                assert np.array_equal(c.read(), data)
                assert c.transform == t and c.crs == s.crs and c.nodata == 0
                assert c.dtypes == s.dtypes and c.profile.get("compress") is None
                assert c.tags() == {"SENSOR": "naip", "AREA_OR_POINT": "Area"}
                assert c.tags(2) == {"WAVELENGTH": "560"}
                assert c.descriptions == s.descriptions and c.units == s.units
                assert c.scales == s.scales and c.offsets == s.offsets
                assert c.colorinterp == (CI.gray, CI.undefined, CI.undefined, CI.undefined)
                left, bottom, right, top = c.bounds
            row = rows.loc[name]
            assert (row.col_off, row.row_off, row.width, row.height) == (win.col_off,
                                                                         win.row_off, 32, 32)
            assert row.source == str(src) and row.nodata_frac == pytest.approx(frac)
            assert row.geometry.bounds == (left, bottom, right, top)
        assert index.crs == s.crs


def test_template_write_failure_is_one_line_and_leaves_nothing(make_raster, tmp_path: Path,
                                                               monkeypatch) -> None:
    src = _naip_like(make_raster)
    real = fastchips.ChipTemplate.write_fast

    def failing(self: Any, path: Path, data: np.ndarray, transform: Any) -> None:
        if self.fast >= 3:
            raise fastchips.write_error(path, OSError(28, "No space left on device"))
        real(self, path, data, transform)

    monkeypatch.setattr(fastchips.ChipTemplate, "write_fast", failing)
    out = tmp_path / "chips"
    result = run_cli("tile", src, "-o", out, "--size", "32")
    assert result.exit_code != 0
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"Error: no space left on device writing {out}/"), result.stderr
    assert "Traceback" not in result.output
    assert listing(tmp_path) == ["ortho.tif"]
