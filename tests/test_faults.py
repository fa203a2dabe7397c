"""Faults lose nothing: full disks, kills, --overwrite and nonsense input, through the CLI.

The full-disk tests use a real small file system (a tmpfs mounted for the test), as CI
runs as root; where mounting is not allowed they are skipped and the monkeypatched
writer tests below still run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import cli_error, listing, make_checkpoint, run_cli

from geogan.checkpoint import load_checkpoint, read_metadata, save_record
from geogan.contract.names import TRAIN_STATE_NAME
from geogan.fileio import remove_leftovers, temp_path

TINY_TRAIN = ["--crop", "32", "--ngf", "8", "--ndf", "8", "--generator", "resnet_6blocks",
              "--batch-size", "1"]
TILE = ["--tile", "32", "--overlap", "8"]


# the shared CLI helpers of conftest, under this file's short names
_cli, _error = run_cli, cli_error
_listing = listing


@pytest.fixture
def big_raster(make_raster) -> Path:
    """A noisy 4-band raster of about 4 MB: its translation cannot fit in 1 MiB."""
    rng = np.random.default_rng(1)
    data = rng.integers(1, 256, (3, 700, 700), dtype=np.uint8)
    return make_raster("big.tif", data=data, nodata=0)


# --------------------------------------------------------------------------- full disk


def test_translate_onto_a_full_disk_fails_and_leaves_nothing(big_raster, full_disk,
                                                             tiny_checkpoint):
    msg = _error(_cli("translate", tiny_checkpoint, big_raster, "-o", full_disk / "out.tif",
                      *TILE))
    assert "no space left on device writing" in msg and "out.tif" in msg
    assert _listing(full_disk) == []


def test_translate_cog_onto_a_full_disk(big_raster, full_disk, tiny_checkpoint):
    msg = _error(_cli("translate", tiny_checkpoint, big_raster, "-o", full_disk / "out.tif",
                      "--cog", *TILE))
    assert "no space left on device" in msg
    assert _listing(full_disk) == []


def test_overwrite_on_a_full_disk_keeps_the_good_file(make_raster, big_raster, tmp_path,
                                                      full_disk, tiny_checkpoint):
    small = make_raster("small.tif", width=40, height=30)
    out = full_disk / "out.tif"
    assert _cli("translate", tiny_checkpoint, small, "-o", out, *TILE).exit_code == 0
    good = out.read_bytes()
    _error(_cli("translate", tiny_checkpoint, big_raster, "-o", out, "--overwrite", *TILE))
    assert out.read_bytes() == good
    assert _listing(full_disk) == ["out.tif"]


def test_batch_onto_a_full_disk_writes_no_empty_files(big_raster, tmp_path, full_disk,
                                                      tiny_checkpoint):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.tif", "b.tif"):
        (folder / name).write_bytes(big_raster.read_bytes())
    _error(_cli("translate", tiny_checkpoint, folder, "-o", full_disk / "out", *TILE))
    assert not [p for p in full_disk.rglob("*") if p.is_file()]


def test_tile_onto_a_full_disk(big_raster, full_disk):
    msg = _error(_cli("tile", big_raster, "-o", full_disk / "chips", "--size", "64"))
    assert "not enough space" in msg or "no space left" in msg
    assert _listing(full_disk) == []


def test_tile_compressed_onto_a_full_disk_fails_while_writing(big_raster, full_disk):
    """With compression the size is not known up front: the write itself must fail."""
    msg = _error(_cli("tile", big_raster, "-o", full_disk / "chips", "--size", "64",
                      "--compress", "deflate"))
    assert "no space left on device" in msg
    assert f"writing {full_disk / 'chips'}/" in msg  # the user's folder, not a temporary
    assert _listing(full_disk) == []


def test_mosaic_onto_a_full_disk(big_raster, tmp_path, full_disk):
    assert _cli("tile", big_raster, "-o", tmp_path / "chips", "--size", "128").exit_code == 0
    for extra in ([], ["--cog"]):
        msg = _error(_cli("mosaic", tmp_path / "chips", "-o", full_disk / "m.tif", *extra))
        assert "no space left on device" in msg
        assert _listing(full_disk) == []


def test_train_onto_a_full_disk(make_raster, tmp_path, full_disk):
    for d in ("a", "b"):
        for i in range(2):
            make_raster(f"{d}/c{i}.tif", width=40, height=40, seed=i)
    msg = _error(_cli("train", "--a", tmp_path / "a", "--b", tmp_path / "b", "-o",
                      full_disk / "run", "--max-steps", "1", "--ngf", "64", "--ndf", "64",
                      "--crop", "32", "--batch-size", "1"))
    assert "space" in msg and "run" in msg
    assert _listing(full_disk) == []


def test_export_onto_a_full_disk(tmp_path, full_disk):
    ckpt = make_checkpoint(tmp_path / "m.safetensors", arch="resnet_9blocks", ngf=32)
    msg = _error(_cli("export", ckpt, "-o", full_disk / "g.safetensors"))
    assert "no space left on device" in msg
    assert _listing(full_disk) == []


def test_demo_onto_a_full_disk(full_disk):
    msg = _error(_cli("demo", "--pretrained", "-o", full_disk / "demo"))
    assert "no space left on device" in msg or "not enough space" in msg
    assert _listing(full_disk) == []


# --------------------------------------------------------------------------- monkeypatched writers


def test_gdal_errors_at_close_are_errors(make_raster, tmp_path, monkeypatch, tiny_checkpoint):
    """A GDAL error signalled while the writer closes (no exception) fails the write."""
    import logging

    import geogan.sink as sink

    real_open = rasterio.open

    class _Closing:
        def __init__(self, ds):
            self.ds = ds

        def __enter__(self):
            return self.ds.__enter__()

        def __exit__(self, *exc):
            out = self.ds.__exit__(*exc)
            logging.getLogger("rasterio._err").info(
                "GDAL signalled an error: err_no=1, msg='TIFFWriteDirectoryTagData:IO error "
                "writing tag data'")
            return out

    def fake_open(path, mode="r", **kw):
        ds = real_open(path, mode, **kw)
        return _Closing(ds) if mode == "w" else ds

    monkeypatch.setattr(sink.rasterio, "open", fake_open)
    src = make_raster("r.tif", width=40, height=30)
    out = tmp_path / "out" / "r.tif"
    msg = _error(_cli("translate", tiny_checkpoint, src, "-o", out, *TILE))
    assert "TIFFWriteDirectoryTagData" in msg and "r.tif" in msg
    assert _listing(tmp_path / "out") == []


# --------------------------------------------------------------------------- --overwrite


def test_tile_overwrite_never_deletes_a_users_folder(make_raster, tmp_path):
    ortho = make_raster("photos/ortho.tif", width=64, height=64)
    other = make_raster("other.tif", width=64, height=64)
    # the folder holds the user's orthophoto: refused even though it is not an input
    msg = _error(_cli("tile", other, "-o", ortho.parent, "--size", "32", "--overwrite"))
    assert "ortho.tif" in msg
    assert ortho.is_file()
    # an input inside the output: refused
    msg = _error(_cli("tile", ortho, "-o", ortho.parent, "--size", "32", "--overwrite"))
    assert "inside the output folder" in msg and ortho.is_file()


def test_tile_refuses_a_folder_holding_a_vrts_sources(make_raster, tmp_path):
    src = make_raster("sources/part.tif", width=64, height=64)
    vrt = tmp_path / "mosaic.vrt"
    subprocess.run(["gdalbuildvrt", str(vrt), str(src)], check=False, capture_output=True)
    if not vrt.exists():
        with rasterio.open(src) as ds:
            from rasterio.vrt import _boundless_vrt_doc

            vrt.write_text(_boundless_vrt_doc(ds).decode())
    assert _cli("tile", src, "-o", tmp_path / "sources2", "--size", "32").exit_code == 0
    # sources/ has no marker and holds part.tif: --overwrite must not touch it
    msg = _error(_cli("tile", vrt, "-o", src.parent, "--size", "32", "--overwrite"))
    assert "part.tif" in msg and src.is_file()


def test_tile_overwrite_refuses_the_current_folder(make_raster, tmp_path, monkeypatch):
    src = make_raster("r.tif", width=64, height=64)
    monkeypatch.chdir(tmp_path)
    msg = _error(_cli("tile", src, "-o", ".", "--size", "32", "--overwrite"))
    assert "current folder" in msg or "inside the output" in msg
    assert src.is_file()


def test_demo_overwrite_refuses_other_folders_and_its_data(make_raster, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.txt").write_text("precious")
    msg = _error(_cli("demo", "--pretrained", "-o", notes, "--overwrite"))
    assert "thesis.txt" in msg and (notes / "thesis.txt").read_text() == "precious"
    from geogan.demo import default_data_dir

    data = tmp_path / "data"
    data.mkdir()
    for p in default_data_dir().rglob("*"):
        if p.is_file():
            dst = data / p.relative_to(default_data_dir())
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(p.read_bytes())
    msg = _error(_cli("demo", "--pretrained", "--data", data, "-o", data, "--overwrite"))
    assert "inside the output folder" in msg
    assert (data / "naip_2009.tif").is_file()


def test_demo_overwrite_replaces_its_own_folder(tmp_path):
    out = tmp_path / "demo"
    assert _cli("demo", "--pretrained", "-o", out).exit_code == 0
    assert _cli("demo", "--pretrained", "-o", out, "--overwrite").exit_code == 0
    assert (out / "metrics.json").is_file()
    (out / "my_notes.txt").write_text("mine")
    msg = _error(_cli("demo", "--pretrained", "-o", out, "--overwrite"))
    assert "my_notes.txt" in msg and (out / "my_notes.txt").is_file()


def test_train_overwrite_refuses_data_inside_the_run_folder(make_raster, tmp_path):
    for d in ("run/a", "run/b"):
        for i in range(2):
            make_raster(f"{d}/c{i}.tif", width=40, height=40, seed=i)
    (tmp_path / "run" / "losses.csv").write_text("step\n")
    msg = _error(_cli("train", "--a", tmp_path / "run/a", "--b", tmp_path / "run/b", "-o",
                      tmp_path / "run", "--max-steps", "1", "--overwrite", *TINY_TRAIN))
    assert "inside the output folder" in msg
    assert len(list((tmp_path / "run/a").glob("*.tif"))) == 2


def test_batch_overwrite_replaces_only_its_outputs(make_raster, tmp_path, tiny_checkpoint):
    src = make_raster("in/r.tif", width=40, height=30)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    (out / "r.tif").write_bytes(src.read_bytes())
    assert _cli("translate", tiny_checkpoint, src.parent, "-o", out, "--overwrite",
                *TILE).exit_code == 0
    assert (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt", "r.tif"]


# --------------------------------------------------------------------------- kills and leftovers


_KILL_SCRIPT = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from geogan import fileio
    from geogan.train import TrainConfig, train

    kill_at, out, a, b = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    seen = []

    def hook(point, path):
        if path.name.startswith(("model", "train_state")):
            seen.append(f"{point}:{path.name}")
            if len(seen) == kill_at:
                os._exit(77)  # like kill -9: no cleanup, no finally

    fileio.set_fault_hook(hook)
    train(TrainConfig(a=Path(a), b=Path(b), output=out, max_steps=2, save_every=1,
                      preview_every=100, log_every=1, crop=32, ngf=4, ndf=4, batch_size=1,
                      generator="resnet_6blocks", augment=False))
    print("BOUNDARIES", len(seen), *seen)
""")


