"""Hostile inputs through the CLI: outputs that are an input's files, rasters that declare
more than they hold, warps outside a CRS's area, data types and outputs nobody can keep.

Each test runs the real command line and checks the exit code, the one ``Error:`` line
and what is on disk afterwards (nothing written, the user's files as they were).
"""

from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import cli_error

from geogan.cli import main

TILE = ["--tile", "32", "--overlap", "8"]


def _cli(*args: object):
    return CliRunner().invoke(main, ["--progress", "none", *map(str, args)])


def _error(result) -> str:
    """The one ``Error:`` line of a failed command (warnings may come before it)."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    return cli_error(result)


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden temporaries too) with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def write_vrt(path: Path, like: Path, bands: int | None = None, sources: bool = True,
              width: int | None = None, height: int | None = None,
              source: Path | None = None) -> Path:
    """A VRT written by hand on ``like``'s grid: ``bands`` bands (default: ``like``'s), each
    reading a band of ``source`` (default ``like``; relative to the VRT), or empty without
    ``sources``."""
    with rasterio.open(like) as ds:
        srs, count, dtype = ds.crs.to_wkt(), ds.count, ds.dtypes[0]
        gt = ", ".join(repr(v) for v in ds.transform.to_gdal())
        width, height = width or ds.width, height or ds.height
    rel = escape(os.path.relpath(source or like, path.parent))
    gdal_type = {"uint8": "Byte", "float32": "Float32"}[dtype]
    items = []
    for b in range(1, (bands or count) + 1):
        source = (f'<SimpleSource><SourceFilename relativeToVRT="1">{rel}</SourceFilename>'
                  f'<SourceBand>{(b - 1) % count + 1}</SourceBand></SimpleSource>'
                  if sources else "")
        items.append(f'<VRTRasterBand dataType="{gdal_type}" band="{b}">{source}'
                     '</VRTRasterBand>')
    path.write_text(f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">'
                    f'<SRS>{escape(srs)}</SRS><GeoTransform>{gt}</GeoTransform>'
                    + "".join(items) + "</VRTDataset>")
    return path


# --------------------------------------------------------------------------- #21.2 outputs read


def test_translate_refuses_to_replace_a_vrts_source(make_raster, tmp_path, tiny_checkpoint):
    source = make_raster("photos/small.tif", width=40, height=30)
    vrt = write_vrt(tmp_path / "small.vrt", source)
    before = _snapshot(source.parent)
    msg = _error(_cli("translate", tiny_checkpoint, vrt, "-o", source.parent, "--overwrite",
                      *TILE))
    assert msg == (f"Error: output {source} would replace a file that input {vrt} reads (a "
                   "VRT's source or a sidecar); choose another output")
    assert _snapshot(source.parent) == before


def test_translate_refuses_to_replace_a_source_of_another_input(make_raster, tmp_path,
                                                                 tiny_checkpoint):
    """In a batch, one input's output must not be a file another input reads."""
    make_raster("in/a.tif", width=40, height=30)
    out = tmp_path / "out"
    kept = make_raster("out/a.tif", width=40, height=30, seed=3)  # an earlier translation
    vrt = write_vrt(tmp_path / "in" / "b.vrt", kept)
    before = _snapshot(out)
    msg = _error(_cli("translate", tiny_checkpoint, tmp_path / "in", "-o", out, "--overwrite",
                      *TILE))
    assert f"output {kept} would replace a file that input {vrt} reads" in msg
    assert _snapshot(out) == before


def test_mosaic_refuses_to_replace_a_chips_vrt_source_or_sidecar(make_raster, tmp_path):
    base = make_raster("base.tif", width=32, height=32)
    vrt = write_vrt(tmp_path / "chip.vrt", base)
    before = _snapshot(tmp_path)
    msg = _error(_cli("mosaic", vrt, "-o", base, "--overwrite"))
    assert msg == (f"Error: output {base} would replace a file that input {vrt} reads (a "
                   "VRT's source or a sidecar); choose another output")
    # a sidecar GDAL reads with the chip: its overviews
    ovr = Path(f"{base}.ovr")
    ovr.write_bytes(base.read_bytes())
    before = _snapshot(tmp_path)
    msg = _error(_cli("mosaic", base, "-o", ovr, "--overwrite"))
    assert msg == (f"Error: output {ovr} would replace a file that input {base} reads (a "
                   "VRT's source or a sidecar); choose another output")
    assert _snapshot(tmp_path) == before


