"""The west/east harness of the paired benchmarks (``pix2pixhd_vs_pix2pix.py``,
``stack_vs_single.py``): their shared options, training on the western half of a source
raster for a CPU-time budget (``quality.py``'s :func:`_train_for`), translating it, scoring
the eastern half against the reference with :func:`geogan.evaluate.evaluate`, and the
table and JSON file of the rows (candidate, steps, img/s, RMSE, PSNR, SSIM, SAM, detail).
Also :func:`random_checkpoint`, the untrained model of the speed benchmarks
(``translate_speed.py``, ``state_sim.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parent.parent
#: Bands scored (as geogan demo).
SCORE_BANDS = (1, 2, 3, 4)


def harness_parser(doc: str, unit: str,
                   inputs: Callable[[argparse.ArgumentParser], None] | None = None,
                   models: Callable[[argparse.ArgumentParser], None] | None = None,
                   ) -> argparse.ArgumentParser:
    """The options both benchmarks take; ``inputs`` adds more after ``--source``, ``models``
    more after ``--ndf`` (so ``--help`` lists them where they always stood)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--budget-seconds", type=float, default=240.0,
                        help=f"training-loop seconds per {unit}")
    parser.add_argument("--source", type=Path, required=True,
                        help="the NAIP 2014 orthophoto m_4709963_se_14_1_20140720.tif "
                             "(opengeos/data; not bundled)")
    if inputs is not None:
        inputs(parser)
    parser.add_argument("--reference", type=Path,
                        default=ROOT / "geogan" / "sample_data" / "naip_2020.tif")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for runs and translations; a rerun replaces what an earlier "
                             "one wrote there [default: a temporary one]")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--ngf", type=int, default=32)
    parser.add_argument("--ndf", type=int, default=32)
    if models is not None:
        models(parser)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    return parser


@dataclass(frozen=True)
class Halves:
    """A source split into a western half to train on and an eastern one to score."""

    source: Path
    reference: Path
    work: Path
    west: Path  #: GeoJSON polygon, one crop short of the middle
    east: Path  #: GeoJSON polygon
    ref_detail: float  #: the reference's detail energy on the eastern half

    def detail(self, path: Path) -> float:
        """The detail ratio of ``path`` on the eastern half (1: as crisp as the reference)."""
        from geogan.demo import texture_energies

        return texture_energies(path, self.east)[0] / self.ref_detail


@contextmanager
def west_east(source: Path, reference: Path, work: Path | None, prefix: str,
              margin: int) -> Iterator[Halves]:
    """The halves of ``source`` in ``work`` (a new temporary folder named ``prefix...``
    when None, removed afterwards), as ``geogan demo`` splits it. A missing or unreadable
    ``source`` or ``reference`` ends the benchmark in one line (exit status 2) before
    anything is written; the halves an earlier run left in ``work`` are replaced."""
    from geogan.demo import _halves, texture_energies

    check_raster(source, "--source", "the NAIP 2014 orthophoto m_4709963_se_14_1_20140720.tif "
                  "(opengeos/data)")
    check_raster(reference, "--reference", "a 4-band raster such as the bundled naip_2020.tif")
    tmp = None
    if work is None:
        tmp = tempfile.TemporaryDirectory(prefix=prefix)
        work = Path(tmp.name)
    else:
        work.mkdir(parents=True, exist_ok=True)
        _clear_aoi(work / "aoi")
    try:
        west, east = _halves(source, work / "aoi", margin=margin)
        ref_detail, _ = texture_energies(reference, east)
        yield Halves(source, reference, work, west, east, ref_detail)
    finally:
        if tmp is not None:
            tmp.cleanup()


