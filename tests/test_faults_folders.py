"""Faults lose nothing, round two (#21): run and output folders through the CLI.

A new run over an old one replaces it only at its first checkpoint; a kill between the
two renames of a folder swap loses nothing; one process at a time per output folder;
what --overwrite may replace; damaged or non-finite runs. Kills are simulated at the
write boundaries of :mod:`geogan.fileio.faults` (``os._exit``: no cleanup, like
``kill -9``) or are real SIGKILLs of a helper holding a lock; two processes meet through
a pipe handshake, never a sleep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import rasterio
import torch
from conftest import cli_error, run_cli

from geogan.checkpoint import read_metadata
from geogan.contract import names
from geogan.fileio import lock_path

torch.set_num_threads(1)

TINY = ["--crop", "32", "--ngf", "8", "--ndf", "8", "--generator", "resnet_6blocks",
        "--batch-size", "1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


# the shared CLI helpers of conftest, under this file's short names
_cli, _error = run_cli, cli_error


def _ok(result) -> None:
    assert result.exit_code == 0, result.output


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (sub-folders by their files)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _hidden(folder: Path) -> list[str]:
    """Hidden entries: temporaries, and lock files (removed when their job ends)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _temporaries(folder: Path) -> list[str]:
    """Hidden entries but lock files (a killed job's may stay: the kernel released it)."""
    return [n for n in _hidden(folder) if not names.is_lock_name(n)]


@pytest.fixture
def data(make_raster, tmp_path: Path) -> tuple[Path, Path]:
    for d in ("a", "b"):
        for i in range(2):
            make_raster(f"{d}/c{i}.tif", width=40, height=40, seed=i + (d == "b"))
    return tmp_path / "a", tmp_path / "b"


@pytest.fixture
def old_run(data, tmp_path: Path) -> Path:
    """A finished run of two steps in ``runs/run`` (runs/ holds nothing else)."""
    out = tmp_path / "runs" / "run"
    a, b = data
    _ok(_cli("train", "--a", a, "--b", b, "-o", out, "--max-steps", "2", "--log-every", "1",
             *TINY))
    return out


# A CLI run in its own process, killed (os._exit: no cleanup, no finally) at the write
# boundary POINT of the output named NAME.
_KILLED_CLI = textwrap.dedent("""
    import os, sys
    import torch
    torch.set_num_threads(1)
    from geogan import fileio
    from geogan.cli import main

    point, name = sys.argv[1], sys.argv[2]

    def hook(p, path):
        if p == point and path.name == name:
            os._exit(77)

    fileio.set_fault_hook(hook)
    main(["--progress", "none", *sys.argv[3:]])
""")


def _killed_cli(point: str, name: str, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _KILLED_CLI, point, name, *map(str, args)],
                          capture_output=True, text=True, env=ENV, timeout=600)


# --------------------------------------------------------------------------- 1: --overwrite


def test_train_overwrite_failing_before_a_checkpoint_keeps_the_old_run(data, old_run):
    a, b = data
    before = _snapshot(old_run)
    msg = _error(_cli("train", "--a", a, "--b", b, "-o", old_run, "--max-steps", "3",
                      "--lr", "1e30", "--overwrite", *TINY))
    assert "non-finite" in msg and f"the run in {old_run} was kept" in msg
    assert _snapshot(old_run) == before
    assert _hidden(old_run.parent) == []  # the new run's hidden folder is gone too
    # a new run that gets to its first checkpoint does replace it
    _ok(_cli("train", "--a", a, "--b", b, "-o", old_run, "--max-steps", "1", "--overwrite",
             *TINY))
    assert read_metadata(old_run)["step"] == 1
    assert _hidden(old_run.parent) == [] and _hidden(old_run) == []


