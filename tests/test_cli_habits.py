"""GDAL/rio habits on the command line: --json results, geogan info, -v levels, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_checkpoint

from geogan.cli import main

TILE = ["--tile", "32", "--overlap", "8"]


def _cli(*args: object):
    return CliRunner().invoke(main, ["--progress", "none", *map(str, args)])


def test_every_result_command_prints_json(make_raster, tmp_path, tiny_checkpoint):
    src = make_raster("r.tif", width=64, height=48, nodata=0)
    tiled = _cli("tile", src, "-o", tmp_path / "chips", "--size", "32", "--json")
    assert tiled.exit_code == 0, tiled.output
    data = json.loads(tiled.stdout)
    assert data["chips"] == len(list((tmp_path / "chips").glob("*.tif"))) == 4
    assert data["index"] == str(tmp_path / "chips" / "index.gpkg")
    mosaic = json.loads(_cli("mosaic", tmp_path / "chips", "-o", tmp_path / "m.tif",
                             "--json").stdout)
    assert mosaic == {"output": str(tmp_path / "m.tif")}
    out = json.loads(_cli("translate", tiny_checkpoint, src, "-o", tmp_path / "t.tif", "--json",
                          *TILE).stdout)
    assert out == {"outputs": [str(tmp_path / "t.tif")]} and (tmp_path / "t.tif").is_file()
    exported = json.loads(_cli("export", tiny_checkpoint, "-o", tmp_path / "g.safetensors",
                               "--json").stdout)
    assert exported["outputs"][0] == str(tmp_path / "g.safetensors")
    plain = _cli("mosaic", tmp_path / "chips", "-o", tmp_path / "m2.tif")
    assert plain.stdout.strip() == f"Wrote {tmp_path / 'm2.tif'}"


def test_info_describes_a_checkpoint(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.safetensors", names=("dry", "wet"), meta={"step": 7})
    result = _cli("info", ckpt, "--json")
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)["items"]
    assert item["kind"] == "checkpoint" and item["model"] == "cyclegan" and item["step"] == 7
    g = item["generators"]["a2b"]
    assert g["arch"] == "resnet_6blocks" and g["input"]["bands"] == 3
    assert g["input"]["name"] == "dry" and g["output"]["name"] == "wet"
    assert g["input"]["dtype"] == "uint8" and "window" in g["norm_modes"]
    text = _cli("info", ckpt).stdout
    assert "a2b: resnet_6blocks dry (3 x uint8) -> wet (3 x uint8)" in text


def test_info_describes_a_raster_and_whether_it_fits(make_raster, tmp_path, tiny_checkpoint):
    four = make_raster("four.tif", width=20, height=10, count=4, crs="EPSG:4326", nodata=0)
    three = make_raster("three.tif", width=20, height=10, count=3)
    result = _cli("info", four, three, "--checkpoint", tiny_checkpoint, "--json")
    assert result.exit_code == 0, result.output
    a, b = json.loads(result.stdout)["items"]
    assert (a["width"], a["height"], a["count"], a["crs"]) == (20, 10, 4, "EPSG:4326")
    assert a["geographic"] is True and a["nodata"] == 0
    assert a["fit"]["fits"] is False and a["fit"]["option"] == "--bands 1,2,3"
    assert b["fit"] == {"fits": True, "reason": None, "bands": "1,2,3", "option": None,
                        "georeferenced": True}
    ok = json.loads(_cli("info", four, "--checkpoint", tiny_checkpoint, "--bands", "2,3,4",
                         "--json").stdout)["items"][0]["fit"]
    assert ok["fits"] is True and ok["option"] == "--bands 2,3,4"


def test_info_text_gives_extent_and_units(make_raster):
    import math
    import re

    from conftest import GEOGRAPHIC

    projected = make_raster("p.tif", width=67, height=45)  # 5 m pixels, origin 485900, 5209247
    text = _cli("info", projected).stdout
    assert "CRS EPSG:26914, pixel 5 x 5 m\n" in text
    assert "extent: x 485900 to 486235, y 5209022 to 5209247 m (335 x 225 m)" in text
    geographic = make_raster("g.tif", width=20, height=10, crs=GEOGRAPHIC)  # 0.00081 degrees
    result = _cli("info", geographic)
    assert result.exit_code == 0, result.output
    found = re.search(r"pixel 0.00081 x 0.00081 degrees \(about ([\d.]+) x ([\d.]+) m\)",
                      result.stdout)
    assert found, result.stdout
    lat = math.radians(-3.5 - 10 * 0.00081 / 2)  # metres per degree near the equator
    assert float(found[1]) == pytest.approx(0.00081 * 111320 * math.cos(lat), rel=2e-3)
    assert float(found[2]) == pytest.approx(0.00081 * 110580, rel=2e-3)
    assert "extent: x -73.25 to -73.2338, y -3.5081 to -3.5 degrees (about" in result.stdout
    (item,) = json.loads(_cli("info", geographic, "--json").stdout)["items"]
    assert item["units"] == "degrees" and item["pixel_size_m"][1] == pytest.approx(89.6, abs=0.1)


def test_verbosity_levels(make_raster, tmp_path, caplog):
    src = make_raster("r.tif", width=64, height=48)
    import logging

    for flags, shown in (([], False), (["-v"], True)):
        caplog.clear()
        out = tmp_path / f"chips{len(flags)}"
        result = CliRunner().invoke(main, [*flags, "--progress", "none", "tile", str(src), "-o",
                                           str(out), "--size", "32"])
        assert result.exit_code == 0, result.output
        infos = [r for r in caplog.records if r.name.startswith("geogan")
                 and r.levelno == logging.INFO]
        assert bool(infos) is shown, flags


_LIBRARY_ERROR = """
import logging, sys
import geogan.cli.info
from geogan.cli import main