def _kill_run(kill_at: int, out: Path, a: Path, b: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", _KILL_SCRIPT, str(kill_at), str(out), str(a),
                           str(b)], capture_output=True, text=True, env=env, timeout=300)


def test_a_kill_at_any_checkpoint_boundary_leaves_a_resumable_run(make_raster, tmp_path):
    from geogan.train import resume_config, train

    for d in ("a", "b"):
        for i in range(2):
            make_raster(f"{d}/c{i}.tif", width=40, height=40, seed=i + (d == "b"))
    a, b = tmp_path / "a", tmp_path / "b"
    ref = _kill_run(0, tmp_path / "ref", a, b)
    assert ref.returncode == 0, ref.stderr
    seen = ref.stdout.split("BOUNDARIES")[1].split()
    n = int(seen[0])
    per_save = n // 2
    assert per_save >= 6  # the pending state, the model and the commit, each with renames
    ref_tensors, _ = load_checkpoint(tmp_path / "ref")
    # every boundary of the second save (the first leaves no model to resume from)
    for k in range(per_save + 1, n + 1):
        out = tmp_path / f"killed_{k}"
        killed = _kill_run(k, out, a, b)
        assert killed.returncode == 77, (k, killed.stderr)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as the killed run: the same sums in the same order
        try:
            train(resume_config(out))
        finally:
            torch.set_num_threads(threads)
        assert read_metadata(out)["step"] == 2, seen[k]
        assert read_metadata(out / TRAIN_STATE_NAME)["step"] == 2, seen[k]
        tensors, _ = load_checkpoint(out)
        assert all(torch.equal(tensors[key], ref_tensors[key]) for key in ref_tensors), seen[k]
        names = [p.name for p in out.iterdir()]
        assert not [nm for nm in names if nm.startswith(".") or "pending" in nm], (k, names)


