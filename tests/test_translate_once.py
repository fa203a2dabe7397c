"""``geogan translate`` runs each check once per command: the options' and checkpoint's
before the inputs, each input's once, however many inputs a batch has."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import rasterio
from conftest import cli_error, run_cli

from geogan import rasterio_io, rasterio_meta
from geogan.translate import compat, runtime

TILE = ["--tile", "32", "--overlap", "8"]


def _count(monkeypatch: pytest.MonkeyPatch, func: Callable[..., Any]) -> list[tuple[Any, ...]]:
    """Record every call of ``func`` through any name a geogan module holds it by (imported
    at the top, or looked up in its module when imported inside a function)."""
    calls: list[tuple[Any, ...]] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return func(*args, **kwargs)

    for name, module in list(sys.modules.items()):
        if name.split(".")[0] == "geogan" and getattr(module, func.__name__, None) is func:
            monkeypatch.setattr(module, func.__name__, counted)
    return calls


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[tuple[Any, ...]]]:
    import geogan.translate  # noqa: F401  (every module holding a name is loaded first)

    funcs = {"tile": compat.check_tile, "band_names": compat.check_band_names,
             "device": runtime.resolve_device, "bands": compat.select_input_bands,
             "pixels": rasterio_meta.check_pixels, "readable": rasterio_io.check_readable}
    return {key: _count(monkeypatch, func) for key, func in funcs.items()}


@pytest.mark.parametrize("norm", ["window", "global"])
def test_a_batch_runs_each_check_once(norm, counts, make_raster, tmp_path, tiny_checkpoint):
    for i, name in enumerate("abc"):
        make_raster(f"in/{name}.tif", width=40 + 4 * i, height=36, seed=i)
    out = tmp_path / "out"
    result = run_cli("translate", tiny_checkpoint, tmp_path / "in", "-o", out, *TILE,
                     "--norm", norm, "--band-names", "red,green,blue")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.tif", "b.tif", "c.tif"]
    with rasterio.open(out / "b.tif") as ds:
        assert ds.descriptions == ("red", "green", "blue")
    # the options' and checkpoint's checks once per command
    assert (len(counts["tile"]), len(counts["band_names"]), len(counts["device"])) == (1, 1, 1)
    # each input's checks once per input
    for key in ("bands", "pixels", "readable"):
        assert _names(key, counts[key]) == ["a.tif", "b.tif", "c.tif"], key


def _names(key: str, calls: list[tuple[Any, ...]]) -> list[str]:
    """The file names the calls of check ``key`` checked, sorted."""
    where = {"readable": lambda args: args[0].name, "pixels": lambda args: args[1],
             "bands": lambda args: args[2]}[key]
    return sorted(Path(str(where(args))).name for args in calls)


def test_shared_statistics_reuse_the_checked_bands(counts, make_raster, tmp_path,
                                                    tiny_checkpoint):
    for i, name in enumerate("ab"):
        make_raster(f"in/{name}.tif", width=40, height=36, seed=i)
    result = run_cli("translate", tiny_checkpoint, tmp_path / "in", "-o", tmp_path / "out",
                     *TILE, "--norm", "global", "--shared-stats")
    assert result.exit_code == 0, result.output
    assert _names("bands", counts["bands"]) == ["a.tif", "b.tif"]
    assert len(counts["tile"]) == len(counts["device"]) == 1


def test_a_bad_tile_fails_once_before_any_input_is_opened(counts, make_raster, tmp_path,
                                                          tiny_checkpoint):
    make_raster("in/a.tif", width=40, height=36)
    make_raster("in/b.tif", width=40, height=36, seed=1)
    msg = cli_error(run_cli("translate", tiny_checkpoint, tmp_path / "in", "-o",
                            tmp_path / "out", "--tile", "42", "--overlap", "8"))
    assert msg.startswith("Error: --tile 42 does not suit the resnet_6blocks generator")
    assert len(counts["tile"]) == 1 and counts["pixels"] == [] and counts["bands"] == []
    assert not (tmp_path / "out").exists()
