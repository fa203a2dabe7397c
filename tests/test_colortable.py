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
    # translating with it writes the colour table's classes: codes, colours and names
    src = make_raster("aerial2.tif", width=48, height=40, nodata=0, nodata_box=(0, 8, 0, 8))
    out = tmp_path / "classes.tif"
    result = run_cli("translate", ckpt, src, "-o", out, "--tile", "32", "--overlap", "8")
    assert result.exit_code == 0, result.output
    _check_classes(out)


def _check_classes(out: Path) -> None:
    """``out`` is paletted with :data:`TABLE`'s used classes, named in its PAM and style."""
    from geogan.palette import NODATA_INDEX

    with rasterio.open(out) as ds:
        assert ds.colorinterp == (ColorInterp.palette,)
        table = ds.colormap(1)
        assert [table[i][:3] for i in range(4)] == [TABLE[i] for i in range(4)]
        assert set(np.unique(ds.read(1)).tolist()) <= {0, 1, 2, 3, NODATA_INDEX}
    assert category_names(out) == NAMES
    if shutil.which("gdalinfo"):
        info = subprocess.run(["gdalinfo", str(out)], capture_output=True, text=True,
                              check=True).stdout
        cats = info.split("Categories:", 1)[1]
        for i, name in enumerate(NAMES):
            assert f"{i}: {name}" in cats, info
    style = out.with_suffix(".qml").read_text(encoding="utf-8")
    assert 'type="paletted"' in style and 'label="water &amp; lakes"' in style


def _named_checkpoint(tmp_path: Path) -> Path:
    from conftest import make_checkpoint

    from geogan.contract.checkpoint import DomainMeta
    from geogan.normalize import BandNorm

    norm = BandNorm.full_range("uint8", 3, 0).to_json()
    palette = Palette(tuple(TABLE[i] for i in range(4)), NAMES, ORIGIN, (0, 1, 2, 3))
    domains = {"a": DomainMeta("aerial", norm),
               "b": DomainMeta("map", norm, palette=palette.to_json())}
    return make_checkpoint(tmp_path / "map.safetensors", meta={"domains": domains})


def test_translate_side_files_follow_the_write_rules(tmp_path: Path, make_raster) -> None:
    from conftest import listing

    ckpt = _named_checkpoint(tmp_path)
    src = make_raster("aerial.tif", width=48, height=40)
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "m.tif"
    args = ("translate", ckpt, src, "-o", out, "--tile", "32", "--overlap", "8")
    assert run_cli(*args).exit_code == 0
    assert listing(folder) == ["m.qml", "m.tif", "m.tif.aux.xml"]
    _check_classes(out)
    # again: refused without --overwrite, nothing touched; replaced with it
    before = {p: p.read_bytes() for p in folder.iterdir()}
    assert "exists" in cli_error(run_cli(*args))
    assert {p: p.read_bytes() for p in folder.iterdir()} == before
    assert run_cli(*args, "--overwrite").exit_code == 0
    assert listing(folder) == ["m.qml", "m.tif", "m.tif.aux.xml"]
    # a style geogan did not write is never replaced; the output is not written either
    (folder / "m.qml").write_text("<qgis>my own style</qgis>", encoding="utf-8")
    line = cli_error(run_cli(*args, "--overwrite"))
    assert "m.qml exists and is not a style geogan wrote" in line
    assert (folder / "m.qml").read_text(encoding="utf-8") == "<qgis>my own style</qgis>"
    # overwritten by a continuous output: geogan's names file goes, the user's style stays
    assert run_cli(*args, "--overwrite", "--palette", "off").exit_code == 0
    assert listing(folder) == ["m.qml", "m.tif"]
    assert (folder / "m.qml").read_text(encoding="utf-8") == "<qgis>my own style</qgis>"
    two = folder / "two.tif"
    assert run_cli(*args[:3], "-o", two, *args[5:]).exit_code == 0
    assert listing(folder) == ["m.qml", "m.tif", "two.qml", "two.tif", "two.tif.aux.xml"]
    assert run_cli(*args[:3], "-o", two, *args[5:], "--overwrite", "--palette",
                   "off").exit_code == 0
    assert listing(folder) == ["m.qml", "m.tif", "two.tif"]
    # continuous output writes no side files
    rgb = tmp_path / "rgb.tif"
    assert run_cli(*args[:3], "-o", rgb, "--tile", "32", "--overlap", "8", "--palette",
                   "off").exit_code == 0
    assert not rgb.with_suffix(".qml").exists() and not Path(f"{rgb}.aux.xml").exists()


