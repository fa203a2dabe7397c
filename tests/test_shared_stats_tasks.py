"""Shared normalisation statistics across job-array tasks (issue #26): two adjacent rasters,
each translated by its own task in its own process, meet without a colour step when every
task uses one statistics file estimated once over both (``--stats-only``, then ``--stats``),
and each task's output is the single process's output with that file byte for byte.

The rasters are two halves of the bundled NAIP sample under a brightness ramp (dark in the
west, bright in the east, continuous across the seam), translated with the bundled
pretrained model: per-file statistics normalise each half by its own brightness, which puts
a step in the colours where they meet; one shared set does not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.windows import Window

from geogan.cli import main
from geogan.normstats import load_stats
from geogan.shards import task_of

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "geogan" / "sample_data" / "pretrained" / "naip_2009_to_2020.safetensors"
SAMPLE = ROOT / "geogan" / "sample_data" / "naip_2009.tif"
#: The two halves, west and east of the seam; their names hash to tasks 0 and 1 of 2.
NAMES = ("west.tif", "east.tif")
SIDE = 256  # each half is SIDE x SIDE px
OPTIONS = ("--tile", "256", "--overlap", "32", "-j", "1")
#: The creation time every run writes into its outputs' provenance (SOURCE_DATE_EPOCH), so
#: that tasks and the single process write byte-identical files.
EPOCH = "1764700000"


def cut_halves(folder: Path, side: int = SIDE) -> list[Path]:
    """Two adjacent ``side x side`` px rasters cut from the NAIP sample, on one pixel grid,
    under a brightness ramp from 0.35 (west edge) to 1.0 (east edge) on the colour bands."""
    folder.mkdir(parents=True, exist_ok=True)
    with rasterio.open(SAMPLE) as src:
        col, row = 200, 200
        data = src.read(window=Window(col, row, 2 * side, side)).astype(np.float64)
        data[:3] = np.clip(np.rint(data[:3] * np.linspace(0.35, 1.0, 2 * side)), 1, 255)
        profile = {**src.profile, "photometric": "MINISBLACK", "width": side, "height": side}
        paths = []
        for k, name in enumerate(NAMES):
            window = Window(col + k * side, row, side, side)
            with rasterio.open(folder / name, "w", **{**profile,
                               "transform": src.window_transform(window)}) as dst:
                dst.write(data[:, :, k * side:(k + 1) * side].astype(np.uint8))
            paths.append(folder / name)
    return paths


def seam_step(west: Path, east: Path) -> float:
    """Mean absolute difference (DN) between the last column of ``west`` and the first of
    ``east``, over every band: the colour step where the two outputs meet."""
    with rasterio.open(west) as a, rasterio.open(east) as b:
        assert a.transform.c + a.width * a.transform.a == pytest.approx(b.transform.c)
        left = a.read(window=Window(a.width - 1, 0, 1, a.height)).astype(np.float64)
        right = b.read(window=Window(0, 0, 1, b.height)).astype(np.float64)
    return float(np.abs(left - right).mean())


def _environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "AWS_BATCH_", "GEOGAN_")) and k not in (
               "JOB_COMPLETION_INDEX", "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    path = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "SOURCE_DATE_EPOCH": EPOCH,
            **extra}


def run_tasks(args: list[str], count: int = 2) -> list[list[str]]:
    """``geogan ARGS`` as the ``count`` tasks of a Slurm job array (array 1-count), each in its
    own process, all at once; each task's output names, in task order."""
    tasks = [subprocess.Popen(
        [sys.executable, "-m", "geogan", "--progress", "none", *args],
        env=_environment({"SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": str(i + 1),
                          "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": str(count),
                          "SLURM_ARRAY_TASK_STEP": "1", "SLURM_ARRAY_TASK_COUNT": str(count)}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(count)]
    names = []
    for task in tasks:
        stdout, stderr = task.communicate(timeout=600)
        assert task.returncode == 0, stderr
        names.append([Path(p).name for p in stdout.split()])
    return names


def cli(*args: object) -> str:
    """``geogan --progress none ARGS`` in this process; its stdout (it must succeed)."""
    result = CliRunner(env={"SOURCE_DATE_EPOCH": EPOCH}).invoke(
        main, ["--progress", "none", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def halves(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("seam") / "in"
    cut_halves(folder)
    assert [task_of(name, 2) for name in NAMES] == [0, 1]  # one file for each task
    return folder


def test_tasks_with_one_stats_file_match_one_process_and_meet_without_a_step(
        halves: Path, tmp_path: Path) -> None:
    # step 1, once: the statistics of both halves together
    stats = tmp_path / "shared.stats.json"
    assert cli("translate", MODEL, halves, "--stats-only", "-o", stats,
               *OPTIONS).split() == [str(stats)]
    assert load_stats(stats).mode == "global"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.stats.json"]

    # step 2: a job array of two tasks, one file each, every task with the same file
    shared = tmp_path / "shared"
    assert run_tasks(["translate", str(MODEL), str(halves), "-o", str(shared), "--stats",
                      str(stats), *OPTIONS]) == [[NAMES[0]], [NAMES[1]]]
    assert sorted(p.name for p in shared.iterdir()) == sorted(NAMES)

    # (a) each task's output is one process's translation of that file with that file
    for name in NAMES:
        cli("translate", MODEL, halves / name, "-o", tmp_path / "single" / name, "--stats",
            stats, *OPTIONS)
        assert (shared / name).read_bytes() == (tmp_path / "single" / name).read_bytes(), name

    # --shared-stats in every task estimates the same statistics (each task over all inputs)
    again = tmp_path / "again"
    assert run_tasks(["translate", str(MODEL), str(halves), "-o", str(again),
                      "--shared-stats", *OPTIONS]) == [[NAMES[0]], [NAMES[1]]]
    for name in NAMES:
        with rasterio.open(shared / name) as a, rasterio.open(again / name) as b:
            np.testing.assert_array_equal(a.read(), b.read())

    # (b) per-file statistics (the default) leave a colour step at the seam; shared do not
    own = tmp_path / "own"
    assert run_tasks(["translate", str(MODEL), str(halves), "-o", str(own),
                      *OPTIONS]) == [[NAMES[0]], [NAMES[1]]]
    step_own = seam_step(own / NAMES[0], own / NAMES[1])
    step_shared = seam_step(shared / NAMES[0], shared / NAMES[1])
    assert step_own > 15.0, step_own  # the data makes the point: per-file stats differ
    assert step_shared < step_own / 4, (step_shared, step_own)


def test_stats_only_refuses_what_could_not_serve_every_task(halves: Path, tmp_path: Path,
                                                           tiny_checkpoint: Path) -> None:
    from conftest import cli_error, run_cli

    kept = tmp_path / "kept.stats.json"
    kept.write_text("{}\n")
    cases = [
        (("-o", tmp_path / "out"), "--stats-only writes one statistics file: give --output a "
         f"local file name ending in .json, not {tmp_path / 'out'}"),
        (("-o", tmp_path / "s.json", "--shard", "0/2"), "--stats-only writes one statistics "
         "file for the whole batch; run it once before the job array, not as task 0 of 2 "
         "(--shard)"),
        (("-o", tmp_path / "s.json", "--norm", "window"), "--stats-only writes one global set "
         "of statistics for all inputs; it needs --norm global, not window"),
        (("-o", tmp_path / "s.json", "--stats", kept), "--stats-only estimates the statistics "
         "--stats would give; drop --stats"),
        (("-o", kept), f"{kept} already exists; pass --overwrite to replace it"),
    ]
    for args, message in cases:
        error = cli_error(run_cli("translate", tiny_checkpoint, halves, "--stats-only", *args))
        assert error.startswith(f"Error: {message}"), error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.stats.json"]
    assert kept.read_text() == "{}\n"


def test_stats_only_refuses_a_generator_without_instance_norm(halves: Path,
                                                              tmp_path: Path) -> None:
    from conftest import cli_error, make_checkpoint, run_cli

    ckpt = make_checkpoint(tmp_path / "batch.safetensors", norm="batch")
    before = sorted(tmp_path.iterdir())
    error = cli_error(run_cli("translate", ckpt, halves, "--bands", "1,2,3", "--stats-only",
                              "-o", tmp_path / "s.json"))
    assert error == (f"Error: the a2b generator of {ckpt} has no instance normalisation, so "
                     "its translations use no statistics; translate without --stats-only")
    assert sorted(tmp_path.iterdir()) == before


def test_stats_only_json_result_names_the_file(halves: Path, tmp_path: Path,
                                               tiny_checkpoint: Path) -> None:
    out = tmp_path / "s.json"
    result = json.loads(cli("translate", tiny_checkpoint, halves / NAMES[0], "--bands",
                            "1,2,3", "--stats-only", "-o", out, "--json"))
    assert result == {"stats": str(out)}
    stats = load_stats(out)
    assert stats.mode == "global" and stats.layers