def test_train_overwrite_killed_before_its_first_checkpoint_keeps_a_resumable_run(data,
                                                                                 old_run):
    a, b = data
    before = _snapshot(old_run)
    killed = _killed_cli("before-rename", names.RUN_CHECKPOINT_NAME, "train", "--a", a,
                         "--b", b, "-o", old_run, "--max-steps", "3", "--overwrite", *TINY)
    assert killed.returncode == 77, killed.stderr
    assert _snapshot(old_run) == before
    assert [names.temp_of(n) for n in _temporaries(old_run.parent)] == ["run"]  # the new one
    _ok(_cli("train", "--resume", "-o", old_run, "--max-steps", "3"))
    assert read_metadata(old_run)["step"] == 3
    assert _hidden(old_run.parent) == [] and _hidden(old_run) == []


def test_train_overwrite_killed_between_the_swaps_renames_keeps_the_old_run(data, old_run):
    a, b = data
    before = _snapshot(old_run)
    killed = _killed_cli("between-renames", "run", "train", "--a", a, "--b", b, "-o",
                         old_run, "--max-steps", "3", "--save-every", "1", "--overwrite",
                         *TINY)
    assert killed.returncode == 77, killed.stderr
    assert not old_run.exists()  # moved aside, the new one not yet in its place
    assert sorted(n.rsplit(".", 1)[1] for n in _temporaries(old_run.parent)) == ["old", "tmp"]
    # the next job puts the old run back (the killed one never committed) and resumes it
    _ok(_cli("train", "--resume", "-o", old_run, "--max-steps", "3"))
    assert read_metadata(old_run)["step"] == 3
    assert _hidden(old_run.parent) == []
    resumed = _snapshot(old_run)
    assert resumed["losses.csv"].startswith(before["losses.csv"])  # its own log, continued


# --------------------------------------------------------------------------- 3: the swap


def test_tile_killed_between_the_two_renames_loses_nothing(make_raster, tmp_path):
    first = make_raster("first.tif", width=64, height=64)
    second = make_raster("second.tif", width=64, height=64, seed=3)
    chips = tmp_path / "out" / "chips"
    _ok(_cli("tile", first, "-o", chips, "--size", "32"))
    before = _snapshot(chips)
    killed = _killed_cli("between-renames", "chips", "tile", second, "-o", chips, "--size",
                         "32", "--overwrite")
    assert killed.returncode == 77, killed.stderr
    assert not chips.exists()
    assert sorted(n.rsplit(".", 1)[1] for n in _temporaries(chips.parent)) == ["old", "tmp"]
    # the next job over it puts the old chips back, then refuses as it would have
    msg = _error(_cli("tile", second, "-o", chips, "--size", "32"))
    assert "already exists" in msg and "--overwrite" in msg
    assert _snapshot(chips) == before and _hidden(chips.parent) == []
    _ok(_cli("tile", second, "-o", chips, "--size", "32", "--overwrite"))
    assert sorted(p.name.split("__")[0] for p in chips.glob("*.tif")) == ["second"] * 4
    assert _hidden(chips.parent) == []


# --------------------------------------------------------------------------- 4: one at a time


_HOLDER = textwrap.dedent("""
    import sys
    from geogan.fileio import output_lock

    with output_lock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.readline()
""")


