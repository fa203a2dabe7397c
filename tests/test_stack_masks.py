"""Validity through a stack (issue #25): the first raster's alpha, mask and nodata, and the
holes and outside of a stack raster on another grid, in training and in translation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from rasterio.enums import MaskFlags, Resampling
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT

from geogan.stack import build_stack
from tests.conftest import PROJECTED, cli_error, make_checkpoint, make_raster_array, run_cli

torch.set_num_threads(1)

TINY = ["--crop", "32", "--ngf", "8", "--ndf", "8", "--generator", "resnet_6blocks",
        "--max-steps", "1"]
GRID = from_origin(485900.0, 5209247.0, 5.0, 5.0)
#: The stack raster: 3 m pixels, origin off the first's 5 m grid, covering part of it.
OTHER_GRID = from_origin(485913.0, 5209231.5, 3.0, 3.0)


def _primary(path: Path, kind: str, width: int = 64, height: int = 64,
             transform: Any = GRID) -> Path:
    """3 data bands; invalid on the top 10 rows: by an alpha band, an internal mask or nodata."""
    data = make_raster_array(width, height, 3, seed=1)
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 3,
               "dtype": "uint8", "crs": PROJECTED, "transform": transform, "photometric": "RGB"}
    if kind == "alpha":
        alpha = np.full((1, height, width), 255, np.uint8)
        alpha[:, :10] = 0
        data = np.concatenate([data, alpha])
        profile.update(count=4, alpha="YES")
    elif kind == "nodata":
        data[:, :10] = 0
        profile["nodata"] = 0
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if kind == "mask":
            mask = np.full((height, width), 255, np.uint8)
            mask[:10] = 0
            dst.write_mask(mask)
    return path


def _holed(path: Path, hole: tuple[int, int, int, int] = (30, 50, 15, 45)) -> Path:
    """1 band on OTHER_GRID (90 x 100 px of 3 m) with nodata 0 in a ``hole`` (rows, cols)."""
    data = make_raster_array(90, 100, 1, seed=2)
    r0, r1, c0, c1 = hole
    data[:, r0:r1, c0:c1] = 0
    with rasterio.open(path, "w", driver="GTiff", width=90, height=100, count=1,
                       dtype="uint8", crs=PROJECTED, transform=OTHER_GRID, nodata=0) as dst:
        dst.write(data)
    return path


def _stack_valid_on(first: Path, other: Path) -> np.ndarray:
    """Where ``other`` has data on ``first``'s grid (GDAL's own warp, not geogan's view)."""
    with rasterio.open(first) as a, rasterio.open(other) as b, \
            WarpedVRT(b, crs=a.crs, transform=a.transform, width=a.width, height=a.height,
                      resampling=Resampling.bilinear, nodata=0) as w:
        return w.read(1) != 0