def test_tile_refuses_an_output_folder_holding_a_pair_vrts_source(make_raster, tmp_path):
    a = make_raster("a.tif", width=64, height=64)
    old = tmp_path / "chips"
    assert _cli("tile", a, "-o", old, "--size", "32").exit_code == 0
    chip = next(old.glob("*.tif"))
    pair = write_vrt(tmp_path / "pair.vrt", chip, width=64, height=64)
    before = _snapshot(old)
    msg = _error(_cli("tile", a, "--pair", pair, "-o", old, "--size", "32", "--overwrite",
                      "--max-nodata", "1"))
    assert msg == (f"Error: input {chip} lies inside the output folder {old}, which would be "
                   "replaced; choose another output folder")
    assert _snapshot(old) == before


def test_train_overwrite_refuses_a_run_folder_holding_a_vrts_source(make_raster, tmp_path):
    from PIL import Image

    run = tmp_path / "run"
    (run / "previews").mkdir(parents=True)
    (run / "losses.csv").write_text("step\n")  # a run folder, which --overwrite may replace
    png = run / "previews" / "step_000100.png"
    Image.fromarray(np.full((30, 40, 3), 7, np.uint8)).save(png)
    b = make_raster("b.tif", width=40, height=30, seed=2)
    vrt = write_vrt(tmp_path / "a.vrt", b, source=png)
    before = _snapshot(run)
    msg = _error(_cli("train", "--a", vrt, "--b", b, "-o", run, "--overwrite", "--max-steps",
                      "1", "--crop", "24"))
    assert msg == (f"Error: input {png} lies inside the output folder {run}, which would be "
                   "replaced; choose another output folder")
    assert _snapshot(run) == before


# --------------------------------------------------------------------------- #21.6 sizes


@pytest.fixture
def terapixel(tmp_path) -> Path:
    """A sparse GeoTIFF declaring 1,000,000 x 1,000,000 px of 4 bands: no block is written,
    so the file holds only its block tables (a few hundred kB)."""
    from rasterio.transform import from_origin

    path = tmp_path / "terapixel.tif"
    with rasterio.open(path, "w", driver="GTiff", width=1_000_000, height=1_000_000, count=4,
                       dtype="uint8", crs="EPSG:26914", nodata=0, tiled=True,
                       blockxsize=8192, blockysize=8192, sparse_ok=True, bigtiff="YES",
                       photometric="MINISBLACK",
                       transform=from_origin(485900.0, 5209247.0, 5.0, 5.0)):
        pass
    assert path.stat().st_size < 2_000_000
    return path


@pytest.mark.parametrize("command", ["tile", "train", "evaluate", "translate"])
def test_a_raster_declaring_a_terapixel_is_refused_before_any_read(command, terapixel,
                                                                   make_raster, tmp_path,
                                                                   tiny_checkpoint):
    other = make_raster("other.tif", width=40, height=30)
    out = tmp_path / "out"
    args = {"tile": ["tile", terapixel, "-o", out],
            "train": ["train", "--a", terapixel, "--b", other, "-o", out, "--max-steps", "1"],
            "evaluate": ["evaluate", terapixel, other],
            "translate": ["translate", tiny_checkpoint, terapixel, "-o", out / "t.tif"]}
    before = _snapshot(tmp_path)
    msg = _error(_cli(*args[command]))
    assert msg == (f"Error: {terapixel} declares 1,000,000 x 1,000,000 px, more than geogan's "
                   "limit of 17,179,869,184 pixels; cut it into parts (gdal_translate -srcwin, "
                   "or gdal_retile.py), or raise the limit with GEOGAN_MAX_PIXELS if the raster "
                   "is real")
    assert _snapshot(tmp_path) == before and not out.exists()


