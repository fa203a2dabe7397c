"""Everything around the pixels survives tile, mosaic and translate (GeoTIFF and COG).

Each test builds a tiny raster the way a GIS user meets it (4-band gray/undefined
NAIP-like, RGB, RGBA, internal mask, ``.msk`` sidecar, palette, scale/offset and
descriptions, GCPs, RPCs, complex) and runs the real CLI on it, then checks the
colour interpretation and mask flags of every output, that masked pixels stay
masked, that band metadata travels with the kept bands, and that what geogan
cannot keep is refused in one line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner, Result
from conftest import GEOGRAPHIC, PROJECTED, cli_error, make_raster_array
from rasterio.control import GroundControlPoint
from rasterio.enums import ColorInterp as CI
from rasterio.enums import MaskFlags
from rasterio.transform import from_origin
from torch import nn

from geogan.checkpoint import LoadedGenerator
from geogan.cli import main
from geogan.errors import first_line
from geogan.normalize import BandNorm

GRAY4 = (CI.gray, CI.undefined, CI.undefined, CI.undefined)
RGB = (CI.red, CI.green, CI.blue)
TILE = ("--tile", "16", "--overlap", "4")


# --------------------------------------------------------------------------- helpers


def _cli(*args: object) -> Result:
    return CliRunner().invoke(main, ["--progress", "none", *map(str, args)])


def _ok(*args: object) -> Result:
    result = _cli(*args)
    assert result.exit_code == 0, result.output
    return result


def _error(*args: object) -> str:
    """One ``Error:`` line, no traceback, non-zero exit."""
    return cli_error(_cli(*args), alone=True)


def _no_alpha_flags(ds) -> bool:
    return all(MaskFlags.alpha not in flags for flags in ds.mask_flag_enums)


@pytest.fixture
def identity(monkeypatch):
    """Checkpoint loading replaced by an identity generator of ``identity.bands`` bands."""

    class Spec:
        bands = 3
        out_bands: int | None = None

    def fake_load(path, direction="a2b", device="cpu"):
        norm = BandNorm.full_range("uint8", Spec.bands, 0)
        out = BandNorm.full_range("uint8", Spec.out_bands or Spec.bands, 0)
        module: nn.Module = nn.Identity()
        if Spec.out_bands and Spec.out_bands != Spec.bands:
            module = nn.Conv2d(Spec.bands, Spec.out_bands, 1)
        return LoadedGenerator(module, direction, norm, out)

    monkeypatch.setattr("geogan.translate.load_generator", fake_load)
    return Spec


def _write(path: Path, data: np.ndarray, crs: str = PROJECTED, **profile) -> Path:
    count, height, width = data.shape
    base = {"driver": "GTiff", "width": width, "height": height, "count": count,
            "dtype": str(data.dtype), "crs": crs,
            "transform": from_origin(485900.0, 5209247.0, 5.0, 5.0) if crs == PROJECTED
            else from_origin(-73.25, -3.5, 0.00081, 0.00081)}
    base.update(profile)
    with rasterio.open(path, "w", **base) as dst:
        dst.write(data)
    return path


def _rgba(path: Path, width: int = 48, height: int = 40, crs: str = PROJECTED) -> Path:
    """RGB + Alpha; alpha is 0 on rows 0..9 (a transparent strip) and 255 elsewhere."""
    data = make_raster_array(width, height, 4)
    data[3] = 255
    data[3, :10] = 0
    return _write(path, data, crs, photometric="RGB", alpha="YES")


def _masked(path: Path, sidecar: bool = False, width: int = 48, height: int = 40) -> Path:
    """4-band gray/undefined with a per-dataset mask (internal, or a .msk sidecar)."""
    data = make_raster_array(width, height, 4)
    mask = np.full((height, width), 255, np.uint8)
    mask[:, :12] = 0
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=not sidecar):
        with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=4,
                           dtype="uint8", crs=PROJECTED, photometric="MINISBLACK",
                           transform=from_origin(485900.0, 5209247.0, 5.0, 5.0)) as dst:
            dst.write(data)
            dst.write_mask(mask)
    assert Path(str(path) + ".msk").exists() == sidecar
    return path


def _described(path: Path) -> Path:
    """4-band uint16 with descriptions, band tags, scale/offset, units and a dataset tag."""
    data = make_raster_array(40, 32, 4, "uint16")
    with rasterio.open(path, "w", driver="GTiff", width=40, height=32, count=4,
                       dtype="uint16", crs=GEOGRAPHIC, photometric="MINISBLACK",
                       transform=from_origin(-73.25, -3.5, 0.00081, 0.00081)) as dst:
        dst.write(data)
        dst.colorinterp = [CI.blue, CI.green, CI.red, CI.undefined]
        dst.descriptions = ("blue", "green", "red", "nir")
        dst.scales = (0.0001, 0.0002, 0.0003, 0.0004)
        dst.offsets = (-0.1, -0.2, -0.3, -0.4)
        dst.units = ("reflectance",) * 4
        for b in range(1, 5):
            dst.update_tags(b, WAVELENGTH=str(480 + 80 * b))
        dst.update_tags(SENSOR="synthetic", ACQUIRED="2020-07-01")
    return path


# --------------------------------------------------------------------------- band meaning


@pytest.mark.parametrize("cog", [False, True])
def test_four_band_byte_never_becomes_alpha(make_raster, tmp_path, identity, cog):
    src = make_raster("naip.tif", 67, 45, count=4)  # gray/undefined x3, as NAIP
    with rasterio.open(src) as ds:
        assert ds.colorinterp == GRAY4 and _no_alpha_flags(ds)
    _ok("tile", src, "-o", tmp_path / "chips", "--size", "32", "--overlap", "8")
    mosaic = tmp_path / "mosaic.tif"
    _ok("mosaic", tmp_path / "chips", "-o", mosaic, *(["--cog"] if cog else []))
    identity.bands = 4
    out = tmp_path / "tr.tif"
    _ok("translate", "ckpt", src, "-o", out, "--tile", "32", "--overlap", "8",
        *(["--cog"] if cog else []))
    outputs = [*sorted((tmp_path / "chips").glob("*.tif")), mosaic, out]
    assert len(outputs) > 4
    for path in outputs:
        with rasterio.open(path) as ds:
            assert ds.colorinterp == GRAY4, path
            assert ds.mask_flag_enums == ([MaskFlags.all_valid],) * 4, path
    with rasterio.open(src) as a, rasterio.open(mosaic) as b, rasterio.open(out) as c:
        np.testing.assert_array_equal(a.read(), b.read())
        np.testing.assert_array_equal(a.read(), c.read())
        if cog:
            assert b.overviews(1) or b.width < 512  # a COG of this size may need none
            assert c.driver == "GTiff"


@pytest.mark.parametrize("cog", [False, True])
def test_rgb_stays_rgb(make_raster, tmp_path, identity, cog):
    src = make_raster("rgb.tif", 50, 40, count=3, photometric="RGB")
    _ok("tile", src, "-o", tmp_path / "chips", "--size", "32")
    _ok("mosaic", tmp_path / "chips", "-o", tmp_path / "m.tif", *(["--cog"] if cog else []))
    _ok("translate", "ckpt", src, "-o", tmp_path / "t.tif", "--tile", "32", "--overlap", "8",
        *(["--cog"] if cog else []))
    chips = sorted((tmp_path / "chips").glob("*.tif"))
    assert len(chips) == 4  # 2 x 2 chips of 32 px cover 50 x 40 px
    for path in [*chips, tmp_path / "m.tif", tmp_path / "t.tif"]:
        with rasterio.open(path) as ds:
            assert ds.colorinterp == RGB, path
            assert _no_alpha_flags(ds), path


def test_descriptions_tags_scale_offset_follow_the_kept_bands(tmp_path, identity):
    src = _described(tmp_path / "refl.tif")
    _ok("tile", src, "-o", tmp_path / "chips", "--size", "16", "--bands", "4,1")
    chips = sorted((tmp_path / "chips").glob("*.tif"))
    assert len(chips) == 6  # 3 x 2 chips of 16 px cover 40 x 32 px
    _ok("mosaic", tmp_path / "chips", "-o", tmp_path / "m.tif")
    for path in [*chips, tmp_path / "m.tif"]:
        with rasterio.open(path) as ds:
            assert ds.descriptions == ("nir", "blue"), path
            assert ds.colorinterp == (CI.undefined, CI.blue), path  # the source bands 4, 1
            assert ds.scales == (0.0004, 0.0001) and ds.offsets == (-0.4, -0.1), path
            assert ds.units == ("reflectance", "reflectance"), path
            assert ds.tags(1)["WAVELENGTH"] == "800" and ds.tags(2)["WAVELENGTH"] == "560"
            assert ds.tags()["SENSOR"] == "synthetic", path
            assert ds.crs == GEOGRAPHIC

    # translate, all four bands kept (same dtype): the meaning is the source's.
    import geogan.translate as tr

    norm = BandNorm("uint16", (0.0,) * 4, (65535.0,) * 4, None)
    gen = LoadedGenerator(nn.Identity(), "a2b", norm, norm)
    out = tr.translate_raster(gen, src, tmp_path / "t.tif",
                              tr.TranslateConfig(tile=16, overlap=4, cog=True))
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert b.descriptions == a.descriptions and b.colorinterp == a.colorinterp
        assert b.scales == a.scales and b.offsets == a.offsets and b.units == a.units
        assert [b.tags(i) for i in (1, 2, 3, 4)] == [a.tags(i) for i in (1, 2, 3, 4)]
        assert b.tags()["ACQUIRED"] == "2020-07-01"


def test_translate_to_another_band_count_gets_explicit_meaning(make_raster, tmp_path,
                                                               identity):
    src = make_raster("naip.tif", 40, 32, count=4)
    identity.bands, identity.out_bands = 4, 3
    _ok("translate", "ckpt", src, "-o", tmp_path / "rgb.tif", "--tile", "16", "--overlap", "4")
    with rasterio.open(tmp_path / "rgb.tif") as ds:
        assert ds.colorinterp == RGB and _no_alpha_flags(ds)
    identity.bands, identity.out_bands = 3, 4
    _ok("translate", "ckpt", src, "-o", tmp_path / "four.tif", "--tile", "16", "--overlap", "4",
        "--bands", "1,2,3")
    with rasterio.open(tmp_path / "four.tif") as ds:
        assert ds.colorinterp == GRAY4 and _no_alpha_flags(ds)


# --------------------------------------------------------------------------- masks and alpha


def _expected_valid(src: Path) -> np.ndarray:
    with rasterio.open(src) as ds:
        return ds.dataset_mask() != 0


@pytest.mark.parametrize("cog", [False, True])
def test_rgba_alpha_becomes_the_mask_of_every_output(tmp_path, identity, cog):
    src = _rgba(tmp_path / "rgba.tif")
    valid = _expected_valid(src)
    assert not valid[:10].any() and valid[10:].all()

    # tile: alpha is not a colour; chips are RGB with the alpha as their mask
    _ok("tile", src, "-o", tmp_path / "chips", "--size", "16", "--max-nodata", "1")
    chips = sorted((tmp_path / "chips").glob("*.tif"))
    assert len(chips) == 9  # 3 x 3 chips of 16 px cover 48 x 40 px
    for path in chips:
        with rasterio.open(path) as ds:
            assert ds.count == 3 and ds.colorinterp == RGB
            assert ds.mask_flag_enums == ([MaskFlags.per_dataset],) * 3
    # --max-nodata counts masked pixels: chips on the transparent strip are skipped
    _ok("tile", src, "-o", tmp_path / "strict", "--size", "16", "--overlap", "8")
    kept = sorted((tmp_path / "strict").glob("*.tif"))
    assert kept and all(int(p.stem.split("_r")[1]) >= 10 for p in kept)
    assert {int(p.stem.split("_r")[1]) for p in kept} == {16, 24}  # rows 0 and 8 dropped

    # mosaic: the mask comes back, pixels under it are invalid
    _ok("mosaic", tmp_path / "chips", "-o", tmp_path / "m.tif", *(["--cog"] if cog else []))
    # translate: a 3-band checkpoint takes bands 1,2,3 without --bands; masked in, masked out
    _ok("translate", "ckpt", src, "-o", tmp_path / "t.tif", "--tile", "16", "--overlap", "4",
        *(["--cog"] if cog else []))
    with rasterio.open(src) as s:
        rgb = s.read([1, 2, 3])
    identity.bands = 4  # a 4-band checkpoint: the alpha is not fed as data unless asked
    line = _error("translate", "ckpt", src, "-o", tmp_path / "t4.tif", *TILE)
    assert "besides its alpha band" in line and "--bands 1,2,3,4" in line, line
    identity.bands = 3
    for path in (tmp_path / "m.tif", tmp_path / "t.tif"):
        with rasterio.open(path) as ds:
            assert ds.count == 3 and ds.colorinterp == RGB, path
            assert ds.mask_flag_enums == ([MaskFlags.per_dataset],) * 3, path
            np.testing.assert_array_equal(ds.dataset_mask() != 0, valid)
            data = ds.read()
            np.testing.assert_array_equal(data[:, valid], rgb[:, valid])


def test_warped_tiling_keeps_the_alpha_as_mask(tmp_path):
    src = _rgba(tmp_path / "rgba.tif")
    _ok("tile", src, "-o", tmp_path / "chips", "--size", "16", "--crs", GEOGRAPHIC,
        "--max-nodata", "1")
    chips = sorted((tmp_path / "chips").glob("*.tif"))
    top = [p for p in chips if p.stem.endswith("_r000000")]
    assert chips and top
    for path in chips:
        with rasterio.open(path) as ds:
            assert ds.count == 3 and ds.colorinterp == RGB and ds.crs == GEOGRAPHIC
            assert ds.mask_flag_enums == ([MaskFlags.per_dataset],) * 3
            if path in top:  # the transparent strip (a quarter of the rows) is masked
                assert (ds.dataset_mask() == 0).mean() > 0.25


@pytest.mark.parametrize("sidecar", [False, True])
def test_internal_and_sidecar_masks_are_honoured(tmp_path, identity, sidecar):
    src = _masked(tmp_path / "m.tif", sidecar=sidecar)
    valid = _expected_valid(src)
    assert not valid[:, :12].any() and valid[:, 12:].all()
    _ok("tile", src, "-o", tmp_path / "chips", "--size", "16", "--max-nodata", "1")
    chips = sorted((tmp_path / "chips").glob("*.tif"))
    assert len(chips) == 9  # 3 x 3 chips of 16 px cover 48 x 40 px
    for path in chips:
        with rasterio.open(path) as ds:
            assert ds.colorinterp == GRAY4
            assert ds.mask_flag_enums == ([MaskFlags.per_dataset],) * 4
    _ok("tile", src, "-o", tmp_path / "strict", "--size", "16", "--overlap", "8")
    kept = sorted((tmp_path / "strict").glob("*.tif"))
    assert kept and all(int(p.stem.split("__c")[1][:6]) >= 12 for p in kept)

    _ok("mosaic", tmp_path / "chips", "-o", tmp_path / "mosaic.tif")
    identity.bands = 4
    _ok("translate", "ckpt", src, "-o", tmp_path / "t.tif", "--tile", "16", "--overlap", "4")
    for path in (tmp_path / "mosaic.tif", tmp_path / "t.tif"):
        with rasterio.open(path) as ds:
            assert ds.colorinterp == GRAY4
            np.testing.assert_array_equal(ds.dataset_mask() != 0, valid)


def test_masked_input_with_nodata_gets_nodata_out(tmp_path, identity):
    data = make_raster_array(40, 32, 3)
    data[:, :4, :4] = 0  # nodata
    path = tmp_path / "both.tif"
    with rasterio.open(path, "w", driver="GTiff", width=40, height=32, count=3, dtype="uint8",
                       crs=PROJECTED, nodata=0, photometric="RGB",
                       transform=from_origin(485900.0, 5209247.0, 5.0, 5.0)) as dst:
        dst.write(data)
        mask = np.full((32, 40), 255, np.uint8)
        mask[20:] = 0
        dst.write_mask(mask)
    _ok("translate", "ckpt", path, "-o", tmp_path / "t.tif", "--tile", "16", "--overlap", "4")
    with rasterio.open(tmp_path / "t.tif") as ds:
        out = ds.read()
        assert ds.nodata == 0
    assert (out[:, 20:] == 0).all()  # masked rows carry the output's nodata
    assert (out[:, :4, :4] == 0).all()
    assert (out[:, 4:20] != 0).any(axis=0).all()


def test_training_statistics_ignore_masked_pixels(tmp_path):
    from geogan.datasets import open_training_data

    chips = tmp_path / "a"
    chips.mkdir()
    for i in range(2):
        data = make_raster_array(32, 32, 1, "uint16", seed=i)
        data[0, :, :16] = 60000  # garbage under the mask
        data[0, :, 16:] = np.clip(data[0, :, 16:], 0, 1000)
        with rasterio.open(chips / f"c{i}.tif", "w", driver="GTiff", width=32, height=32,
                           count=1, dtype="uint16", crs=PROJECTED,
                           transform=from_origin(0, 0, 1, 1)) as dst:
            dst.write(data)
            mask = np.full((32, 32), 255, np.uint8)
            mask[:, :16] = 0
            dst.write_mask(mask)
    td = open_training_data("pix2pix", chips, chips, 16, augment=False)
    assert td.a.norm.hi[0] <= 1000


# --------------------------------------------------------------------------- refusals


def _palette(path: Path) -> Path:
    data = (np.arange(48 * 40) % 4).astype(np.uint8).reshape(1, 40, 48)
    with rasterio.open(path, "w", driver="GTiff", width=48, height=40, count=1, dtype="uint8",
                       crs=PROJECTED, transform=from_origin(485900.0, 5209247.0, 5.0, 5.0)
                       ) as dst:
        dst.write(data)
        dst.write_colormap(1, {0: (255, 0, 0, 255), 1: (0, 255, 0, 255), 2: (0, 0, 255, 255),
                               3: (0, 0, 0, 255)})
    with rasterio.open(path) as ds:
        assert ds.colorinterp == (CI.palette,)
    return path


def test_palette_rasters_are_refused_with_the_expand_advice(tmp_path, identity):
    # tiling, training and translation read them as the RGB of their colour table
    # (test_colortable.py); mosaicking chips does not
    src = _palette(tmp_path / "pal.tif")
    line = _error("mosaic", src, "-o", tmp_path / "m.tif")
    assert "palette" in line and "gdal_translate -expand rgb" in line, line
    assert not (tmp_path / "m.tif").exists()


def test_complex_rasters_are_refused_with_the_amplitude_advice(tmp_path, identity):
    data = (np.arange(40 * 32).reshape(1, 32, 40) % 50).astype(np.complex64)
    src = _write(tmp_path / "slc.tif", data, dtype="complex_int16")
    for cmd in (("tile", src, "-o", tmp_path / "chips", "--size", "16"),
                ("translate", "ckpt", src, "-o", tmp_path / "t.tif", *TILE),
                ("mosaic", src, "-o", tmp_path / "m.tif")):
        line = _error(*cmd)
        assert "complex" in line and "complex_int16" in line and "gdal_calc" in line, line
    assert not (tmp_path / "chips").exists() and not (tmp_path / "t.tif").exists()


def _gcps(x0: float = 500000.0, y0: float = 4000000.0) -> list[GroundControlPoint]:
    return [GroundControlPoint(0, 0, x0, y0), GroundControlPoint(0, 48, x0 + 240, y0),
            GroundControlPoint(40, 0, x0, y0 - 200), GroundControlPoint(40, 48, x0 + 240,
                                                                        y0 - 200)]


def _gcp_only(path: Path) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=48, height=40, count=3,
                       dtype="uint8") as dst:
        dst.write(make_raster_array(48, 40, 3))
        dst.gcps = (_gcps(), "EPSG:32614")
    with rasterio.open(path) as ds:
        assert ds.crs is None and ds.transform.is_identity and len(ds.gcps[0]) == 4
    return path


def _srs_identity_gcps_vrt(tmp_path: Path) -> Path:
    """A VRT with an SRS, an explicit identity geotransform and GCPs (as RGB.byte.gcp.vrt)."""
    _write(tmp_path / "base.tif", make_raster_array(48, 40, 3), photometric="RGB")
    gcps = "".join(f'<GCP Id="{i}" Pixel="{g.col}" Line="{g.row}" X="{g.x}" Y="{g.y}"/>'
                   for i, g in enumerate(_gcps()))
    bands = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}"><SimpleSource>'
        f'<SourceFilename relativeToVRT="1">base.tif</SourceFilename>'
        f'<SourceBand>{b}</SourceBand></SimpleSource></VRTRasterBand>' for b in (1, 2, 3))
    vrt = tmp_path / "gcp.vrt"
    vrt.write_text(f'<VRTDataset rasterXSize="48" rasterYSize="40"><SRS>EPSG:32614</SRS>'
                   f'<GeoTransform>0, 1, 0, 0, 0, 1</GeoTransform>'
                   f'<GCPList Projection="EPSG:32614">{gcps}</GCPList>{bands}</VRTDataset>')
    with rasterio.open(vrt) as ds:
        assert ds.transform.is_identity and len(ds.gcps[0]) == 4
    return vrt


def _rpc(path: Path) -> Path:
    from rasterio.rpc import RPC

    rpc = RPC(height_off=0.0, height_scale=500.0, lat_off=45.0, lat_scale=0.01,
              line_den_coeff=[1.0] + [0.0] * 19, line_num_coeff=[0.0, 0.0, -1.0] + [0.0] * 17,
              line_off=20.0, line_scale=20.0, long_off=-93.0, long_scale=0.01,
              samp_den_coeff=[1.0] + [0.0] * 19, samp_num_coeff=[0.0, 1.0] + [0.0] * 18,
              samp_off=24.0, samp_scale=24.0)
    with rasterio.open(path, "w", driver="GTiff", width=48, height=40, count=3,
                       dtype="uint8") as dst:
        dst.write(make_raster_array(48, 40, 3))
        dst.rpcs = rpc
    with rasterio.open(path) as ds:
        assert ds.rpcs is not None and ds.transform.is_identity
    return path


@pytest.mark.parametrize("kind", ["gcp_only", "srs_identity_gcps", "rpc"])
def test_gcp_and_rpc_rasters_are_refused_with_warping_advice(tmp_path, identity, kind):
    if kind == "gcp_only":
        src = _gcp_only(tmp_path / "gcp.tif")
    elif kind == "srs_identity_gcps":
        src = _srs_identity_gcps_vrt(tmp_path)
    else:
        src = _rpc(tmp_path / "rpc.tif")
    advice = "gdalwarp -rpc -t_srs EPSG:4326" if kind == "rpc" else "gdalwarp -tps"
    for cmd in (("tile", src, "-o", tmp_path / "chips", "--size", "16"),
                ("tile", src, "-o", tmp_path / "chips", "--size", "16", "--allow-no-crs"),
                ("translate", "ckpt", src, "-o", tmp_path / "t.tif", *TILE),
                ("mosaic", src, "-o", tmp_path / "m.tif", "--allow-no-crs")):
        line = _error(*cmd)
        assert advice in line, line
        assert "gdal_edit" not in line and "-a_srs" not in line, line
        if kind != "rpc":
            assert "-t_srs EPSG:32614" in line, line
    assert not (tmp_path / "chips").exists() and not (tmp_path / "t.tif").exists()


def test_gdal_cause_is_quoted_instead_of_see_previous_exception(tmp_path):
    src = _write(tmp_path / "full.tif", make_raster_array(400, 300, 1), tiled=True,
                 compress="deflate")
    cut = tmp_path / "cut.tif"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with rasterio.open(cut) as ds:
        with pytest.raises(rasterio.errors.RasterioIOError) as info:
            ds.read()
    assert "See previous exception" in str(info.value)
    quoted = first_line(info.value)
    assert "See previous exception" not in quoted and "TIFFRead" in quoted
    line = _error("tile", cut, "-o", tmp_path / "chips", "--size", "16")
    assert "See previous exception" not in line and "cut.tif" in line