def log_probe(**kwargs) -> None:  # stands in for info's work
    logging.getLogger("rasterio._env").error("_tiffSeekProc: No space left on device.")
    logging.getLogger("geogan.probe").warning("geogan's own warning")

geogan.cli.info.command.callback = log_probe
sys.argv = ["geogan", *sys.argv[1:], "info", sys.executable]
main()
"""


@pytest.mark.parametrize("flags, library_shown", [([], False), (["-v"], False),
                                                  (["-vv"], True)])
def test_other_libraries_errors_only_from_vv(flags, library_shown):
    """GDAL's own error lines (logged by rasterio) do not reach the user beside geogan's
    one-line error; geogan's warnings do; -vv shows everything."""
    proc = subprocess.run([sys.executable, "-c", _LIBRARY_ERROR, *flags], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "geogan's own warning" in proc.stderr
    assert ("_tiffSeekProc" in proc.stderr) is library_shown, proc.stderr


_LIBTIFF_ERROR = """
import ctypes, sys
from geogan.cli._quiet import silence_libtiff
import rasterio
libs = silence_libtiff() if sys.argv[1] == "silence" else []
maps = open("/proc/self/maps").read().split()
lib = next(p for p in maps if p.rsplit("/", 1)[-1].startswith("libtiff"))
ctypes.CDLL(lib).TIFFError(b"_tiffWriteProc", b"No space left on device")
print(len(libs))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="libtiff found through /proc")
@pytest.mark.parametrize("mode", ["silence", "leave"])
def test_libtiff_prints_nothing_once_silenced(mode):
    """libtiff's process-wide error handler prints I/O failures straight to stderr (seen on
    a full disk beside geogan's one-line error); the CLI sets it to none."""
    proc = subprocess.run([sys.executable, "-c", _LIBTIFF_ERROR, mode], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert ("No space left" in proc.stderr) is (mode == "leave"), proc.stderr
    assert (int(proc.stdout) >= 1) is (mode == "silence")


_SLOW_GENERATOR = """
import sys
from geogan.cli import main
sys.argv = ["geogan", "--progress", "json", "translate", *sys.argv[1:]]
main()
"""


def test_sigterm_exits_143_and_leaves_nothing(make_raster, tmp_path):
    rng = np.random.default_rng(0)
    src = make_raster("big.tif", data=rng.integers(1, 255, (3, 1200, 1200), dtype=np.uint8))
    ckpt = make_checkpoint(tmp_path / "m.safetensors", ngf=16)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_GENERATOR, str(ckpt), str(src), "-o",
                             str(out / "t.tif"), "--tile", "64", "--overlap", "8"],
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.stderr is not None
    for line in proc.stderr:  # wait for the first progress line: the job is running
        if line.startswith("{") and json.loads(line).get("done", 0) > 0:
            break
    else:
        pytest.fail(f"no progress line; exit {proc.wait()}")
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 143, rest
    assert not out.exists() or not any(out.iterdir())


def test_files_from_and_tile_folders_and_globs(make_raster, tmp_path, tiny_checkpoint):
    a = make_raster("in/a.tif", width=32, height=32)
    b = make_raster("in/b.tif", width=32, height=32, seed=1)
    c = make_raster("more/c.tif", width=32, height=32, seed=2)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# a batch\n{b}\n\n{c}\n")
    result = _cli("tile", tmp_path / "in" / "*.tif", "-o", tmp_path / "g", "--size", "32")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "g").glob("*.tif")) == [
        "a__c000000_r000000.tif", "b__c000000_r000000.tif"]
    result = _cli("tile", a, "--files-from", listing, "-o", tmp_path / "f", "--size", "32")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "f").glob("*.tif"))) == 3
    out = json.loads(_cli("translate", tiny_checkpoint, "--files-from", listing, "-o",
                          tmp_path / "t", "--json", *TILE).stdout)["outputs"]
    assert out == [str(tmp_path / "t" / "b.tif"), str(tmp_path / "t" / "c.tif")]
    assert _cli("mosaic", "--files-from", listing, "-o", tmp_path / "m.tif").exit_code == 0
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    result = _cli("tile", "--files-from", empty, "-o", tmp_path / "x")
    assert result.exit_code != 0 and "lists no path" in result.stderr