def test_a_palette_band_picked_with_other_bands_is_one_line(tmp_path: Path) -> None:
    """A VRT whose band 1 is a palette band and band 2 gray: `bands` 1,2 makes no sense."""
    pal = _paletted(tmp_path / "map.tif", names=None)
    with rasterio.open(pal) as ds:
        gt = ", ".join(repr(float(v)) for v in ds.transform.to_gdal())
        wkt = ds.crs.to_wkt()
    entries = "".join(f"<Entry c1=\"{c[0]}\" c2=\"{c[1]}\" c3=\"{c[2]}\" c4=\"255\"/>"
                      for c in (TABLE.get(i, (0, 0, 0)) for i in range(16)))
    source = (f"<SimpleSource><SourceFilename relativeToVRT=\"0\">{pal}</SourceFilename>"
              "<SourceBand>1</SourceBand></SimpleSource>")
    vrt = tmp_path / "two.vrt"
    vrt.write_text(
        f"<VRTDataset rasterXSize=\"64\" rasterYSize=\"64\"><SRS>{wkt}</SRS>"
        f"<GeoTransform>{gt}</GeoTransform>"
        f"<VRTRasterBand dataType=\"Byte\" band=\"1\"><ColorInterp>Palette</ColorInterp>"
        f"<ColorTable>{entries}</ColorTable>{source}</VRTRasterBand>"
        f"<VRTRasterBand dataType=\"Byte\" band=\"2\"><ColorInterp>Gray</ColorInterp>{source}"
        "</VRTRasterBand></VRTDataset>", encoding="utf-8")
    chips = tmp_path / "chips"
    line = cli_error(run_cli("tile", vrt, "-o", chips, "--size", "32", "--bands", "1,2"))
    assert "band 1 is a palette (colour table) band" in line and "--bands 1" in line
    assert not chips.exists()
    # band 1 alone: chips of its colour indices with its colour table (read as RGB)
    result = run_cli("tile", vrt, "-o", chips, "--size", "32", "--bands", "1")
    assert result.exit_code == 0, result.output
    first = sorted(chips.rglob("*.tif"))[0]
    with rasterio.open(first) as ds:
        assert ds.count == 1 and ds.colorinterp == (ColorInterp.palette,)
        assert ds.colormap(1)[2][:3] == TABLE[2]


def test_qgis_shows_the_translation_as_named_classes(tmp_path: Path, make_raster) -> None:
    from test_qgis_plugin import _qgis_python, qgis_renderer

    python = _qgis_python()
    if python is None:
        pytest.skip("no Python with the qgis module (apt-get install python3-qgis)")
    ckpt = _named_checkpoint(tmp_path)
    src = make_raster("aerial.tif", width=48, height=40)
    out = tmp_path / "m.tif"
    assert run_cli("translate", ckpt, src, "-o", out, "--tile", "32", "--overlap",
                   "8").exit_code == 0
    Path(f"{out}.aux.xml").unlink()  # the names come from the style m.qml, not GDAL's PAM
    line = qgis_renderer(python, out, "r.type(), '|'.join(f'{int(c.value)}={c.label}' "
                         "for c in r.classes())", tmp_path)
    kind, classes = line.split(" ", 1)
    assert kind == "paletted"
    assert classes.split("|") == [f"{i}={n}" for i, n in enumerate(NAMES)]


def test_an_unnamed_palette_gets_a_style_labelled_by_index_and_no_pam(tmp_path: Path,
                                                                      make_raster) -> None:
    from conftest import listing, make_checkpoint

    from geogan.contract.checkpoint import DomainMeta
    from geogan.normalize import BandNorm

    norm = BandNorm.full_range("uint8", 3, 0).to_json()
    palette = Palette(tuple(TABLE[i] for i in (0, 2)), indices=(0, 2))
    ckpt = make_checkpoint(tmp_path / "map.safetensors", meta={"domains": {
        "a": DomainMeta("aerial", norm), "b": DomainMeta("map", norm,
                                                         palette=palette.to_json())}})
    out = tmp_path / "out" / "m.tif"
    result = run_cli("translate", ckpt, make_raster("aerial.tif", width=40, height=40), "-o",
                     out, "--tile", "32", "--overlap", "8")
    assert result.exit_code == 0, result.output
    assert listing(out.parent) == ["m.qml", "m.tif"]
    style = out.with_suffix(".qml").read_text(encoding="utf-8")
    assert style.count("<paletteEntry") == 2 and 'value="2"' in style and 'label="2"' in style
    with rasterio.open(out) as ds:
        assert set(np.unique(ds.read(1)).tolist()) <= {0, 2}
        assert ds.colormap(1)[2][:3] == TABLE[2]


