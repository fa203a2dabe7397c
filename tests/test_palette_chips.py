"""Chips of palette (colour-table) rasters keep their colour indices, colour table and
category names, and training from them finds the raster's classes (issue #25)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import run_cli
from rasterio.enums import ColorInterp
from test_colortable import NAMES, NODATA, TABLE, _classes, _paletted

from geogan.colortable import NAMES_TAG, category_names, table_palette
from geogan.palette import Palette

TRAIN = ("--model", "pix2pix", "--crop", "32", "--ngf", "4", "--ndf", "4", "--generator",
         "resnet_6blocks", "--max-steps", "1", "--device", "cpu", "--workers", "0")


def _b_palette(run: Path) -> Palette:
    from geogan.contract.checkpoint import read_checkpoint_meta

    meta = read_checkpoint_meta(next(run.glob("*.safetensors")))
    assert meta.domains["b"].bands == 3 and meta.domains["a"].palette is None
    return Palette.from_json(meta.domains["b"].palette)


def _check_chip(chip: Path, source: Path) -> np.ndarray:
    """``chip`` is one band of colour indices with ``source``'s colour table and names."""
    with rasterio.open(source) as src:
        table, nodata = src.colormap(1), src.nodata
    with rasterio.open(chip) as ds:
        assert ds.count == 1 and ds.dtypes == ("uint8",)
        assert ds.colorinterp == (ColorInterp.palette,)
        assert ds.colormap(1) == table and ds.nodata == nodata
        assert ds.tags(1)[NAMES_TAG]
        data = ds.read(1)
    assert not Path(f"{chip}.aux.xml").exists()  # the names are in the chip itself
    return data


def test_tiled_palette_chips_train_to_the_rasters_palette(tmp_path: Path, make_raster) -> None:
    aerial = make_raster("aerial.tif", width=64, height=64)
    mapped = _paletted(tmp_path / "map.tif", like=aerial)
    chips = tmp_path / "chips"
    result = run_cli("tile", aerial, "--pair", mapped, "-o", chips, "--size", "32",
                     "--max-nodata", "1")
    assert result.exit_code == 0, result.output
    b_chips = sorted((chips / "B").glob("*.tif"))
    assert len(b_chips) == 4
    classes = _classes()
    for chip in b_chips:
        data = _check_chip(chip, mapped)
        col, row = (int(part[1:]) for part in chip.stem.split("__")[1].split("_"))
        assert np.array_equal(data, classes[row:row + 32, col:col + 32])  # indices as they are

    from_raster, from_chips = tmp_path / "raster_run", tmp_path / "chips_run"
    result = run_cli("train", *TRAIN, "--a", aerial, "--b", mapped, "--output", from_raster)
    assert result.exit_code == 0, result.output
    result = run_cli("train", *TRAIN, "--a", chips / "A", "--b", chips / "B", "--output",
                     from_chips)
    assert result.exit_code == 0, result.output
    expected = _b_palette(from_raster)
    assert expected.names == NAMES and expected.indices == (0, 1, 2, 3)
    assert _b_palette(from_chips) == expected


def test_training_reads_palette_chips_as_their_colours(tmp_path: Path) -> None:
    from geogan.datasets.images import inspect_image, read_image, read_valid_pixels

    mapped = _paletted(tmp_path / "map.tif")
    chips = tmp_path / "chips"
    result = run_cli("tile", mapped, "-o", chips, "--size", "32", "--max-nodata", "1")
    assert result.exit_code == 0, result.output
    chip = chips / "map__c000000_r000000.tif"
    indices = _check_chip(chip, mapped)
    info, _ = inspect_image(chip)
    assert (info.bands, info.dtype, info.nodata) == (3, "uint8", None)
    colours = read_image(chip)
    lut = np.zeros((256, 3), np.uint8)
    for i, c in TABLE.items():
        lut[i] = 0 if i == NODATA else c
    assert np.array_equal(colours, lut[indices].transpose(2, 0, 1))
    assert (indices == NODATA).any()
    assert np.array_equal(read_valid_pixels(chip), indices != NODATA)
    palette = table_palette(sorted(chips.glob("*.tif")))
    assert palette == table_palette([mapped]) and palette.names == NAMES
    assert category_names(mapped) == NAMES


