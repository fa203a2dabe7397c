"""A state's orthophotos on one machine: a job array of translate tasks with kills and reruns.

Writes FILES small orthophotos, translates them once in a single process (the
reference), then as a job array of TASKS processes started together with the
variables of the chosen engine (Slurm, Kubernetes Indexed Job or AWS Batch), of which
KILL die part-way (as ``kill -9`` as they publish their second output), and reruns the
killed tasks with the same command, as an engine's retry would. It checks that every
output exists once, is complete, equals the single process's byte for byte, and is in
the batch's index and VRT (``geogan mosaic --index``), then prints per-file throughput
and the state on paper:

    hours = state pixels / (Mpx/s per worker x 1e6) / workers / 3600

with Mpx/s per worker measured here (one task process, end to end, process start
included) and, with ``--gpu-mpx-s`` (e.g. ``translate_mpx_s_end_to_end`` from
benchmarks/gpu_check.py), per GPU. The last line is the figures as JSON.

Examples::

    python benchmarks/state_sim.py                                   # 48 files, 6 tasks, 2 kills
    python benchmarks/state_sim.py --files 80 --tasks 8 --kill 3 --engine kubernetes
    python benchmarks/state_sim.py --gpu-mpx-s 100 --gpus 8 64        # the state on GPUs
    python benchmarks/state_sim.py --seam                            # colours across tasks

``--seam`` shows instead what shared normalisation statistics do across tasks: two
adjacent halves of the bundled NAIP sample, under a brightness ramp (dark west, bright
east, continuous across the seam), are translated with the bundled pretrained model by a
job array of two tasks (one half each), once with per-file statistics (the default) and
once with one statistics file written first by ``geogan translate --stats-only``; it
prints the colour step where the two outputs meet (mean absolute difference, in DN, of
the columns either side of the seam) for both.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from _harness import random_checkpoint  # noqa: E402 - the benchmarks folder is on the path now

#: A task: the geogan CLI, killed like kill -9 as it is about to publish its N-th output
#: when GEOGAN_SIM_KILL_AT=N (geogan.fileio's fault hook).
TASK = textwrap.dedent("""
    import os, sys
    from geogan import fileio
    from geogan.cli import main

    kill_at, seen = int(os.environ.get("GEOGAN_SIM_KILL_AT", "0")), []

    def hook(point, path):
        if point == "before-rename":
            seen.append(path)
            if len(seen) == kill_at:
                os._exit(77)

    fileio.set_fault_hook(hook)
    main(sys.argv[1:], prog_name="geogan")
""")

#: The variables each engine sets in task ``i`` of ``n``.
ENGINES = {
    "slurm": lambda i, n: {"SLURM_ARRAY_TASK_ID": str(i + 1), "SLURM_ARRAY_TASK_MIN": "1",
                           "SLURM_ARRAY_TASK_COUNT": str(n)},
    "kubernetes": lambda i, n: {"JOB_COMPLETION_INDEX": str(i), "GEOGAN_TASK_COUNT": str(n)},
    "aws": lambda i, n: {"AWS_BATCH_JOB_ARRAY_INDEX": str(i), "GEOGAN_TASK_COUNT": str(n)},
}
#: A NAIP state flight, roughly: 5e11 pixels.
STATE_PX = 5e11


def make_inputs(folder: Path, files: int, size: int) -> None:
    """``files`` smooth 3-band uint8 orthophotos of ``size`` px side by side on one grid."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for k in range(files):
        rng = np.random.default_rng(k)
        bands = [np.sin(xx / (7 + b + k % 5)) + np.cos(yy / (5 + 2 * b)) +
                 rng.normal(0, 0.3, xx.shape) for b in range(3)]
        data = np.stack([(b - b.min()) / (np.ptp(b) or 1) * 254 + 1 for b in bands])
        with rasterio.open(folder / f"m_{k:05d}.tif", "w", driver="GTiff", width=size,
                           height=size, count=3, dtype="uint8", crs="EPSG:26914", nodata=0,
                           tiled=True, compress="zstd",
                           transform=from_origin(400000.0 + k * size, 4000000.0, 1.0, 1.0)) \
                as dst:
            dst.write(data.astype("uint8"))


#: One creation time for every task (``SOURCE_DATE_EPOCH``, unless set already): outputs
#: stamp it in their provenance tags, and the check compares them byte for byte.
EPOCH = os.environ.get("SOURCE_DATE_EPOCH", "").strip() or str(int(time.time()))


def environment(extra: dict[str, str]) -> dict[str, str]:
    """This environment without any job-array or torchrun variables, with one
    ``SOURCE_DATE_EPOCH`` for all, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "AWS_BATCH_", "GEOGAN_")) and k not in (
               "JOB_COMPLETION_INDEX", "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    path = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path, "SOURCE_DATE_EPOCH": EPOCH, **extra}


def start(args: list[str], extra: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TASK, "--progress", "none", *args],
                            env=environment(extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_all(procs: dict[int, subprocess.Popen]) -> dict[int, tuple[int, float]]:
    """Each process's exit status, and the seconds from now until it was seen to be done."""
    t0 = time.perf_counter()
    out = {}
    for i, proc in procs.items():
        _, stderr = proc.communicate(timeout=3600)
        out[i] = (proc.returncode, time.perf_counter() - t0)
        if proc.returncode not in (0, 77):
            sys.exit(f"task {i} failed ({proc.returncode}): {stderr[-2000:]}")
    return out