def fail(message: str) -> NoReturn:
    """End the benchmark with ``error: message`` on one line and exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_raster(path: Path, option: str, what: str) -> None:
    """Fail in one line unless ``path`` opens as a raster."""
    import rasterio
    from rasterio.errors import RasterioIOError

    if not path.exists():
        fail(f"{option} {path} does not exist; pass {what}")
    try:
        with rasterio.open(path):
            pass
    except (RasterioIOError, OSError) as exc:
        reason = " ".join(str(exc).split()).rstrip(".")
        fail(f"{option} {path} is not a readable raster ({reason}); pass {what}")


#: What :func:`west_east` writes in ``WORK/aoi``; a rerun into the same folder replaces it.
AOI_FILES = frozenset({"west.geojson", "east.geojson"})


def _clear_aoi(folder: Path) -> None:
    """Remove ``folder`` when it holds only the halves an earlier run wrote; fail otherwise."""
    if not folder.exists() and not folder.is_symlink():
        return
    if folder.is_symlink() or not folder.is_dir() or not (
            {p.name for p in folder.iterdir()} <= AOI_FILES):
        fail(f"--work: {folder} is not the halves an earlier run of this benchmark wrote; "
             "pick another --work folder")
    for name in AOI_FILES:
        (folder / name).unlink(missing_ok=True)
    folder.rmdir()


def score_row(name: str, s: Any, **extra: Any) -> dict[str, Any]:
    """One table row: ``name``, the scores ``s`` (RMSE, PSNR, SSIM, spectral) and ``extra``."""
    from geogan.demo import spectral_row

    return {"candidate": name, "rmse": s.rmse, "psnr": s.psnr, "ssim": s.ssim,
            "sam": getattr(s, "sam", None), **spectral_row(s), **extra}


def train_and_score(halves: Halves, name: str, base: dict[str, Any], run: Path, out: Path,
                    translate: Any, scoring: Any, budget_s: float,
                    probe_steps: int) -> tuple[dict[str, Any], Any]:
    """Train ``base`` (TrainConfig fields) into ``run`` for ``budget_s`` CPU seconds,
    translate the whole source to ``out`` with ``translate`` (a TranslateConfig), score it
    with ``scoring`` (an EvaluateConfig): (the row, evaluate's report)."""
    from quality import _loop_rate, _train_for

    from geogan.evaluate import evaluate
    from geogan.translate import translate_files

    # a rerun into the same --work replaces the runs and translation an earlier one made
    # (geogan's --overwrite: only a run folder of a run's files, only its own outputs)
    checkpoint = _train_for(budget_s, {**base, "overwrite": True}, run, probe_steps)
    steps, loop_s, _ = _loop_rate(run, base["batch_size"])
    t0 = time.perf_counter()
    translate_files(checkpoint, [halves.source], out, replace(translate, overwrite=True))
    translate_s = time.perf_counter() - t0
    report = evaluate(out, halves.reference, scoring)
    return score_row(name, report.scores[0], steps=steps,
                     img_s=steps * base["batch_size"] / loop_s, translate_s=translate_s,
                     detail=halves.detail(out)), report


def device_line(device: str) -> str:
    """``cpu: N cores, T torch thread(s)``."""
    import torch

    return f"{device}: {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s)"


def print_table(rows: list[dict[str, Any]], width: int) -> None:
    """The rows under a header, candidates ``width`` characters wide; empty cells for the
    figures a row lacks (steps, img/s of a baseline), ``-`` for a detail it has none of."""
    from quality import _fig

    header = (f"{'candidate':<{width}} {'steps':>6} {'img/s':>6} {'RMSE':>7} {'PSNR dB':>8} "
              f"{'SSIM':>6} {'SAM deg':>7} {'detail':>7}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['candidate']:<{width}} {_fig(r.get('steps'), 6, 0, '')} "
              f"{_fig(r.get('img_s'), 6, 2, '')} {r['rmse']:>7.2f} {r['psnr']:>8.2f} "
              f"{r['ssim']:>6.3f} {_fig(r['sam'], 7, 2, '')} "
              f"{_fig(r['detail'], 6, 2, '-', 'x')}")


def write_rows(path: Path | None, budget_s: float, device: str,
               rows: list[dict[str, Any]]) -> None:
    """The rows as JSON in ``path`` (nothing when None)."""
    if path is not None:
        path.write_text(json.dumps({"budget_s": budget_s, "device": device, "rows": rows},
                                   indent=2, default=str) + "\n")


def random_checkpoint(path: Path, arch: str, ngf: int, bands: int = 3, model: str = "cyclegan",
                      names: tuple[str, str] = ("a", "b")) -> Path:
    """A randomly initialised (seed 0) ``arch`` a2b generator of ``ngf`` filters saved as a
    ``model`` checkpoint at ``path``: ``bands`` uint8 bands in and out, full-range
    normalisation, domains named ``names``."""
    import torch

    from geogan.checkpoint import save_checkpoint
    from geogan.contract.checkpoint import CheckpointMeta
    from geogan.models import build_generator
    from geogan.normalize import BandNorm

    torch.manual_seed(0)
    kwargs = {"in_channels": bands, "out_channels": bands, "ngf": ngf}
    g = build_generator(arch, **kwargs)
    norm = BandNorm.full_range("uint8", bands, 0).to_json()
    meta = {"model": model,
            "generators": {"a2b": {"key": "G_A2B", "arch": arch, "kwargs": kwargs}},
            "domains": {"a": {"name": names[0], "norm": norm},
                        "b": {"name": names[1], "norm": norm}},
            "chip_size": 256}
    return save_checkpoint(path, {f"G_A2B.{k}": v for k, v in g.state_dict().items()},
                           CheckpointMeta.from_json(meta))


def run_main(main: Callable[[], Any]) -> None:
    """Run a benchmark's ``main``; geogan's own errors end it with their one line."""
    from geogan.errors import GeoganError

    try:
        main()
    except GeoganError as exc:
        sys.exit(f"error: {exc}")