@pytest.mark.parametrize("command", ["tile", "train", "evaluate", "mosaic"])
def test_a_vrt_of_many_bands_is_refused_before_any_read(command, make_raster, tmp_path):
    small = make_raster("small.tif", width=40, height=30)
    vrt = write_vrt(tmp_path / "bands.vrt", small, bands=1000, sources=False)
    out = tmp_path / "out"
    args = {"tile": ["tile", vrt, "-o", out, "--size", "16"],
            "train": ["train", "--a", vrt, "--b", small, "-o", out, "--max-steps", "1"],
            "evaluate": ["evaluate", small, vrt],
            "mosaic": ["mosaic", vrt, "-o", out / "m.tif"]}
    before = _snapshot(tmp_path)
    msg = _error(_cli(*args[command]))
    assert msg == (f"Error: {vrt} declares 1,000 bands, more than geogan's limit of 256; keep "
                   "the bands you need (gdal_translate -b 1 -b 2 ...), or raise the limit with "
                   "GEOGAN_MAX_BANDS if the raster is real")
    assert _snapshot(tmp_path) == before and not out.exists()


def test_the_limits_are_set_by_environment_variables(make_raster, tmp_path, monkeypatch):
    small = make_raster("small.tif", width=64, height=64)
    vrt = write_vrt(tmp_path / "bands.vrt", small, bands=300)
    out = tmp_path / "chips"
    monkeypatch.setenv("GEOGAN_MAX_BANDS", "300")
    assert _cli("tile", vrt, "-o", out, "--size", "32").exit_code == 0
    with rasterio.open(next(out.glob("*.tif"))) as chip:
        assert chip.count == 300
    monkeypatch.setenv("GEOGAN_MAX_PIXELS", "4000")
    msg = _error(_cli("tile", small, "-o", tmp_path / "c2", "--size", "32"))
    assert "declares 64 x 64 px, more than geogan's limit of 4,000 pixels" in msg
    # an --align-to reference gives only its grid: its size is not limited
    part = make_raster("part.tif", width=40, height=30)
    ref = make_raster("ref.tif", width=100, height=100, count=1)
    result = _cli("tile", part, "--align-to", ref, "-o", tmp_path / "c3", "--size", "16")
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("GEOGAN_MAX_PIXELS", "lots")
    msg = _error(_cli("tile", small, "-o", tmp_path / "c2", "--size", "32"))
    assert msg == ("Error: GEOGAN_MAX_PIXELS='lots' is not a positive whole number; set it to "
                   "a limit such as 17179869184 or unset it")
    monkeypatch.delenv("GEOGAN_MAX_PIXELS")
    monkeypatch.setenv("GEOGAN_MAX_CHIPS", "3")
    msg = _error(_cli("tile", small, "-o", tmp_path / "c2", "--size", "32"))
    assert msg == (f"Error: {small} would be cut into 4 candidate chips of 32 px, more than "
                   "geogan's limit of 3; pass a larger --size, cut the raster into parts first "
                   "(gdal_translate -srcwin), or raise the limit with GEOGAN_MAX_CHIPS")
    assert not (tmp_path / "c2").exists()


def test_what_is_read_at_once_is_bounded(make_raster, tmp_path, monkeypatch):
    small = make_raster("small.tif", width=40, height=30)
    before = _snapshot(tmp_path)
    msg = _error(_cli("tile", small, "-o", tmp_path / "c", "--size", "20000"))
    assert msg == (f"Error: a --size 20000 chip of {small} of 20,000 x 20,000 px and 3 band(s) "
                   "holds 1,200,000,000 values, more than the 268,435,456 geogan reads at once; "
                   "pass a smaller --size, or raise the limit with GEOGAN_MAX_READ")
    msg = _error(_cli("train", "--a", small, "--b", make_raster("b.tif", 40, 30, seed=2), "-o",
                      tmp_path / "run", "--crop", "10000", "--max-steps", "1"))
    assert msg == ("Error: a --crop window of the --a rasters of 10,000 x 10,000 px and 3 "
                   "band(s) holds 300,000,000 values, more than the 268,435,456 geogan reads at "
                   "once; pass a smaller --crop, or raise the limit with GEOGAN_MAX_READ")
    assert not (tmp_path / "c").exists() and not (tmp_path / "run").exists()
    assert set(_snapshot(tmp_path)) == set(before) | {"b.tif"}


