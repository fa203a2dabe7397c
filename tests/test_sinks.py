"""Outputs behind one protocol: the table of output formats, the sinks a translation hands its
finished rows to, a raster registered beside the output (both files or neither), and the
file-safety package without import cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import cli_error, listing, run_cli

from geogan import fileio
from geogan.contract import formats
from geogan.errors import OutputError
from geogan.provenance import read_provenance
from geogan.sink import SIDE_RASTERS, RasterRows, Rows, SideRaster

ROOT = Path(__file__).resolve().parents[1]
TILE = ["--tile", "32", "--overlap", "8"]


# --------------------------------------------------------------------------- the format table


def test_the_format_table_imports_nothing_but_the_standard_library():
    code = ("import sys; import geogan.contract.formats; "
            "heavy = [m for m in ('torch', 'numpy', 'rasterio', 'click', 'geogan.errors') "
            "if m in sys.modules]; assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


def test_translate_s_rules_derive_from_the_format_table():
    from geogan.translate import OUTPUT_SUFFIXES, PICTURE_DRIVERS

    assert OUTPUT_SUFFIXES == (".tif", ".tiff", ".png", ".jpg", ".jpeg")
    assert PICTURE_DRIVERS == {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
    assert formats.format_for("a.tif") is formats.GEOTIFF
    assert formats.format_for("a.TIFF", ("cog",)) is formats.COG
    assert formats.format_for("a.JPG", ("cog",)) is formats.JPEG
    assert formats.format_for("folder") is formats.default_format()
    assert formats.readable_without_crs("x/photo.PNG")
    assert not formats.readable_without_crs("x/ortho.tif")
    assert formats.format_of_driver("COG").write == "copy"
    assert formats.GEOTIFF.write == "create"
    # the QGIS plugin's raster outputs: the formats that hold their own georeference
    assert formats.qgis_extensions() == ["tif"]
    assert formats.default_format().extension == "tif"


def test_an_output_format_row_is_checked():
    with pytest.raises(ValueError, match="write"):
        formats.OutputFormat("X", "X", (".x",), georeferenced=True, write="append")
    with pytest.raises(ValueError, match="suffixes"):
        formats.OutputFormat("X", "X", ("X",), georeferenced=True, write="create")


def test_an_unknown_output_ending_names_the_formats_of_the_table(make_raster, tmp_path,
                                                                 tiny_checkpoint):
    src = make_raster("r.tif", width=40, height=30)
    msg = cli_error(run_cli("translate", tiny_checkpoint, src, "-o", tmp_path / "out.webp",
                            *TILE))
    assert "writes GeoTIFF (or PNG/JPEG for pictures); give a .tif file name" in msg
    assert not (tmp_path / "out.webp").exists()


# --------------------------------------------------------------------------- the fileio package


def _imports(path: Path) -> set[str]:
    """Modules ``path`` imports, at the top or in a function, as absolute dotted names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


@pytest.mark.parametrize("package", ["fileio", "sink"])
def test_no_import_cycle_inside_the_output_packages(package):
    """Function-level imports included: each module only imports those below it."""
    folder = ROOT / "geogan" / package
    mods = {p.stem: p for p in folder.glob("*.py") if p.stem != "__init__"}
    prefix = f"geogan.{package}."
    graph = {m: {n[len(prefix):].split(".")[0] for n in _imports(p) if n.startswith(prefix)}
             & set(mods) - {m} for m, p in mods.items()}
    done: set[str] = set()

    def visit(m: str, path: tuple[str, ...]) -> None:
        assert m not in path, " -> ".join(path + (m,))
        if m in done:
            return
        for n in graph[m]:
            visit(n, path + (m,))
        done.add(m)

    for m in graph:
        visit(m, ())


# --------------------------------------------------------------------------- the row sink


def test_raster_rows_write_blocks_and_column_strips(tmp_path):
    """Rows arrive in uneven blocks, then as a second strip of columns; the raster holds
    exactly what was handed over, with the mask of the valid pixels."""
    data = np.arange(3 * 600 * 70, dtype=np.uint16).reshape(3, 600, 70)
    valid = (np.arange(600 * 70).reshape(600, 70) % 7) != 0
    profile = dict(driver="GTiff", width=70, height=600, count=3, dtype="uint16", tiled=True,
                   blockxsize=16, blockysize=16)
    with rasterio.open(tmp_path / "r.tif", "w", **profile) as dst:
        sink = RasterRows(dst)
        for col, width in ((0, 40), (40, 30)):  # two strips of columns, each top to bottom
            row = 0
            for n in (100, 3, 300, 197):
                sink.write(Rows(row, data[:, row:row + n, col:col + width],
                                valid[row:row + n, col:col + width], col=col))
                row += n
        sink.finish()
    with rasterio.open(tmp_path / "r.tif") as r:
        assert np.array_equal(r.read(), data)
        assert np.array_equal(r.dataset_mask() > 0, valid)


