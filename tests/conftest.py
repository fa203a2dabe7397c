"""Shared fixtures: tiny seeded georeferenced rasters, tiny untrained checkpoints and a
real full disk."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

#: A projected CRS (UTM 14N, metres) and a geographic one (degrees).
PROJECTED = "EPSG:26914"
GEOGRAPHIC = "EPSG:4326"


def _default_transform(crs: str):
    from rasterio.transform import from_origin

    if crs == GEOGRAPHIC:
        return from_origin(-73.25, -3.5, 0.00081, 0.00081)
    return from_origin(485900.0, 5209247.0, 5.0, 5.0)


def make_raster_array(width: int, height: int, count: int = 3, dtype: str = "uint8",
                      seed: int = 0) -> np.ndarray:
    """Smooth-ish seeded image data ``(count, height, width)`` spanning the dtype's range."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    bands = []
    for b in range(count):
        base = np.sin(xx / (7.0 + b)) + np.cos(yy / (5.0 + 2 * b)) + rng.normal(0, 0.3, xx.shape)
        bands.append((base - base.min()) / (np.ptp(base) or 1.0))
    unit = np.stack(bands)
    if dtype == "uint8":
        return (unit * 254 + 1).astype(np.uint8)  # 1..255 so 0 can be nodata
    if dtype == "uint16":
        return (unit * 60000 + 100).astype(np.uint16)
    return (unit * 300.0 - 50.0).astype(dtype)