def test_evaluate_reads_blocks_one_by_one_and_smaller_for_many_bands():
    from geogan.evaluate.inputs import Blocks, block_side, raster_blocks

    blocks = Blocks(1_000_000, 1_000_000, 512)
    assert len(blocks) == 1954 ** 2
    assert list(Blocks(1000, 700, 512)) == list(raster_blocks(1000, 700, 512))
    assert block_side(512, 3) == 512 and block_side(512, 256) == 256
    assert block_side(512, 10**6) == 11  # never under the SSIM window


# --------------------------------------------------------------------------- #21.9 types


@pytest.mark.parametrize("dtype", ["complex64", "int64"])
def test_evaluate_refuses_the_data_types_every_other_command_refuses(dtype, make_raster,
                                                                      tmp_path):
    pred = make_raster(f"pred_{dtype}.tif", width=40, height=30, count=1, dtype=dtype)
    ref = make_raster(f"ref_{dtype}.tif", width=40, height=30, count=1, dtype=dtype, seed=1)
    before = _snapshot(tmp_path)
    msg = _error(_cli("evaluate", pred, ref))
    tiled = _error(_cli("tile", pred, "-o", tmp_path / "chips", "--size", "16"))
    assert msg == tiled  # the one rule (rasterio_meta.check_pixels), word for word
    if dtype == "int64":
        assert msg == (f"Error: {pred} band 1 is int64, which geogan cannot take; convert it "
                       "(e.g. gdal_translate -ot Float32) to one of uint8, int8, uint16, int16, "
                       "uint32, int32, float32, float64")
    else:
        assert msg.startswith(f"Error: {pred} has complex (complex64) pixels, which geogan "
                              "cannot translate; take the amplitude first")
    assert _snapshot(tmp_path) == before


# --------------------------------------------------------------------------- #21.8, #20.4 warps

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "geogan" / "sample_data"


@pytest.mark.parametrize("command", ["tile", "train"])
def test_align_to_refuses_a_scene_outside_the_references_crs_area(command, tmp_path,
                                                                  monkeypatch):
    """The Peruvian Landsat scene aligned to the North Dakota NAIP: refused, not 1,450 chips
    of Peru warped into UTM 14N at 5 m."""
    monkeypatch.chdir(tmp_path)
    landsat, naip = SAMPLE_DATA / "landsat_2020.tif", SAMPLE_DATA / "naip_2009.tif"
    args = {"tile": ["tile", landsat, "--align-to", naip, "-o", "chips/landsat"],
            "train": ["train", "--a", landsat, "--b", SAMPLE_DATA / "naip_2020.tif",
                      "--align-to", naip, "-o", "run", "--max-steps", "1"]}
    msg = _error(_cli(*args[command]))
    assert msg == (f"Error: all of {landsat} lies outside the area where the CRS of --align-to "
                   f"{naip} (EPSG:26914) is defined (longitude -102 to -96, latitude 25.83 to "
                   "84), where a warp gives distorted or empty chips; choose a CRS (or a "
                   "reference) whose area covers the raster, e.g. its UTM zone")
    assert list(tmp_path.iterdir()) == []


