"""Palette (colour-table) rasters read as the RGB of their colour table (issue #25)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import cli_error, run_cli
from rasterio.enums import ColorInterp

from geogan.colortable import ORIGIN, category_names, open_expanded, table_palette
from geogan.palette import Palette

#: index -> colour; index 5 is unused, 9 is the nodata index.
TABLE = {0: (240, 230, 200), 1: (30, 120, 40), 2: (40, 90, 200), 3: (200, 60, 50),
         5: (1, 2, 3), 9: (9, 9, 9)}
NAMES = ("sand", "forest", "water & lakes", "roofs")
NODATA = 9


def _classes(h: int = 64, w: int = 64, seed: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 4, (h // 8, w // 8)).repeat(8, axis=0).repeat(8, axis=1)
    classes[:2, :3] = NODATA
    return classes.astype(np.uint8)


def _paletted(path: Path, like: Path | None = None, names: tuple[str, ...] | None = NAMES,
              classes: np.ndarray | None = None) -> Path:
    """A one-band palette GeoTIFF of ``classes`` (on ``like``'s grid) with a PAM sidecar
    naming its categories."""
    from rasterio.transform import from_origin

    classes = _classes() if classes is None else classes
    crs, transform = "EPSG:32633", from_origin(500000, 4000000, 1, 1)
    if like is not None:
        with rasterio.open(like) as ref:
            crs, transform = ref.crs, ref.transform
    h, w = classes.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8",
                       crs=crs, transform=transform, photometric="PALETTE",
                       nodata=NODATA) as dst:
        dst.write(classes, 1)
        dst.write_colormap(1, {i: (*c, 255) for i, c in TABLE.items()})
    if names is not None:
        cats = "".join(f"<Category>{n.replace('&', '&amp;')}</Category>" for n in names)
        Path(str(path) + ".aux.xml").write_text(
            f"<PAMDataset><PAMRasterBand band=\"1\"><CategoryNames>{cats}</CategoryNames>"
            "</PAMRasterBand></PAMDataset>\n", encoding="utf-8")
    return path


def _lookup(classes: np.ndarray) -> np.ndarray:
    lut = np.zeros((256, 3), np.uint8)
    for i, c in TABLE.items():
        lut[i] = c
    lut[NODATA] = 0  # gdal_translate -expand rgb leaves nodata pixels 0
    return lut[classes].transpose(2, 0, 1)


def test_expansion_equals_gdal_translate_expand_rgb(tmp_path: Path) -> None:
    classes = _classes()
    src_path = _paletted(tmp_path / "map.tif")
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(rasterio.open(src_path))
        ds = open_expanded(src, 1, src_path, stack)
        assert ds.count == 3 and ds.dtypes == ("uint8",) * 3
        assert ds.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        assert ds.crs == src.crs and ds.transform == src.transform
        got, mask = ds.read(), ds.read_masks(1)
    if shutil.which("gdal_translate"):
        ref_path = tmp_path / "expanded.tif"
        subprocess.run(["gdal_translate", "-q", "-expand", "rgb", str(src_path),
                        str(ref_path)], check=True)
        with rasterio.open(ref_path) as ref:
            expected = ref.read()
    else:
        expected = _lookup(classes)
    assert np.array_equal(got, expected)
    assert np.array_equal(got, _lookup(classes))
    assert np.array_equal(mask != 0, classes != NODATA)


def test_table_palette_is_the_used_entries_in_index_order_with_names(tmp_path: Path) -> None:
    path = _paletted(tmp_path / "map.tif")
    assert category_names(path) == NAMES
    palette = table_palette([path])
    assert palette is not None
    assert palette.colours == tuple(TABLE[i] for i in range(4))  # 5 unused, 9 nodata
    assert palette.names == NAMES and palette.indices == (0, 1, 2, 3)
    assert palette.origin == ORIGIN
    assert Palette.from_json(palette.to_json()) == palette
    unnamed = _paletted(tmp_path / "plain.tif", names=None)
    assert table_palette([unnamed]).names is None


def test_pix2pix_trains_into_a_palette_raster_and_translates_to_its_classes(
        tmp_path: Path, make_raster) -> None:
    from geogan.contract.checkpoint import read_checkpoint_meta

    aerial = make_raster("aerial.tif", width=64, height=64)
    mapped = _paletted(tmp_path / "map.tif", like=aerial)
    run = tmp_path / "run"
    result = run_cli("train", "--model", "pix2pix", "--a", aerial, "--b", mapped,
                     "--output", run, "--crop", "32", "--ngf", "4", "--ndf", "4",
                     "--generator", "resnet_6blocks", "--max-steps", "2", "--device", "cpu",
                     "--workers", "0")
    assert result.exit_code == 0, result.output
    ckpt = next(run.glob("*.safetensors"))
    meta = read_checkpoint_meta(ckpt)
    b = meta.domains["b"]
    assert b.bands == 3 and b.band_names == ["red", "green", "blue"]
    palette = Palette.from_json(b.palette)
    assert palette.colours == tuple(TABLE[i] for i in range(4))
    assert palette.names == NAMES and palette.origin == ORIGIN
    assert meta.domains["a"].palette is None