def test_raster_rows_refuse_rows_out_of_order(tmp_path):
    profile = dict(driver="GTiff", width=8, height=8, count=1, dtype="uint8")
    with rasterio.open(tmp_path / "r.tif", "w", **profile) as dst:
        sink = RasterRows(dst)
        sink.write(Rows(0, np.zeros((1, 2, 8), np.uint8)))
        with pytest.raises(RuntimeError, match="out of order"):
            sink.write(Rows(5, np.zeros((1, 2, 8), np.uint8)))


# --------------------------------------------------------------------------- a raster beside


class MeanRaster(SideRaster):
    """A toy side raster: the per-pixel mean of the output's bands."""

    name = "mean"
    suffix = ".mean.tif"
    calls = 0
    fail_at: int | None = None

    def values(self, rows: Rows) -> np.ndarray:
        MeanRaster.calls += 1
        if MeanRaster.fail_at is not None and MeanRaster.calls >= MeanRaster.fail_at:
            raise OutputError("the mean raster failed on purpose")
        return rows.values.astype(np.float32).mean(axis=0, keepdims=True)


@pytest.fixture
def mean_raster(monkeypatch):
    monkeypatch.setitem(SIDE_RASTERS, MeanRaster.name, MeanRaster)
    monkeypatch.setattr(MeanRaster, "calls", 0)
    monkeypatch.setattr(MeanRaster, "fail_at", None)
    return MeanRaster


def _masked_input(tmp_path: Path, make_raster) -> Path:
    """An input with a per-dataset mask (no nodata value): a hole in its middle."""
    src = make_raster("masked.tif", width=70, height=50)
    with rasterio.open(src, "r+") as ds:
        mask = np.full((50, 70), 255, np.uint8)
        mask[10:30, 20:45] = 0
        ds.write_mask(mask)
    return src


@pytest.mark.parametrize("kind", ["nodata", "mask", "cog"])
def test_a_registered_raster_is_written_beside_on_the_output_s_grid_and_mask(
        kind, make_raster, tmp_path, tiny_checkpoint, mean_raster):
    if kind == "mask":
        src = _masked_input(tmp_path, make_raster)
    else:
        src = make_raster("r.tif", width=70, height=50, nodata=0, nodata_box=(5, 25, 10, 30))
    out = tmp_path / "out" / "r.tif"
    extra = ["--cog"] if kind == "cog" else []
    result = run_cli("translate", tiny_checkpoint, src, "-o", out, *TILE, *extra)
    assert result.exit_code == 0, result.output
    side = tmp_path / "out" / "r.mean.tif"
    assert listing(tmp_path / "out") == ["r.mean.tif", "r.tif"]
    with rasterio.open(out) as o, rasterio.open(side) as s:
        assert (s.crs, s.transform, s.width, s.height) == (o.crs, o.transform, o.width,
                                                           o.height)
        assert s.count == 1 and s.dtypes[0] == "float32" and s.descriptions == ("mean",)
        mask = o.dataset_mask()
        assert 0 < np.count_nonzero(mask == 0) < mask.size
        assert np.array_equal(s.dataset_mask(), mask)
        valid = mask > 0
        want = o.read().astype(np.float32).mean(axis=0)
        assert np.allclose(s.read(1)[valid], want[valid], atol=1e-4)
        assert read_provenance(s) is not None
        assert read_provenance(s) == read_provenance(o)
        if kind == "cog":
            assert s.overviews(1) == o.overviews(1)
            assert s.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"


def test_a_failing_side_raster_leaves_neither_file(make_raster, tmp_path, tiny_checkpoint,
                                                   mean_raster):
    src = make_raster("r.tif", width=70, height=50)
    out = tmp_path / "out" / "r.tif"
    mean_raster.fail_at = 2  # after the first rows were written into both files
    msg = cli_error(run_cli("translate", tiny_checkpoint, src, "-o", out, *TILE))
    assert msg == "Error: the mean raster failed on purpose"
    assert listing(tmp_path / "out") == []