def test_warps_outside_a_crs_area_are_refused(make_raster, tmp_path):
    from rasterio.transform import from_bounds

    anti = make_raster("antimeridian_4326.tif", width=400, height=200, crs="EPSG:4326",
                       nodata=0, transform=from_bounds(178, -18, 182, -16, 400, 200))
    naip = SAMPLE_DATA / "naip_2009.tif"
    pole = make_raster("pole_4326.tif", width=400, height=100, crs="EPSG:4326", nodata=0,
                       transform=from_bounds(-180, 80, 180, 90, 400, 100))
    before = _snapshot(tmp_path)
    msg = _error(_cli("tile", anti, "--align-to", naip, "-o", tmp_path / "c1"))
    assert msg.startswith(f"Error: all of {anti} lies outside the area where the CRS of "
                          f"--align-to {naip} (EPSG:26914) is defined")
    msg = _error(_cli("tile", pole, "--crs", "EPSG:3857", "-o", tmp_path / "c2"))
    assert msg == (f"Error: 29% of {pole} lies outside the area where --crs EPSG:3857 is "
                   "defined (longitude -180 to 180, latitude -85.06 to 85.06), where a warp "
                   "gives distorted or empty chips; choose a CRS (or a reference) whose area "
                   "covers the raster, e.g. its UTM zone")
    assert _snapshot(tmp_path) == before and not (tmp_path / "c1").exists()
    # inside the area of use, a warp still works (EPSG:3832 covers the Pacific)
    result = _cli("tile", anti, "--crs", "EPSG:3832", "-o", tmp_path / "c3", "--size", "64",
                  "--max-nodata", "1")
    assert result.exit_code == 0, result.output


def test_align_to_is_cut_to_the_references_extent(make_raster, tmp_path):
    from rasterio.transform import from_origin

    src = make_raster("utm.tif", width=67, height=45, nodata=0)  # 5 m, x 485900..486235
    ref_t = from_origin(486000.0, 5209200.0, 10.0, 10.0)
    ref = make_raster("ref.tif", width=30, height=20, count=1, transform=ref_t)  # 300 x 200 m
    out = tmp_path / "chips"
    result = _cli("tile", src, "--align-to", ref, "-o", out, "--size", "8", "--max-nodata", "1")
    assert result.exit_code == 0, result.output
    with rasterio.open(ref) as r:
        ref_bounds = r.bounds
    chips = sorted(out.glob("*.tif"))
    assert chips
    for chip in chips:
        with rasterio.open(chip) as c:
            b, t = c.bounds, c.transform
            assert (t.a, t.e) == (10.0, -10.0)
            assert b.left >= ref_bounds.left and b.top <= ref_bounds.top
            assert b.left < 486235 and b.top > 5209022  # and where the raster is
    # a raster beside the reference's extent: refused, nothing written
    far = make_raster("far.tif", width=40, height=30, nodata=0,
                      transform=from_origin(490000.0, 5209247.0, 5.0, 5.0))
    msg = _error(_cli("tile", far, "--align-to", ref, "-o", tmp_path / "c2"))
    assert msg == (f"Error: {far} does not overlap the extent of --align-to {ref}; the chips "
                   "are cut where both lie, so align it to a reference that covers the same "
                   "ground")
    assert not (tmp_path / "c2").exists()


def test_a_warp_that_upsamples_needs_max_upsample(make_raster, tmp_path):
    from rasterio.transform import from_origin

    src = make_raster("utm.tif", width=67, height=45, nodata=0)  # 5 m pixels
    ref = make_raster("ref.tif", width=100, height=100, count=1,
                      transform=from_origin(485950.0, 5209200.0, 1.0, 1.0))  # 1 m pixels
    out = tmp_path / "chips"
    msg = _error(_cli("tile", src, "--align-to", ref, "-o", out, "--size", "32"))
    assert msg == (f"Error: the grid of --align-to {ref} would upsample {src} 25 times (each "
                   "pixel becomes 25 pixels, more than --max-upsample 4); pass --max-upsample "
                   "25 to upsample it on purpose, or warp to a coarser grid (--res)")
    msg = _error(_cli("tile", src, "--crs", "EPSG:32614", "--res", "1", "-o", out))
    assert "would upsample" in msg and "--max-upsample" in msg
    assert not out.exists()
    result = _cli("tile", src, "--align-to", ref, "-o", out, "--size", "32",
                  "--max-upsample", "25")
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.tif"))) == 16  # the reference's 100 x 100 m, in 32 px chips