def test_creation_options_and_codecs(make_raster, tmp_path, tiny_checkpoint):
    import rasterio

    src = make_raster("r.tif", width=64, height=48, nodata=0)
    out = tmp_path / "jpeg.tif"
    result = _cli("translate", tiny_checkpoint, src, "-o", out, "--compress", "jpeg", "--co",
                  "JPEG_QUALITY=80", "--co", "BLOCKXSIZE=128", "--co", "BLOCKYSIZE=128", "-j",
                  "1", *TILE)
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as ds:
        assert ds.compression.name == "jpeg" and ds.block_shapes[0] == (128, 128)
    result = _cli("translate", tiny_checkpoint, src, "-o", tmp_path / "cog.tif", "--cog", "--co",
                  "BLOCKSIZE=256", "--compress", "deflate", *TILE)
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "cog.tif") as ds:
        assert ds.compression.name == "deflate" and ds.block_shapes[0] == (256, 256)
    result = _cli("tile", src, "-o", tmp_path / "chips", "--size", "32", "--compress", "lzw",
                  "--co", "PREDICTOR=1")
    assert result.exit_code == 0, result.output
    with rasterio.open(next((tmp_path / "chips").glob("*.tif"))) as ds:
        assert ds.compression.name == "lzw" and ds.tags(ns="IMAGE_STRUCTURE").get(
            "PREDICTOR", "1") == "1"
    for bad, what in ((["--co", "FOO=bar"], "FOO"), (["--co", "COMPRESS=bogus"], "bogus"),
                      (["--co", "QUALITY"], "KEY=VALUE")):
        result = _cli("translate", tiny_checkpoint, src, "-o", tmp_path / "bad.tif", *bad, *TILE)
        assert result.exit_code != 0 and what in result.stderr, result.output
        assert not (tmp_path / "bad.tif").exists()


def test_gdal_cache_from_the_environment_wins(monkeypatch):
    from geogan.rasterio_io import gdal_env

    monkeypatch.setenv("GDAL_CACHEMAX", "77")
    env = gdal_env(GDAL_CACHEMAX=128, GDAL_NUM_THREADS=2)
    assert "GDAL_CACHEMAX" not in env.options and env.options["GDAL_NUM_THREADS"] == 2


_RANGE_SERVER = """
import http.server, sys
from pathlib import Path

folder, log = Path(sys.argv[1]), Path(sys.argv[2])


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _serve(self, send):
        path = folder / self.path.lstrip("/").split("?")[0]
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start, end = 0, len(data) - 1
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start, end = int(a), min(int(b), len(data) - 1) if b else len(data) - 1
        self.send_response(206 if rng else 200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if send:
            self.wfile.write(data[start:end + 1])
            with open(log, "a") as fh:
                fh.write(f"{end - start + 1}\\n")

    def do_HEAD(self):
        self._serve(False)

    def do_GET(self):
        self._serve(True)


httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(httpd.server_address[1], flush=True)
httpd.serve_forever()
"""