@pytest.fixture
def make_raster(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_raster(name, width, height, count=3, dtype="uint8", crs=PROJECTED,
    transform=None, nodata=None, nodata_box=None, data=None, seed=0) -> Path``.

    ``nodata_box=(row0, row1, col0, col1)`` fills that block with the nodata value.
    Rasters of other than three bands are written with ``photometric="MINISBLACK"``
    (gray, then undefined bands, as NAIP), so no band is Alpha; pass
    ``photometric=...`` to override.
    """

    def factory(name: str = "raster.tif", width: int = 67, height: int = 45, count: int = 3,
                dtype: str = "uint8", crs: str | None = PROJECTED, transform=None,
                nodata: float | None = None, nodata_box: tuple[int, int, int, int] | None = None,
                data: np.ndarray | None = None, seed: int = 0, **profile_extra) -> Path:
        import rasterio

        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            data = make_raster_array(width, height, count, dtype, seed)
        count, height, width = data.shape
        if nodata_box is not None:
            if nodata is None:
                raise ValueError("nodata_box needs a nodata value")
            r0, r1, c0, c1 = nodata_box
            data = data.copy()
            data[:, r0:r1, c0:c1] = nodata
        profile = {
            "driver": "GTiff", "width": width, "height": height, "count": count,
            "dtype": str(data.dtype), "nodata": nodata,
            "transform": transform if transform is not None else _default_transform(
                crs or PROJECTED),
        }
        if crs is not None:
            profile["crs"] = crs
        if count != 3:
            # GDAL's default for 4-band Byte is RGB + Alpha; these bands are all data.
            profile["photometric"] = "MINISBLACK"
        profile.update(profile_extra)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
        return path

    return factory


#: Checkpoint key of each direction's generator, as geogan's training writes them.
GENERATOR_KEYS = {"a2b": "G_A2B", "b2a": "G_B2A"}


def make_checkpoint(path: Path, *, arch: str = "resnet_6blocks", bands_a: int = 3,
                    bands_b: int = 3, ngf: int = 4, model: str = "cyclegan",
                    directions: Sequence[str] = ("a2b",), seed: int = 0,
                    nodata: float | None = 0, norm_a: Any = None, norm_b: Any = None,
                    names: tuple[str, str] = ("a", "b"), noise: float = 0.0,
                    fill: float | None = None,
                    meta: dict[str, Any] | None = None, **generator_kwargs: Any) -> Path:
    """Write a tiny untrained checkpoint to ``path`` and return its path.

    After ``torch.manual_seed(seed)`` one ``arch`` generator is built per direction, in
    the order given (a2b maps ``bands_a`` to ``bands_b`` bands, b2a back), with
    ``ngf`` and ``generator_kwargs`` (e.g. ``upsample="resize"``); ``noise`` adds
    ``N(0, noise)`` to each one's weights right after it is built, ``fill`` then sets
    every weight to that value (NaN: a broken model). ``norm_a``/``norm_b`` (BandNorm)
    default to the full uint8 range with ``nodata``; ``names`` are the domains' names;
    ``meta`` replaces fields of the :class:`~geogan.contract.checkpoint.CheckpointMeta`
    (``{"step": 7}``, ``{"domains": {"a": DomainMeta(...), ...}}``).
    """
    import torch

    from geogan.checkpoint import save_checkpoint
    from geogan.contract.checkpoint import CheckpointMeta, DomainMeta, GeneratorMeta
    from geogan.models import build_generator
    from geogan.normalize import BandNorm

    torch.manual_seed(seed)
    bands = {"a2b": (bands_a, bands_b), "b2a": (bands_b, bands_a)}
    tensors: dict[str, torch.Tensor] = {}
    generators: dict[str, GeneratorMeta] = {}
    for direction in directions:
        c_in, c_out = bands[direction]
        kwargs = {"in_channels": c_in, "out_channels": c_out, "ngf": ngf, **generator_kwargs}
        net = build_generator(arch, **kwargs)
        with torch.no_grad():
            for p in net.parameters():
                if noise:
                    p.add_(torch.randn_like(p) * noise)
                if fill is not None:
                    p.fill_(fill)
        key = GENERATOR_KEYS[direction]
        tensors.update({f"{key}.{k}": v for k, v in net.state_dict().items()})
        generators[direction] = GeneratorMeta(key, arch, kwargs)
    norm_a = norm_a or BandNorm.full_range("uint8", bands_a, nodata)
    norm_b = norm_b or BandNorm.full_range("uint8", bands_b, nodata)
    typed = CheckpointMeta(model, generators, chip_size=32,
                           domains={"a": DomainMeta(names[0], norm_a.to_json()),
                                    "b": DomainMeta(names[1], norm_b.to_json())})
    return save_checkpoint(path, tensors, dataclasses.replace(typed, **(meta or {})))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One :func:`make_checkpoint` with its defaults (resnet_6blocks, ngf 4, uint8 3 -> 3
    bands, an a2b generator only) for the whole session; tests must not change it."""
    return make_checkpoint(tmp_path_factory.mktemp("tiny") / "model.safetensors")


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB file system (tmpfs), or skip where mounting is not allowed."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def run_cli(*args: object) -> Any:
    """``geogan --progress none ARGS...`` run in-process; click's Result."""
    from click.testing import CliRunner

    from geogan.cli import main

    return CliRunner().invoke(main, ["--progress", "none", *map(str, args)])


def cli_error(result: Any, alone: bool = False) -> str:
    """The one ``Error:`` line of a failed command, which must end its stderr (warnings may
    come before it; with ``alone`` none may), with no traceback anywhere."""
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert not alone or len(lines) == 1, result.stderr
    return errors[0]


def listing(folder: Path) -> list[str]:
    """Every path under ``folder``, relative, sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def run_torchrun(*geogan_args: object, timeout: int = 240) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node 2 -m geogan --progress none ARGS...`` on
    one thread a process; fails the test if it runs past ``timeout`` s or exits non-zero."""
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "geogan", "--progress", "none", *map(str, geogan_args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:  # pragma: no cover - a hang is a failure
        pytest.fail(f"torchrun training did not finish within {timeout} s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def train_until_cancelled(config: Any, after_step: int = 2) -> None:
    """Train ``config`` (a TrainConfig), cancelled once step ``after_step`` is done: training
    must end with the Cancelled error that points to ``--resume``."""
    from geogan.errors import Cancelled
    from geogan.train import train

    steps: list[float] = []
    with pytest.raises(Cancelled, match="--resume"):
        train(config, progress=lambda done, total, **info: steps.append(done),
              cancel=lambda: bool(steps) and steps[-1] >= after_step)