def test_leftovers_of_dead_processes_are_removed_and_live_ones_kept(make_raster, tmp_path,
                                                                    tiny_checkpoint):
    src = make_raster("r.tif", width=40, height=30)
    out = tmp_path / "out" / "r.tif"
    out.parent.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = out.with_name(f".r.tif.{dead}.{uuid.uuid4().hex[:8]}.tmp.tif")
    stale_part = out.with_name(f".r.tif.{dead}.{uuid.uuid4().hex[:8]}.tmp.part.tif")
    live = temp_path(out)  # this process is alive: its temporary must stay
    for p in (stale, stale_part, live):
        p.write_bytes(b"half")
    assert _cli("translate", tiny_checkpoint, src, "-o", out, *TILE).exit_code == 0
    assert not stale.exists() and not stale_part.exists() and live.exists()
    assert remove_leftovers(out) == []


def test_skip_existing_redoes_nothing_but_refuses_a_broken_output(make_raster, tmp_path,
                                                                  tiny_checkpoint):
    for name in ("a", "b"):
        make_raster(f"in/{name}.tif", width=40, height=30)
    out = tmp_path / "out"
    assert _cli("translate", tiny_checkpoint, tmp_path / "in", "-o", out, *TILE).exit_code == 0
    (out / "b.tif").write_bytes((out / "b.tif").read_bytes()[:300])  # a torn 0.1 output
    msg = _error(_cli("translate", tiny_checkpoint, tmp_path / "in", "-o", out, "--skip-existing",
                      *TILE))
    assert "b.tif exists but is not a complete raster" in msg