class _RangeServer:
    """A tiny HTTP server with Range support on 127.0.0.1, in its own process (GDAL keeps
    the GIL while it reads a URL), logging the bytes it sends."""

    def __init__(self, folder: Path, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "-c", _RANGE_SERVER, str(folder),
                                      str(log)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    @property
    def sent(self) -> int:
        if not self.log.exists():
            return 0
        return sum(int(x) for x in self.log.read_text().split())

    def reset(self) -> None:
        self.log.unlink(missing_ok=True)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def test_urls_and_vsi_paths_are_inputs(make_raster, tmp_path, monkeypatch, tiny_checkpoint):
    import zipfile

    import rasterio
    from rasterio.shutil import copy as rio_copy

    monkeypatch.setenv("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    rng = np.random.default_rng(0)
    plain = make_raster("plain.tif", data=rng.integers(1, 255, (3, 256, 256), dtype=np.uint8))
    served = tmp_path / "www"
    served.mkdir()
    cog = served / "ortho.tif"
    rio_copy(plain, cog, driver="COG", blocksize=128, compress="NONE", overviews="NONE")
    server = _RangeServer(served, tmp_path / "sent.log")
    try:
        url = f"http://127.0.0.1:{server.port}/ortho.tif"
        info = _cli("info", url, "--json")
        assert info.exit_code == 0, info.output
        item = json.loads(info.stdout)["items"][0]
        assert (item["width"], item["height"]) == (256, 256)
        assert server.sent < cog.stat().st_size / 4  # the header, not the pixels
        server.reset()
        result = _cli("tile", url, "-o", tmp_path / "chips", "--size", "128")
        assert result.exit_code == 0, result.output
        assert len(list((tmp_path / "chips").glob("ortho__*.tif"))) == 4
        local = _cli("translate", tiny_checkpoint, cog, "-o", tmp_path / "local.tif", "--tile",
                     "128")
        remote = _cli("translate", tiny_checkpoint, url, "-o", tmp_path / "remote.tif", "--tile",
                      "128")
        assert local.exit_code == 0 and remote.exit_code == 0, remote.output
    finally:
        server.close()
    with rasterio.open(tmp_path / "local.tif") as x, rasterio.open(tmp_path / "remote.tif") as y:
        assert np.array_equal(x.read(), y.read()) and x.transform == y.transform
    # a zip member, as GDAL names it
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as zf:
        zf.write(plain, "inside/plain.tif")
    member = f"/vsizip/{tmp_path / 'photos.zip'}/inside/plain.tif"
    result = _cli("translate", tiny_checkpoint, member, "-o", tmp_path / "zipped.tif", "--tile",
                  "128")
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "zipped.tif") as z, rasterio.open(tmp_path / "local.tif") as x:
        assert z.shape == x.shape and z.crs == x.crs
    missing = _cli("translate", tiny_checkpoint, "/vsizip/nowhere.zip/a.tif", "-o",
                   tmp_path / "n.tif")
    assert missing.exit_code != 0 and "nowhere.zip" in missing.stderr


def test_translate_reads_and_writes_plain_pictures(tmp_path, caplog, tiny_checkpoint):
    import rasterio
    from PIL import Image

    rng = np.random.default_rng(0)
    picture = tmp_path / "photo.png"
    Image.fromarray(rng.integers(1, 255, (40, 52, 3), dtype=np.uint8)).save(picture)
    for name, driver in (("out.png", "PNG"), ("out.jpg", "JPEG"), ("out.tif", "GTiff")):
        result = _cli("translate", tiny_checkpoint, picture, "-o", tmp_path / name, *TILE)
        assert result.exit_code == 0, result.output
        with rasterio.open(tmp_path / name) as ds:
            assert (ds.driver, ds.width, ds.height, ds.count) == (driver, 52, 40, 3)
            assert ds.crs is None
    assert "has no georeference" in caplog.text
    with rasterio.open(tmp_path / "out.png") as a, rasterio.open(tmp_path / "out.tif") as b:
        assert np.array_equal(a.read(), b.read())  # PNG is lossless: the same pixels
    result = _cli("translate", tiny_checkpoint, picture, "-o", tmp_path / "x.png", "--cog", *TILE)
    assert result.exit_code != 0 and "--cog writes GeoTIFF" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_a_rejected_creation_option_fails_in_the_real_command(make_raster, tmp_path,
                                                              tiny_checkpoint):
    """Outside the test runner's log capture too (GDAL only warns about such options)."""
    src = make_raster("r.tif", width=40, height=30)
    out = tmp_path / "o.tif"
    done = subprocess.run([sys.executable, "-m", "geogan", "--progress", "none", "translate",
                           str(tiny_checkpoint), str(src), "-o", str(out), "--co", "FOO=bar",
                           *TILE],
                          capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert "rejects --co FOO=bar" in done.stderr and not out.exists()
    assert "Traceback" not in done.stderr and "Warning" not in done.stderr