def run_array(args: argparse.Namespace, cmd: list[str], names: list[str],
              out: Path) -> dict[str, Any]:
    """The array: all tasks at once, ``args.kill`` of them killed; then their retries."""
    from geogan.shards import task_of

    shares = {i: [n for n in names if task_of(n, args.tasks) == i] for i in range(args.tasks)}
    victims = sorted((i for i in shares if len(shares[i]) >= 2),
                     key=lambda i: -len(shares[i]))[:args.kill]
    engine = ENGINES[args.engine]
    t0 = time.perf_counter()
    first = wait_all({i: start(cmd, {**engine(i, args.tasks),
                                     **({"GEOGAN_SIM_KILL_AT": "2"} if i in victims else {})})
                      for i in range(args.tasks)})
    wave_s = time.perf_counter() - t0
    killed = [i for i, (code, _) in first.items() if code == 77]
    assert sorted(killed) == victims, (killed, victims)
    left = sum(1 for n in names if not (out / n).exists())
    t0 = time.perf_counter()
    wait_all({i: start(cmd, engine(i, args.tasks)) for i in killed})
    rerun_s = time.perf_counter() - t0
    return {"shares": {i: len(s) for i, s in shares.items()}, "killed": killed,
            "missing_after_kills": left, "first_wave_s": round(wave_s, 2),
            "rerun_s": round(rerun_s, 2),
            "task_seen_done_s": {i: round(s, 2) for i, (_, s) in first.items()}}


def verify(out: Path, ref: Path, names: list[str]) -> dict[str, Any]:
    """Each output once, complete, byte-identical to the reference, in the index and VRT."""
    import pyogrio
    import rasterio

    from geogan.batch_index import index_outputs
    from geogan.fileio import is_complete_raster

    listing = sorted(p.name for p in out.iterdir())
    assert listing == names, f"outputs differ from the inputs: {set(listing) ^ set(names)}"
    assert all(is_complete_raster(out / n) for n in names)
    same = sum((out / n).read_bytes() == (ref / n).read_bytes() for n in names)
    assert same == len(names), f"{len(names) - same} output(s) differ from one process's"
    made = index_outputs(out)
    indexed = list(pyogrio.read_dataframe(made.index, layer="outputs")["path"])
    assert indexed == names
    with rasterio.open(made.vrt) as vrt:
        vrt_px = vrt.width * vrt.height
    return {"outputs": len(names), "byte_identical": same, "indexed": len(indexed),
            "vrt_px": vrt_px}


def cut_halves(folder: Path, side: int) -> tuple[Path, Path]:
    """West and east ``side`` px halves of the NAIP sample under a brightness ramp from 0.35
    (west edge) to 1.0 (east edge) on the colour bands, on one pixel grid."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    folder.mkdir(parents=True)
    with rasterio.open(ROOT / "geogan" / "sample_data" / "naip_2009.tif") as src:
        if 2 * side > src.width - 200 or side > src.height - 200:
            sys.exit(f"--size {side}: the NAIP sample holds halves of at most "
                     f"{min((src.width - 200) // 2, src.height - 200)} px")
        data = src.read(window=Window(200, 200, 2 * side, side)).astype(np.float64)
        data[:3] = np.clip(np.rint(data[:3] * np.linspace(0.35, 1.0, 2 * side)), 1, 255)
        profile = {**src.profile, "photometric": "MINISBLACK", "width": side, "height": side}
        paths = (folder / "west.tif", folder / "east.tif")
        for k, path in enumerate(paths):
            window = Window(200 + k * side, 200, side, side)
            with rasterio.open(path, "w", **{**profile,
                               "transform": src.window_transform(window)}) as dst:
                dst.write(data[:, :, k * side:(k + 1) * side].astype(np.uint8))
    return paths


def seam_step(west: Path, east: Path) -> float:
    """Mean absolute difference (DN, all bands) of the columns either side of the seam."""
    import numpy as np
    import rasterio

    with rasterio.open(west) as a, rasterio.open(east) as b:
        left = a.read()[:, :, -1].astype(np.float64)
        right = b.read()[:, :, 0].astype(np.float64)
    return float(np.abs(left - right).mean())


def seam(args: argparse.Namespace) -> dict[str, Any]:
    """The seam between two tasks' outputs, with per-file and with shared statistics."""
    from geogan.shards import task_of

    model = ROOT / "geogan" / "sample_data" / "pretrained" / "naip_2009_to_2020.safetensors"
    work = Path(tempfile.mkdtemp(prefix="geogan-seam-", dir=args.workdir))
    try:
        west, east = cut_halves(work / "in", args.size)
        assert [task_of(p.name, 2) for p in (west, east)] == [0, 1]  # one half per task
        options = ["--tile", "256", "--overlap", "32", "-j", str(args.threads)]
        stats = work / "shared.stats.json"
        t0 = time.perf_counter()
        wait_all({0: start(["translate", str(model), str(work / "in"), "--stats-only", "-o",
                            str(stats), *options], {})})
        stats_s = time.perf_counter() - t0
        steps = {}
        for label, extra in (("per_file", []), ("shared_file", ["--stats", str(stats)])):
            cmd = ["translate", str(model), str(work / "in"), "-o", str(work / label),
                   *options, *extra]
            wait_all({i: start(cmd, ENGINES[args.engine](i, 2)) for i in range(2)})
            steps[label] = round(seam_step(work / label / west.name, work / label / east.name),
                                 2)
        source = round(seam_step(west, east), 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"two {args.size} px halves, one per task ({args.engine} array of 2); colour step "
          f"at the seam (mean |west last column - east first column|, DN): inputs {source}, "
          f"per-file statistics {steps['per_file']}, one shared statistics file "
          f"{steps['shared_file']} ({steps['per_file'] / max(steps['shared_file'], 1e-9):.1f}x "
          f"smaller; --stats-only took {stats_s:.1f} s)")
    return {"benchmark": "state_sim_seam", "engine": args.engine, "size_px": args.size,
            "seam_step_dn": {"input": source, **steps}, "stats_only_s": round(stats_s, 2)}