def test_translate_reads_a_palette_input_as_gdal_expands_it(tmp_path: Path, make_raster,
                                                           tiny_checkpoint) -> None:
    """A palette input translates exactly as its ``gdal_translate -expand rgb`` copy (or
    the numpy lookup of its colours); its nodata index is masked in the output."""
    classes = _classes(40, 48)
    classes[classes == NODATA] = 5  # no nodata pixels: the expanded copy equals it
    pal = _paletted(tmp_path / "map.tif", names=None, classes=classes)
    with rasterio.open(pal) as ds:
        profile = dict(ds.profile, count=3, photometric="RGB", nodata=None)
    rgb = tmp_path / "rgb.tif"
    with rasterio.open(rgb, "w", **profile) as dst:
        dst.write(_lookup(classes))
    outs = []
    for name, src in (("p.tif", pal), ("r.tif", rgb)):
        result = run_cli("translate", tiny_checkpoint, src, "-o", tmp_path / name, "--tile",
                         "32", "--overlap", "8")
        assert result.exit_code == 0, result.output
        with rasterio.open(tmp_path / name) as ds:
            assert ds.count == 3
            outs.append(ds.read())
    assert np.array_equal(outs[0], outs[1])
    # the nodata index is no data in the output
    masked = _paletted(tmp_path / "nodata.tif", names=None)
    out = tmp_path / "n.tif"
    result = run_cli("translate", tiny_checkpoint, masked, "-o", out, "--tile", "32",
                     "--overlap", "8")
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as ds:
        valid = ds.read_masks(1) != 0
    assert np.array_equal(valid, _classes() != NODATA)


def test_alpha_0_entries_are_masked_and_colours_match_gdal(tmp_path: Path) -> None:
    """A colour table entry of alpha 0 (a VRT can hold one; a GeoTIFF's cannot) marks its
    pixels invalid; the colours still equal gdal_translate -expand rgb's."""
    classes = _classes(16, 16)
    classes[classes == NODATA] = 1
    tif = _paletted(tmp_path / "map.tif", names=None, classes=classes)
    with rasterio.open(tif) as ds:
        gt = ", ".join(repr(float(v)) for v in ds.transform.to_gdal())
        wkt = ds.crs.to_wkt()
    entries = "".join(f"<Entry c1=\"{c[0]}\" c2=\"{c[1]}\" c3=\"{c[2]}\" "
                      f"c4=\"{0 if i == 2 else 255}\"/>"
                      for i, c in ((i, TABLE.get(i, (0, 0, 0))) for i in range(16)))
    vrt = tmp_path / "alpha.vrt"
    vrt.write_text(
        f"<VRTDataset rasterXSize=\"16\" rasterYSize=\"16\"><SRS>{wkt}</SRS>"
        f"<GeoTransform>{gt}</GeoTransform><VRTRasterBand dataType=\"Byte\" band=\"1\">"
        f"<ColorInterp>Palette</ColorInterp><ColorTable>{entries}</ColorTable>"
        f"<SimpleSource><SourceFilename relativeToVRT=\"0\">{tif}</SourceFilename>"
        "<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>",
        encoding="utf-8")
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(rasterio.open(vrt))
        ds = open_expanded(src, 1, vrt, stack)
        got, valid = ds.read(), ds.read_masks(1) != 0
    assert np.array_equal(valid, classes != 2) and (classes == 2).any()
    expected = _lookup(classes)
    if shutil.which("gdal_translate"):
        ref_path = tmp_path / "expanded.tif"
        subprocess.run(["gdal_translate", "-q", "-expand", "rgb", str(vrt), str(ref_path)],
                       check=True)
        with rasterio.open(ref_path) as ref:
            expected = ref.read()
    assert np.array_equal(got, expected)


def test_rasters_with_different_colour_tables_fall_back_to_detection(tmp_path: Path) -> None:
    one = _paletted(tmp_path / "one.tif")
    two = _paletted(tmp_path / "two.tif")
    with rasterio.open(two, "r+") as ds:
        ds.write_colormap(1, {0: (1, 1, 1, 255), 1: (30, 120, 40, 255), 2: (40, 90, 200, 255),
                              3: (200, 60, 50, 255)})
    assert table_palette([one]) is not None
    assert table_palette([one, two]) is None