def _hold_lock(output: Path) -> subprocess.Popen:
    """A process holding ``output``'s lock until its stdin is closed."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(output)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
    return proc


def test_a_run_folder_in_use_is_refused_until_its_holder_exits(data, old_run, monkeypatch):
    a, b = data
    before = _snapshot(old_run)
    holder = _hold_lock(old_run)
    try:
        in_use = f"{old_run} is in use by another geogan process (pid {holder.pid})"
        msg = _error(_cli("train", "--resume", "-o", old_run, "--max-steps", "3"))
        assert in_use in msg and "wait for it or choose another output" in msg
        msg = _error(_cli("train", "--a", a, "--b", b, "-o", old_run, "--max-steps", "1",
                          "--overwrite", *TINY))
        assert in_use in msg
        # another spelling of the same folder is the same folder
        monkeypatch.chdir(old_run.parent)
        msg = _error(_cli("train", "--resume", "-o", "./run/../run", "--max-steps", "3"))
        assert f"(pid {holder.pid})" in msg
        assert _snapshot(old_run) == before
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    assert not lock_path(old_run).exists()  # released and removed by its holder
    _ok(_cli("train", "--resume", "-o", old_run, "--max-steps", "3"))
    assert read_metadata(old_run)["step"] == 3
    assert _hidden(old_run.parent) == []


def test_a_new_output_folder_in_use_is_refused_and_left_uncreated(data, make_raster,
                                                                   tmp_path):
    a, b = data
    src = make_raster("r.tif", width=64, height=64)
    run, chips = tmp_path / "new" / "run", tmp_path / "new" / "chips"
    holders = [_hold_lock(run), _hold_lock(chips)]
    try:
        msg = _error(_cli("train", "--a", a, "--b", b, "-o", run, "--max-steps", "1", *TINY))
        assert f"{run} is in use by another geogan process (pid {holders[0].pid})" in msg
        msg = _error(_cli("tile", src, "-o", chips, "--size", "32"))
        assert f"{chips} is in use by another geogan process (pid {holders[1].pid})" in msg
        assert not run.exists() and not chips.exists()
    finally:
        for h in holders:
            h.stdin.close()
            h.wait(timeout=60)
    _ok(_cli("tile", src, "-o", chips, "--size", "32"))
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["chips"]


def test_a_lock_held_by_a_killed_process_does_not_block(data, tmp_path):
    a, b = data
    out = tmp_path / "run"
    holder = _hold_lock(out)
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(timeout=60) == -signal.SIGKILL
    assert lock_path(out).exists()  # the file may stay; the kernel released the lock
    _ok(_cli("train", "--a", a, "--b", b, "-o", out, "--max-steps", "1", *TINY))
    assert read_metadata(out)["step"] == 1
    assert not lock_path(out).exists() and _hidden(tmp_path) == []


# --------------------------------------------------------------------------- 9: leftovers


# safetensors (0.5 on) saves through a temporary ``.tmpXXXXXX`` beside the file it writes;
# this stand-in writes one there and is killed, as a kill -9 in the middle of a save.
_KILLED_SAVE = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    import safetensors.torch
    from geogan.cli import main

    real, calls = safetensors.torch.save_file, []

    def save_file(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == int(sys.argv[1]):
            Path(filename).parent.joinpath(".tmpAb12Cd").write_bytes(b"x" * 4096)
            os._exit(77)
        real(tensors, filename, metadata=metadata)

    safetensors.torch.save_file = save_file
    main(["--progress", "none", *sys.argv[2:]])
""")


def test_a_save_killed_inside_safetensors_leaves_no_temporary(data, tmp_path):
    a, b = data
    out = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", _KILLED_SAVE, "3", "train", "--a", str(a),
                             "--b", str(b), "-o", str(out), "--max-steps", "2",
                             "--save-every", "1", *TINY],
                            capture_output=True, text=True, env=ENV, timeout=600)
    assert killed.returncode == 77, killed.stderr  # in the second save (state, model, state)
    assert not [n for n in os.listdir(out) if names.SAFETENSORS_TEMP_RE.match(n)]
    # an old geogan's leftover in the run folder: removed too, under the run's lock
    (out / ".tmpZz98Yx").write_bytes(b"y" * 4096)
    _ok(_cli("train", "--resume", "-o", out, "--max-steps", "2"))
    assert read_metadata(out)["step"] == 2
    assert _hidden(out) == [] and _hidden(tmp_path) == []