def _valid(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.dataset_mask() != 0


@pytest.mark.parametrize("kind", ["alpha", "mask", "nodata"])
def test_the_stack_view_is_valid_where_every_raster_is(tmp_path: Path, kind: str) -> None:
    first = _primary(tmp_path / "sar.tif", kind)
    other = _holed(tmp_path / "opt.tif")
    (tmp_path / "view").mkdir()
    view, layers = build_stack(first, [other], "bilinear", tmp_path / "view")
    assert [x.bands for x in layers] == [3, 1]  # an alpha band is no data band
    want = _valid(first) & _stack_valid_on(first, other)
    with rasterio.open(view) as ds, rasterio.open(first) as a:
        assert ds.count == 4 and ds.nodata == a.nodata
        assert ds.mask_flag_enums == ([MaskFlags.per_dataset],) * 4
        np.testing.assert_array_equal(ds.dataset_mask() != 0, want)


def test_a_stack_of_rasters_without_invalid_pixels_gets_no_mask(tmp_path: Path,
                                                                 make_raster) -> None:
    first = make_raster("a.tif", width=40, height=30, count=1)
    other = make_raster("b.tif", width=40, height=30, count=2, seed=5)
    (tmp_path / "view").mkdir()
    view, _ = build_stack(first, [other], "bilinear", tmp_path / "view")
    with rasterio.open(view) as ds:
        assert ds.mask_flag_enums == ([MaskFlags.all_valid],) * 3
    assert sorted(p.name for p in (tmp_path / "view").iterdir()) == ["a.tif"]  # no mask


def _train(tmp_path: Path, first: Path, other: Path, *extra: object) -> Any:
    b = tmp_path / "b" / "opt2020.tif"
    b.parent.mkdir(exist_ok=True)
    with rasterio.open(first) as a:
        shape = (a.width, a.height)
    with rasterio.open(b, "w", driver="GTiff", width=shape[0], height=shape[1], count=3,
                       dtype="uint8", crs=PROJECTED, transform=GRID) as dst:
        dst.write(make_raster_array(*shape, 3, seed=4))
    return run_cli("train", "--model", "pix2pix", "--a", first, "--a-stack", other, "--b", b,
                   "-o", tmp_path / "run", *TINY, *extra)


@pytest.mark.parametrize("kind", ["alpha", "mask", "nodata"])
def test_translate_with_a_stack_keeps_the_first_rasters_validity_and_masks_holes(
        tmp_path: Path, kind: str) -> None:
    first = _primary(tmp_path / "sar.tif", kind)
    other = _holed(tmp_path / "opt.tif")
    res = _train(tmp_path, first, other, "--max-nodata", "1")
    assert res.exit_code == 0, res.output
    out = tmp_path / "out.tif"
    res = run_cli("translate", tmp_path / "run", first, "--stack", other, "-o", out,
                  "--tile", "32", "--overlap", "0")
    assert res.exit_code == 0, res.output
    first_valid, other_valid = _valid(first), _stack_valid_on(first, other)
    assert (~other_valid & first_valid).any() and (~first_valid).any()  # both are checked
    with rasterio.open(out) as dst, rasterio.open(first) as src:
        assert (dst.count, dst.crs, dst.transform, dst.shape) == \
            (3, src.crs, src.transform, src.shape)
        if kind != "nodata":  # as without a stack: the alpha or mask is the output's mask
            assert dst.nodata is None and dst.colorinterp[:3] == src.colorinterp[:3]
            assert dst.mask_flag_enums == ([MaskFlags.per_dataset],) * 3
        else:  # as without a stack: the input's nodata value, stamped where invalid
            assert dst.nodata == 0 and dst.mask_flag_enums == ([MaskFlags.nodata],) * 3
            data = dst.read()
            np.testing.assert_array_equal((data != 0).any(axis=0), first_valid & other_valid)
        np.testing.assert_array_equal(dst.dataset_mask() != 0, first_valid & other_valid)
        stacked = (dst.nodata, dst.mask_flag_enums, dst.colorinterp, dst.dataset_mask())
    # the same raster translated without a stack (an untrained 3-band model): the same
    # nodata, mask kind and band meaning, and its mask is the stacked one's outside the hole
    plain = make_checkpoint(tmp_path / "plain.safetensors", nodata=None)
    res = run_cli("translate", plain, first, "-o", tmp_path / "plain.tif", "--tile", "32",
                  "--overlap", "0")
    assert res.exit_code == 0, res.output
    with rasterio.open(tmp_path / "plain.tif") as dst:
        assert (dst.nodata, dst.mask_flag_enums, dst.colorinterp) == stacked[:3]
        np.testing.assert_array_equal(dst.dataset_mask() != 0, first_valid)
        np.testing.assert_array_equal(stacked[3] != 0, (dst.dataset_mask() != 0) & other_valid)


def test_training_windows_count_the_stack_rasters_holes(tmp_path: Path) -> None:
    first = _primary(tmp_path / "sar.tif", "nodata")
    # the stack raster covers A's rows 10..63 except a hole over most of them: no 32 px
    # window of A is whole in both rasters, though each alone has whole ones
    other = _holed(tmp_path / "opt.tif", hole=(0, 100, 10, 80))
    line = cli_error(_train(tmp_path, first, other))
    assert line.startswith("Error: --a: no 32 px window passes --max-nodata 0 and "
                           "--min-std 0"), line
    assert not (tmp_path / "run" / "model.safetensors").exists()
    good = _holed(tmp_path / "opt_small_hole.tif", hole=(80, 100, 80, 90))
    res = _train(tmp_path, first, good)
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("same_grid", [True, False])
def test_a_stack_rasters_alpha_band_is_its_mask_not_data(tmp_path: Path, make_raster,
                                                         same_grid: bool) -> None:
    first = make_raster("sar.tif", width=64, height=64, count=1, seed=1, transform=GRID)
    data = make_raster_array(64, 64, 4, seed=3)
    data[3] = 255
    data[3, 20:40, 10:30] = 0  # a transparent block
    other = make_raster("rgba.tif", data=data, photometric="RGB", alpha="YES",
                        transform=GRID if same_grid else from_origin(485911.0, 5209251.0, 5.0, 5.0))
    (tmp_path / "view").mkdir()
    view, layers = build_stack(first, [other], "bilinear", tmp_path / "view")
    assert [x.bands for x in layers] == [1, 3]
    with rasterio.open(first) as a, rasterio.open(other) as b, \
            WarpedVRT(b, crs=a.crs, transform=a.transform, width=a.width, height=a.height,
                      resampling=Resampling.bilinear, nodata=0) as w:
        want = (w.read([1, 2, 3]) != 0).any(axis=0)  # the warper honours the alpha
    assert (~want).sum() >= (300 if same_grid else 500)  # the block (and the outside)
    with rasterio.open(view) as ds:
        assert ds.count == 4 and ds.mask_flag_enums == ([MaskFlags.per_dataset],) * 4
        np.testing.assert_array_equal(ds.dataset_mask() != 0, want)
        if same_grid:
            assert not (ds.dataset_mask()[20:40, 10:30] != 0).any()


@pytest.mark.parametrize("kind", ["alpha", "mask", "nodata"])
def test_translate_at_model_resolution_with_a_stack_keeps_both_validities(
        tmp_path: Path, kind: str) -> None:
    """A 2.5 m raster and its stack raster, translated at the model's 5 m: the output is on
    the first raster's grid and valid where it and the stack raster both are, as without
    `at_model_resolution`."""
    from geogan.provenance import read_provenance

    first = _primary(tmp_path / "sar.tif", kind)
    other = _holed(tmp_path / "opt.tif")
    res = _train(tmp_path, first, other, "--max-nodata", "1")
    assert res.exit_code == 0, res.output
    fine = _primary(tmp_path / "sar_fine.tif", kind, 128, 128,
                    from_origin(485900.0, 5209247.0, 2.5, 2.5))
    out = tmp_path / "out.tif"
    res = run_cli("translate", tmp_path / "run", fine, "--stack", other, "-o", out,
                  "--tile", "32", "--overlap", "0", "--at-model-resolution")
    assert res.exit_code == 0, res.output
    first_valid, other_valid = _valid(fine), _stack_valid_on(fine, other)
    assert (~other_valid & first_valid).any() and (~first_valid).any()  # both are checked
    with rasterio.open(out) as dst, rasterio.open(fine) as src:
        assert (dst.count, dst.crs, dst.transform, dst.shape) == \
            (3, src.crs, src.transform, src.shape)
        assert dst.nodata == src.nodata
        prov = read_provenance(dst)
        assert prov.at_model_resolution and prov.input_gsd_m == pytest.approx(2.5, abs=0.01)
        np.testing.assert_array_equal(dst.dataset_mask() != 0, first_valid & other_valid)
        if kind == "nodata":  # the input's nodata value, stamped where invalid
            np.testing.assert_array_equal((dst.read() != 0).any(axis=0),
                                          first_valid & other_valid)