def test_a_folder_of_palette_rasters_translates_with_shared_stats(tmp_path: Path,
                                                                 tiny_checkpoint) -> None:
    from conftest import listing

    folder = tmp_path / "maps"
    folder.mkdir()
    _paletted(folder / "a.tif", names=None, classes=_classes(40, 48, seed=1))
    _paletted(folder / "b.tif", names=None, classes=_classes(40, 48, seed=2))
    out = tmp_path / "out"
    result = run_cli("translate", tiny_checkpoint, folder, "-o", out, "--tile", "32",
                     "--overlap", "8", "--shared-stats")
    assert result.exit_code == 0, result.output
    assert listing(out) == ["a.tif", "b.tif"]
    for name, seed in (("a.tif", 1), ("b.tif", 2)):
        with rasterio.open(out / name) as ds:
            assert ds.count == 3
            assert np.array_equal(ds.read_masks(1) != 0, _classes(40, 48, seed) != NODATA)


def test_a_palette_pair_is_warped_by_nearest_neighbour(tmp_path: Path, make_raster) -> None:
    """B on A's grid at another pixel size: its chips hold colour-table indices only."""
    from rasterio.transform import Affine

    aerial = make_raster("aerial.tif", width=64, height=64)
    mapped = _paletted(tmp_path / "map.tif", like=aerial)
    with rasterio.open(mapped, "r+") as ds:  # 0.7 of A's pixel size: warped onto A's grid
        t = ds.transform
        ds.transform = Affine(t.a * 0.7, 0, t.c, 0, t.e * 0.7, t.f)
    chips = tmp_path / "chips"
    result = run_cli("tile", aerial, "--pair", mapped, "-o", chips, "--size", "32")
    assert result.exit_code == 0, result.output
    b_chips = sorted((chips / "B").glob("*.tif"))
    assert b_chips, sorted(p.relative_to(chips).as_posix() for p in chips.rglob("*"))
    for p in b_chips:  # colour indices of the source's colour table (tests/test_palette_chips)
        with rasterio.open(p) as ds:
            assert ds.count == 1 and ds.colorinterp == (ColorInterp.palette,)
            seen = set(np.unique(ds.read(1)).tolist())
        assert seen <= set(TABLE), seen - set(TABLE)


def test_a_batch_checks_every_style_before_any_translation(tmp_path: Path,
                                                          make_raster) -> None:
    from conftest import listing

    ckpt = _named_checkpoint(tmp_path)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a.tif", "b.tif"):
        make_raster(f"in/{name}", width=40, height=40)
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.qml").write_text("<qgis>mine</qgis>", encoding="utf-8")
    line = cli_error(run_cli("translate", ckpt, inputs, "-o", out, "--tile", "32",
                             "--overlap", "8"))
    assert "b.qml already exists" in line
    assert listing(out) == ["b.qml"]  # a.tif was not translated either
    line = cli_error(run_cli("translate", ckpt, inputs, "-o", out, "--tile", "32",
                             "--overlap", "8", "--overwrite"))
    assert "b.qml exists and is not a style geogan wrote" in line
    assert listing(out) == ["b.qml"]


def test_at_model_resolution_refuses_a_palette_input_in_one_line(tmp_path: Path) -> None:
    from conftest import make_checkpoint
    from rasterio.transform import from_origin

    from geogan.contract.checkpoint import DomainMeta
    from geogan.normalize import BandNorm

    norm = BandNorm.full_range("uint8", 3, 0).to_json()
    ckpt = make_checkpoint(tmp_path / "m.safetensors", meta={"domains": {
        "a": DomainMeta("a", norm, gsd_m=5.0, crs="EPSG:26914"),
        "b": DomainMeta("b", norm, gsd_m=5.0, crs="EPSG:26914")}})
    pal = _paletted(tmp_path / "map.tif", names=None)
    with rasterio.open(pal, "r+") as ds:  # 1 m pixels: 5 times finer than the model's
        ds.crs, ds.transform = "EPSG:26914", from_origin(485900.0, 5209247.0, 1.0, 1.0)
    out = tmp_path / "out.tif"
    line = cli_error(run_cli("translate", ckpt, pal, "-o", out, "--tile", "32", "--overlap",
                             "8", "--at-model-resolution"))
    assert "palette (colour table) raster" in line and "gdal_translate -expand rgb" in line
    assert not out.exists()
