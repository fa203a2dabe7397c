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

from geogan.cli import main

TILE = ["--tile", "32", "--overlap", "8"]


def _cli(*args: object):
    return CliRunner().invoke(main, ["--progress", "none", *map(str, args)])


def _error(result) -> str:
    """The one ``Error:`` line of a failed command (warnings may come before it)."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden temporaries too) with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def write_vrt(path: Path, like: Path, bands: int | None = None, sources: bool = True,
              width: int | None = None, height: int | None = None) -> Path:
    """A VRT written by hand on ``like``'s grid: ``bands`` bands (default: ``like``'s), each
    reading a band of ``like`` (relative to the VRT), or empty without ``sources``."""
    with rasterio.open(like) as ds:
        srs, count, dtype = ds.crs.to_wkt(), ds.count, ds.dtypes[0]
        gt = ", ".join(repr(v) for v in ds.transform.to_gdal())
        width, height = width or ds.width, height or ds.height
    rel = escape(os.path.relpath(like, path.parent))
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