def on_paper(mpx_s: float, workers: list[int], state_px: float) -> dict[str, float]:
    """Hours for the state's pixels at ``mpx_s`` per worker, for each number of workers."""
    return {str(w): round(state_px / (mpx_s * 1e6) / w / 3600, 2) for w in workers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=48)
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--kill", type=int, default=2, help="tasks killed part-way")
    parser.add_argument("--size", type=int, default=256, help="orthophoto side (px)")
    parser.add_argument("--engine", choices=sorted(ENGINES), default="slurm")
    parser.add_argument("--arch", default="resnet_6blocks")
    parser.add_argument("--ngf", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="-j of each task")
    parser.add_argument("--state-px", type=float, default=STATE_PX)
    parser.add_argument("--gpu-mpx-s", type=float, default=None,
                        help="translate Mpx/s of one GPU (benchmarks/gpu_check.py)")
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--seam", action="store_true",
                        help="instead: the colour step where two tasks' adjacent outputs meet, "
                             "with per-file and with shared statistics")
    args = parser.parse_args()
    if args.seam:
        print(json.dumps(seam(args)))
        return
    if not 1 <= args.kill < args.tasks <= args.files:
        sys.exit("need 1 <= --kill < --tasks <= --files")

    work = Path(tempfile.mkdtemp(prefix="geogan-state-sim-", dir=args.workdir))
    try:
        make_inputs(work / "in", args.files, args.size)
        ckpt = random_checkpoint(work / "model.safetensors", args.arch, args.ngf)
        names = sorted(p.name for p in (work / "in").iterdir())
        options = ["--tile", "256", "--overlap", "32", "-j", str(args.threads)]

        def command(out: Path) -> list[str]:
            return ["translate", str(ckpt), str(work / "in"), "-o", str(out), *options]

        t0 = time.perf_counter()
        wait_all({0: start(command(work / "single"), {})})
        single_s = time.perf_counter() - t0
        array = run_array(args, command(work / "out"), names, work / "out")
        checked = verify(work / "out", work / "single", names)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mpx = args.files * args.size ** 2 / 1e6
    per_process = mpx / single_s
    figures = {"benchmark": "state_sim", "engine": args.engine, "files": args.files,
               "tasks": args.tasks, "size_px": args.size, "arch": args.arch, "ngf": args.ngf,
               "single_process_s": round(single_s, 2),
               "files_per_s_per_process": round(args.files / single_s, 3),
               "mpx_s_per_process": round(per_process, 3), **array, **checked,
               "state_px": args.state_px,
               "state_hours_by_workers_here": on_paper(per_process, args.gpus, args.state_px)}
    if args.gpu_mpx_s:
        figures["state_hours_by_gpus"] = on_paper(args.gpu_mpx_s, args.gpus, args.state_px)
    print(f"{args.files} files of {args.size} px, {mpx:.1f} Mpx: one process {single_s:.1f} s "
          f"({args.files / single_s:.2f} files/s, {per_process:.2f} Mpx/s end to end)")
    print(f"{args.engine} array of {args.tasks}: first wave {array['first_wave_s']} s with "
          f"{len(array['killed'])} task(s) killed ({array['missing_after_kills']} outputs "
          f"missing), reruns {array['rerun_s']} s; {checked['byte_identical']}/{args.files} "
          "outputs byte-identical to one process, all indexed")
    for label, rate in (("process like this one", per_process), ("GPU", args.gpu_mpx_s)):
        if rate:
            hours = on_paper(rate, args.gpus, args.state_px)
            print(f"state of {args.state_px:.0e} px at {rate:.2f} Mpx/s per {label}: "
                  + ", ".join(f"{h} h on {w}" for w, h in hours.items()))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
