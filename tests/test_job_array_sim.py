"""A state-scale batch in miniature: 40 rasters translated by a job array of 4 tasks in separate
processes (Slurm's and Kubernetes' variables), one task killed part-way and retried; every
output exists once, is complete, equals a single-process run byte for byte, and is in the
batch's index and VRT."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from click.testing import CliRunner

from geogan.cli import main
from geogan.fileio import is_complete_raster
from geogan.shards import task_of

ROOT = Path(__file__).resolve().parents[1]
FILES, TASKS, KILL_AT = 40, 4, 3
OPTIONS = ("--tile", "16", "--overlap", "4", "-j", "1")

#: A task: the geogan CLI, killed like kill -9 (no cleanup) as it is about to publish its
#: KILL_AT-th output when GEOGAN_TEST_KILL_AT is set (the fault hook of geogan.fileio).
_TASK = textwrap.dedent("""
    import os, sys
    from geogan import fileio
    from geogan.cli import main

    kill_at, seen = int(os.environ.get("GEOGAN_TEST_KILL_AT", "0")), []

    def hook(point, path):
        if point == "before-rename":
            seen.append(path)
            if len(seen) == kill_at:
                os._exit(77)

    fileio.set_fault_hook(hook)
    main(sys.argv[1:], prog_name="geogan")
""")

#: What each engine sets in task ``i`` of ``n`` (Slurm numbers this array from 1).
ENGINES = {
    "slurm": lambda i, n: {"SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": str(i + 1),
                           "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": str(n),
                           "SLURM_ARRAY_TASK_STEP": "1", "SLURM_ARRAY_TASK_COUNT": str(n)},
    "kubernetes": lambda i, n: {"JOB_COMPLETION_INDEX": str(i), "GEOGAN_TASK_COUNT": str(n)},
}


def _environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "AWS_BATCH_", "GEOGAN_")) and k not in (
               "JOB_COMPLETION_INDEX", "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    path = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path, "OMP_NUM_THREADS": "1",
            "SOURCE_DATE_EPOCH": EPOCH, **extra}


def _start(args: list[str], extra: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _TASK, "--progress", "none", *args],
                            env=_environment(extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


#: The creation time every run writes into its outputs' provenance (SOURCE_DATE_EPOCH), so
#: that tasks and the single process write byte-identical files.
EPOCH = "1764700000"


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> tuple[Path, Path, Path]:
    """``(checkpoint, input folder, single-process output folder)``: 40 rasters side by side."""
    import rasterio
    from conftest import make_checkpoint, make_raster_array
    from rasterio.transform import from_origin

    root = tmp_path_factory.mktemp("state")
    ckpt = make_checkpoint(root / "model.safetensors")
    inputs = root / "in"
    inputs.mkdir()
    for k in range(FILES):  # quarter quads side by side, 24 x 20 px each
        with rasterio.open(inputs / f"q{k:03d}.tif", "w", driver="GTiff", width=24, height=20,
                           count=3, dtype="uint8", crs="EPSG:26914", nodata=0,
                           transform=from_origin(485900.0 + 120.0 * k, 5209247.0, 5.0, 5.0)) \
                as dst:
            dst.write(make_raster_array(24, 20, 3, "uint8", seed=k))
    ref = root / "single"
    result = CliRunner(env={"SOURCE_DATE_EPOCH": EPOCH}).invoke(
        main, ["--progress", "none", "translate", str(ckpt), str(inputs), "-o", str(ref),
               *OPTIONS])
    assert result.exit_code == 0, result.output
    return ckpt, inputs, ref


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_a_job_array_with_a_killed_task_gives_the_single_process_outputs(batch, tmp_path,
                                                                         engine):
    ckpt, inputs, ref = batch
    out = tmp_path / "out"
    args = ["translate", str(ckpt), str(inputs), "-o", str(out), *OPTIONS]
    names = sorted(p.name for p in inputs.iterdir())
    shares = {i: [n for n in names if task_of(n, TASKS) == i] for i in range(TASKS)}
    victim = max(shares, key=lambda i: len(shares[i]))
    assert len(shares[victim]) > KILL_AT

    # all tasks at once, as the engine starts them; one dies as it publishes its third output
    tasks = {i: _start(args, {**ENGINES[engine](i, TASKS),
                              **({"GEOGAN_TEST_KILL_AT": str(KILL_AT)} if i == victim else {})})
             for i in range(TASKS)}
    done = {i: (p.communicate(timeout=600), p.returncode) for i, p in tasks.items()}
    for i, ((stdout, stderr), code) in done.items():
        if i == victim:
            assert code == 77, stderr
            continue
        assert code == 0, stderr
        assert [Path(p).name for p in stdout.split()] == shares[i]
    written = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    lost = [n for n in shares[victim] if n not in written]
    assert len(lost) == len(shares[victim]) - (KILL_AT - 1)
    assert [p.name for p in out.iterdir() if p.name.startswith(".")]  # its half-published one
    kept = {n: (out / n).stat().st_ino for n in written}

    # the engine retries the failed task with the same command and variables
    retry = _start(args, ENGINES[engine](victim, TASKS))
    stdout, stderr = retry.communicate(timeout=600)
    assert retry.returncode == 0, stderr
    assert [Path(p).name for p in stdout.split()] == shares[victim]

    assert sorted(p.name for p in out.iterdir()) == names  # each once, no temporaries left
    assert {n: (out / n).stat().st_ino for n in written} == kept  # nothing done twice
    for name in names:
        assert is_complete_raster(out / name)
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name

    # the batch ends in one product: an index of every output and a VRT over them
    result = CliRunner().invoke(main, ["--progress", "none", "mosaic", "--index", str(out)])
    assert result.exit_code == 0, result.output
    assert list(pyogrio.read_dataframe(out / "index.gpkg", layer="outputs")["path"]) == names
    with rasterio.open(out / "mosaic.vrt") as mosaic, rasterio.open(out / names[-1]) as last:
        assert (mosaic.width, mosaic.height) == (24 * FILES, 20)
        np.testing.assert_array_equal(mosaic.read(window=((0, 20), (24 * FILES - 24,
                                                                      24 * FILES))), last.read())