@pytest.mark.parametrize("nodata", [NODATA, None])
def test_warped_palette_chips_keep_classes_and_mark_the_outside(tmp_path: Path,
                                                                nodata: int | None) -> None:
    """Warped by nearest neighbour, a palette raster's chips hold only its indices; without a
    nodata value (a GeoTIFF's colour table is full: no free index), a mask marks the outside,
    not class 0."""
    mapped = _paletted(tmp_path / "map.tif")
    with rasterio.open(mapped, "r+") as ds:
        ds.nodata = nodata
    chips = tmp_path / "chips"
    result = run_cli("tile", mapped, "-o", chips, "--size", "32", "--crs", "EPSG:3035",
                     "--max-nodata", "1")
    assert result.exit_code == 0, result.output
    seen: set[int] = set()
    outside = 0
    for chip in sorted(chips.glob("*.tif")):
        with rasterio.open(chip) as ds:
            assert ds.colorinterp == (ColorInterp.palette,) and ds.count == 1
            data, chip_nodata, valid = ds.read(1), ds.nodata, ds.read_masks(1) != 0
        assert chip_nodata == nodata  # no nodata: a full colour table has no free index,
        outside += int((~valid).sum())  # so a mask marks the outside
        seen |= set(np.unique(data[valid]).tolist())
    assert outside > 0  # a rotated footprint (LAEA Europe, 15 E) leaves pixels outside
    assert seen <= set(TABLE) - {nodata}, seen


def _with_alpha(path: Path, alpha: np.ndarray) -> Path:
    """A two-band palette GeoTIFF: colour indices (:func:`_classes`) and an alpha band."""
    from rasterio.transform import from_origin

    classes = _classes()
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=2, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(500000, 4000000, 1, 1),
                       nodata=NODATA) as dst:
        dst.write(classes, 1)
        dst.write(alpha, 2)
        dst.write_colormap(1, {i: (*c, 255) for i, c in TABLE.items()})
        dst.colorinterp = [ColorInterp.palette, ColorInterp.alpha]
    return path


def test_a_palette_rasters_alpha_band_is_part_of_its_mask(tmp_path: Path) -> None:
    """Index + alpha: pixels of alpha 0 are invalid in the expanded raster (as nodata-index
    pixels are), partly transparent ones valid, and tiling keeps both in the chips' masks."""
    import contextlib

    from geogan.colortable import open_expanded
    from geogan.datasets.images import read_valid_pixels

    alpha = np.full((64, 64), 255, np.uint8)
    alpha[40:, :] = 0
    alpha[:, 40:48] = 128  # partly transparent: valid, as GDAL's alpha mask says
    path = _with_alpha(tmp_path / "map.tif", alpha)
    classes = _classes()
    expected = (classes != NODATA) & (alpha != 0)
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(rasterio.open(path))
        ds = open_expanded(src, 1, path, stack)
        assert ds.count == 3
        assert np.array_equal(ds.read_masks(1) != 0, expected)
        window = rasterio.windows.Window(8, 24, 32, 32)  # a block, as translate reads one
        assert np.array_equal(ds.read_masks(2, window=window) != 0, expected[24:56, 8:40])

    chips = tmp_path / "chips"
    result = run_cli("tile", path, "-o", chips, "--size", "32", "--max-nodata", "1")
    assert result.exit_code == 0, result.output
    chip = chips / "map__c000000_r000032.tif"
    indices = _check_chip_table(chip, path)
    assert np.array_equal(read_valid_pixels(chip), expected[32:, :32])
    assert np.array_equal(indices, classes[32:, :32])
    palette = table_palette(sorted(chips.glob("*.tif")))
    assert palette == table_palette([path]) and palette.indices == (0, 1, 2, 3)


def test_translate_masks_a_palette_rasters_transparent_pixels(tmp_path: Path,
                                                             tiny_checkpoint) -> None:
    alpha = np.full((64, 64), 255, np.uint8)
    alpha[:, 50:] = 0
    path = _with_alpha(tmp_path / "map.tif", alpha)
    out = tmp_path / "out.tif"
    result = run_cli("translate", tiny_checkpoint, path, "-o", out, "--tile", "32",
                     "--overlap", "8")
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as ds:
        assert ds.count == 3
        np.testing.assert_array_equal(ds.dataset_mask() != 0,
                                      (_classes() != NODATA) & (alpha != 0))


def _check_chip_table(chip: Path, source: Path) -> np.ndarray:
    with rasterio.open(source) as src:
        table = src.colormap(1)
    with rasterio.open(chip) as ds:
        assert ds.count == 1 and ds.colorinterp == (ColorInterp.palette,)
        assert ds.colormap(1) == table
        return ds.read(1)