def test_tile_never_writes_onto_the_current_folder(make_raster, tmp_path, monkeypatch):
    src = make_raster("r.tif", width=64, height=64)
    here = tmp_path / "here"
    here.mkdir()
    inode = here.stat().st_ino
    monkeypatch.chdir(here)
    for args in ([here], ["."], [".", "--overwrite"], [here, "--overwrite"]):
        msg = _error(_cli("tile", src, "-o", *args, "--size", "32"))
        assert "is the current folder" in msg and "choose a new output folder" in msg
    assert here.stat().st_ino == inode and list(here.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here", "r.tif"]


def test_tile_overwrite_refuses_links_and_folders_it_did_not_make(make_raster, tmp_path):
    src = make_raster("r.tif", width=64, height=64)
    chips = tmp_path / "chips"
    _ok(_cli("tile", src, "-o", chips, "--size", "32"))
    (chips / "empty").mkdir()
    before = sorted(p.name for p in chips.iterdir())
    msg = _error(_cli("tile", src, "-o", chips, "--size", "32", "--overwrite"))
    assert "holds the folder empty, which geogan did not make" in msg
    assert sorted(p.name for p in chips.iterdir()) == before
    (chips / "empty").rmdir()
    mine = tmp_path / "mine.txt"
    mine.write_text("mine")
    link = chips / names.chip_name("r", 0, 99)  # named like a chip, but a link
    link.symlink_to(mine)
    msg = _error(_cli("tile", src, "-o", chips, "--size", "32", "--overwrite"))
    assert f"holds {link.name}, a symbolic link" in msg
    assert link.is_symlink() and mine.read_text() == "mine"


def test_tile_overwrite_through_a_symbolic_link_replaces_its_target(make_raster, tmp_path):
    first = make_raster("first.tif", width=64, height=64)
    second = make_raster("second.tif", width=64, height=64, seed=2)
    real, link = tmp_path / "real", tmp_path / "link"
    _ok(_cli("tile", first, "-o", real, "--size", "32"))
    link.symlink_to(real)
    _ok(_cli("tile", second, "-o", link, "--size", "32", "--overwrite"))
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert sorted(p.name.split("__")[0] for p in real.glob("*.tif")) == ["second"] * 4
    assert _hidden(tmp_path) == []


def test_chips_of_a_hidden_input_are_not_hidden(make_raster, tmp_path):
    src = make_raster(".hidden.tif", width=64, height=64)
    chips = tmp_path / "chips"
    _ok(_cli("tile", src, "-o", chips, "--size", "32", "--overlap", "0"))
    assert _hidden(chips) == []
    assert sorted(p.name for p in chips.glob("*.tif")) == [
        names.chip_name("hidden", c, r) for c in (0, 32) for r in (0, 32)]
    # mosaic sees them all: the mosaic is the source again
    mosaic = tmp_path / "m.tif"
    _ok(_cli("mosaic", chips, "-o", mosaic))
    with rasterio.open(src) as s, rasterio.open(mosaic) as m:
        assert (m.width, m.height) == (s.width, s.height)
        assert (m.read() == s.read()).all()


# --------------------------------------------------------------------------- 10: damaged runs


def test_resume_with_a_losses_csv_without_header_says_what_to_do(old_run):
    csv_path = old_run / "losses.csv"
    lines = csv_path.read_text().splitlines(keepends=True)
    csv_path.write_text("".join(lines[1:]))  # the header lost, as when two runs shared it
    before = _snapshot(old_run)
    msg = _error(_cli("train", "--resume", "-o", old_run, "--max-steps", "3"))
    assert f"the run's {csv_path} is damaged (its header row is missing)" in msg
    assert "move it out of the run folder" in msg
    assert _snapshot(old_run) == before
    # the advice works: without it the run resumes, with a new log from its step on
    csv_path.rename(old_run.parent / "losses.csv.bak")
    _ok(_cli("train", "--resume", "-o", old_run, "--max-steps", "3"))
    assert read_metadata(old_run)["step"] == 3
    assert csv_path.read_text().splitlines()[0].startswith("step,")


def test_no_checkpoint_of_weights_that_give_non_finite_images(data, tmp_path):
    a, b = data
    out = tmp_path / "run"
    msg = _error(_cli("train", "--a", a, "--b", b, "-o", out, "--max-steps", "3", "--lr",
                      "1e30", "--save-every", "1", *TINY))
    assert "NaN or infinite images at step 1" in msg and "no checkpoint" in msg
    assert not out.exists() and _hidden(tmp_path) == []