@pytest.mark.parametrize("point", ["before-rename", "between-renames"])
def test_a_failure_at_the_renames_keeps_both_older_files(point, make_raster, tmp_path,
                                                         tiny_checkpoint, mean_raster):
    """With --overwrite, a failure as the pair takes its names leaves the older pair."""
    src = make_raster("r.tif", width=70, height=50)
    out = tmp_path / "out" / "r.tif"
    assert run_cli("translate", tiny_checkpoint, src, "-o", out, *TILE).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    assert sorted(before) == ["r.mean.tif", "r.tif"]
    seen = []

    def hook(where: str, path: Path) -> None:
        seen.append((where, path.name))
        if where == point and path.name == "r.tif":  # the second file of the pair
            raise OutputError(f"{path}: simulated failure at {where}")

    fileio.set_fault_hook(hook)
    try:
        msg = cli_error(run_cli("translate", tiny_checkpoint, src, "-o", out, *TILE,
                                "--overwrite", "--overlap", "4"))
    finally:
        fileio.set_fault_hook(None)
    assert "simulated failure" in msg
    assert (point, "r.mean.tif") in seen  # the side raster got that far first
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before


def test_a_cancelled_translation_leaves_neither_file(make_raster, tmp_path, tiny_checkpoint,
                                                     mean_raster):
    from geogan.errors import Cancelled
    from geogan.translate import TranslateConfig, translate_files

    src = make_raster("r.tif", width=70, height=50)
    out = tmp_path / "out" / "r.tif"
    polls = []

    def cancel() -> bool:
        polls.append(1)
        return mean_raster.calls >= 1  # once rows went to both sinks

    with pytest.raises(Cancelled):
        translate_files(tiny_checkpoint, [src], out, TranslateConfig(tile=32, overlap=8),
                        cancel=cancel)
    assert mean_raster.calls >= 1 and polls
    assert listing(tmp_path / "out") == []


def test_a_side_raster_that_exists_is_refused_before_any_work(make_raster, tmp_path,
                                                              tiny_checkpoint, mean_raster):
    src = make_raster("r.tif", width=70, height=50)
    side = tmp_path / "out" / "r.mean.tif"
    side.parent.mkdir()
    side.write_bytes(b"the user's")
    msg = cli_error(run_cli("translate", tiny_checkpoint, src, "-o", side.parent / "r.tif",
                            *TILE))
    assert "r.mean.tif" in msg and "overwrite" in msg
    assert mean_raster.calls == 0
    assert listing(side.parent) == ["r.mean.tif"] and side.read_bytes() == b"the user's"


def test_a_side_raster_is_refused_beside_a_gdal_path(make_raster, tmp_path, tiny_checkpoint,
                                                     mean_raster):
    src = make_raster("r.tif", width=70, height=50)
    msg = cli_error(run_cli("translate", tiny_checkpoint, src, "-o",
                            f"/vsizip/{tmp_path / 'out.zip'}/r.tif", *TILE))
    assert "mean raster" in msg and "local" in msg
    assert not (tmp_path / "out.zip").exists() and mean_raster.calls == 0


def test_without_a_registered_raster_only_the_output_is_written(make_raster, tmp_path,
                                                                tiny_checkpoint):
    src = make_raster("r.tif", width=70, height=50)
    out = tmp_path / "out" / "r.png"
    assert run_cli("translate", tiny_checkpoint, src, "-o", out, *TILE).exit_code == 0
    assert listing(tmp_path / "out") == ["r.png", "r.png.aux.xml"]


def test_a_picture_output_and_its_sidecar_commit_with_the_side_raster(make_raster, tmp_path,
                                                                      tiny_checkpoint,
                                                                      mean_raster):
    src = make_raster("r.tif", width=70, height=50)
    out = tmp_path / "out" / "r.png"
    assert run_cli("translate", tiny_checkpoint, src, "-o", out, *TILE).exit_code == 0
    assert listing(tmp_path / "out") == ["r.mean.tif", "r.png", "r.png.aux.xml"]
    with rasterio.open(out) as o, rasterio.open(tmp_path / "out" / "r.mean.tif") as s:
        assert s.driver == "GTiff" and s.dtypes[0] == "float32"
        assert (s.crs, s.transform, s.shape) == (o.crs, o.transform, o.shape)


def test_a_side_raster_is_refused_with_at_model_resolution(make_raster, tmp_path,
                                                           tiny_checkpoint, mean_raster):
    src = make_raster("r.tif", width=70, height=50)
    msg = cli_error(run_cli("translate", tiny_checkpoint, src, "-o", tmp_path / "out" / "r.tif",
                            *TILE, "--at-model-resolution"))
    assert "mean raster" in msg and "--at-model-resolution" in msg
    assert not (tmp_path / "out").exists() and mean_raster.calls == 0