# --------------------------------------------------------------------------- nonsense, tracebacks


def test_nan_generator_writes_nothing(make_raster, tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.safetensors", fill=float("nan"))
    src = make_raster("r.tif", width=40, height=30)
    msg = _error(_cli("translate", ckpt, src, "-o", tmp_path / "out.tif", "--precision",
                      "fp32", *TILE))
    assert "NaN" in msg and "--precision fp32" not in msg  # not offered on an fp32 run
    assert not (tmp_path / "out.tif").exists()


def test_tile_larger_than_the_raster_is_clamped(make_raster, tmp_path, tiny_checkpoint):
    src = make_raster("r.tif", width=41, height=30)
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    assert _cli("translate", tiny_checkpoint, src, "-o", a, "--tile", "44", "--overlap", "0"
                ).exit_code == 0
    assert _cli("translate", tiny_checkpoint, src, "-o", b, "--tile", "100000", "--overlap", "0"
                ).exit_code == 0
    with rasterio.open(a) as x, rasterio.open(b) as y:
        assert np.array_equal(x.read(), y.read())  # one 44 px window either way


def test_unsupported_output_suffix_is_refused(make_raster, tmp_path, tiny_checkpoint):
    src = make_raster("r.tif", width=40, height=30)
    # .png and .jpg are written by GDAL's drivers (for plain pictures); other suffixes
    # are refused instead of becoming a folder of that name
    msg = _error(_cli("translate", tiny_checkpoint, src, "-o", tmp_path / "out.webp", *TILE))
    assert "out.webp" in msg and ".tif" in msg
    assert not (tmp_path / "out.webp").exists()


def test_resume_works_from_another_folder(make_raster, tmp_path, monkeypatch):
    for d in ("a", "b"):
        for i in range(2):
            make_raster(f"data/{d}/c{i}.tif", width=40, height=40, seed=i)
    monkeypatch.chdir(tmp_path / "data")
    assert _cli("train", "--a", "a", "--b", "b", "-o", "run", "--max-steps", "1",
                *TINY_TRAIN).exit_code == 0
    monkeypatch.chdir(tmp_path)
    result = _cli("train", "--resume", "-o", "data/run", "--max-steps", "2")
    assert result.exit_code == 0, result.output
    assert read_metadata(tmp_path / "data/run")["step"] == 2


def test_checkpoint_metadata_of_the_wrong_structure(make_raster, tmp_path):
    src = make_raster("r.tif", width=40, height=30)
    ckpt = tmp_path / "m.safetensors"
    save_record(ckpt, {"x": torch.zeros(1)}, {"model": "cyclegan", "generators": ["a2b"],
                                                  "domains": 3})
    msg = _error(_cli("translate", ckpt, src, "-o", tmp_path / "o.tif", *TILE))
    assert "does not describe a geogan model" in msg


def test_evaluate_on_a_corrupt_raster(make_raster, tmp_path):
    good = make_raster("good.tif", width=40, height=30)
    bad = tmp_path / "bad.tif"
    bad.write_bytes(good.read_bytes()[:200])
    msg = _error(_cli("evaluate", bad, good))
    assert "bad.tif" in msg


def test_crs_at_the_antimeridian_is_refused(make_raster, tmp_path):
    from rasterio.transform import from_origin
    from rasterio.warp import transform as warp_points

    x, y = warp_points("EPSG:4326", "EPSG:32660", [180.0], [10.0])
    src = make_raster("anti.tif", width=100, height=100, crs="EPSG:32660", nodata=0,
                      transform=from_origin(x[0] - 1500, y[0] + 1500, 30, 30))
    for crs in ("EPSG:3857", "EPSG:4326"):
        msg = _error(_cli("tile", src, "-o", tmp_path / "c", "--crs", crs, "--size", "32"))
        assert "antimeridian" in msg or "cannot be reprojected" in msg
    assert not (tmp_path / "c").exists()


def test_all_nodata_input_is_warned_about(make_raster, tmp_path, caplog, tiny_checkpoint):
    src = make_raster("r.tif", data=np.zeros((3, 30, 40), np.uint8), nodata=0)
    # with whole-raster statistics (the default) there is nothing to estimate them from
    msg = _error(_cli("translate", tiny_checkpoint, src, "-o", tmp_path / "o.tif", *TILE))
    assert "no valid pixels" in msg and not (tmp_path / "o.tif").exists()
    result = _cli("translate", tiny_checkpoint, src, "-o", tmp_path / "o.tif", "--norm", "window",
                  *TILE)
    assert result.exit_code == 0
    assert "only nodata" in caplog.text


def test_unexpected_errors_are_one_line(make_raster, tmp_path, monkeypatch, tiny_checkpoint):
    import geogan.translate as tr

    def boom(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(tr, "load_generator", boom)
    src = make_raster("r.tif", width=40, height=30)
    msg = _error(_cli("translate", tiny_checkpoint, src, "-o", tmp_path / "o.tif", *TILE))
    assert "out of memory" in msg and "--tile" in msg


def test_write_error_messages_name_the_file_and_cause(tmp_path):
    import errno

    from geogan.fileio import write_error

    full = write_error(tmp_path / "x.tif", OSError(errno.ENOSPC, "No space left on device"))
    assert str(full).startswith(f"no space left on device writing {tmp_path / 'x.tif'}")
    denied = write_error(tmp_path / "x.tif", OSError(errno.EACCES, "Permission denied"))
    assert "permission denied" in str(denied) and "writable" in str(denied)
    assert "\n" not in str(full)


def test_advice_is_true(make_raster, tmp_path, tiny_checkpoint):
    no_crs = make_raster("nocrs.tif", width=40, height=30, crs=None)
    msg = _error(_cli("translate", tiny_checkpoint, no_crs, "-o", tmp_path / "a.tif", *TILE))
    assert "has no CRS" in msg and "--allow-no-crs" not in msg  # translate has no such option
    msg = _error(_cli("evaluate", no_crs, no_crs))
    assert "--allow-no-crs" not in msg
    wide = make_raster("u16.tif", width=40, height=30, dtype="uint16")
    msg = _error(_cli("translate", tiny_checkpoint, wide, "-o", tmp_path / "b.tif", *TILE))
    assert "-ot Byte" in msg
