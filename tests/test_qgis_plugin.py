"""The QGIS plugin in the real QGIS: ``qgis_process`` headless with the plugin on its path.

QGIS's Python is the system Python, usually without torch, so the algorithms
run this environment's ``geogan`` command (the external-executable backend),
named by the Processing setting or $GEOGAN_EXECUTABLE. Skipped, with the reason,
only when QGIS (qgis_process) is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GEOGRAPHIC, PROJECTED, make_checkpoint
from test_qgis_backend import QGIS_CHECKPOINT

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_PATH = ROOT / "qgis_plugin"
GEOGAN_EXE = Path(sys.executable).parent / "geogan"
TIMEOUT_S = 180


def find_qgis_process() -> tuple[str | None, str]:
    """A working qgis_process, or None and why not.

    Debian's /usr/bin/qgis_process wrapper passes ``--noversioncheck`` (from
    /etc/default/qgis), which qgis_process 3.22 rejects; the real binary is
    qgis_process.bin beside it. $QGIS_PROCESS overrides the search.
    """
    candidates = [os.environ.get("QGIS_PROCESS"), shutil.which("qgis_process"),
                  shutil.which("qgis_process.bin")]
    tried = []
    for exe in filter(None, candidates):
        try:
            proc = subprocess.run([exe, "--version"], capture_output=True, text=True,
                                  env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
                                  timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            tried.append(f"{exe}: {exc}")
            continue
        if proc.returncode == 0 and "QGIS" in proc.stdout:
            return exe, ""
        tried.append(f"{exe}: exit {proc.returncode}")
    if not tried:
        return None, "qgis_process is not installed (apt-get install qgis python3-qgis)"
    return None, "no working qgis_process: " + "; ".join(tried)


@pytest.fixture(scope="session")
def qgis_process() -> str:
    exe, reason = find_qgis_process()
    if exe is None:
        pytest.skip(reason)
    return exe


def make_profile(root: Path, executable_setting: Path | None) -> Path:
    """A QGIS settings folder with the plugin enabled (and the executable setting, if given)."""
    ini = root / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    text = "[PythonPlugins]\ngeogan_qgis=true\n"
    if executable_setting is not None:
        text += f"\n[Processing]\nConfiguration\\GEOGAN_EXECUTABLE={executable_setting}\n"
    ini.write_text(text)
    return root


def qgis_env(profile: Path, tmp: Path, executable_env: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "GEOGAN_EXECUTABLE", "GEOGAN_BACKEND",
                        "QGIS_PLUGINPATH", "QGIS_CUSTOM_CONFIG_PATH")}
    # geogan must come from the setting or $GEOGAN_EXECUTABLE, not from this venv on PATH
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and not (Path(p) / "geogan").exists())
    runtime = tmp / "xdg-runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=str(PLUGIN_PATH),
               QGIS_CUSTOM_CONFIG_PATH=str(profile), XDG_RUNTIME_DIR=str(runtime),
               OMP_NUM_THREADS="1")  # geogan's torch: tiny networks on a shared machine
    if executable_env is not None:
        env["GEOGAN_EXECUTABLE"] = str(executable_env)
    return env


@pytest.fixture(scope="session")
def env(tmp_path_factory) -> dict[str, str]:
    """qgis_process environment: geogan found through the Processing setting."""
    if not GEOGAN_EXE.is_file():
        pytest.fail(f"{GEOGAN_EXE} missing; install geogan into this environment")
    tmp = tmp_path_factory.mktemp("qgis")
    return qgis_env(make_profile(tmp / "settings", GEOGAN_EXE), tmp)


def run_alg(qgis_process: str, env: dict[str, str], alg: str,
            **params: object) -> tuple[subprocess.CompletedProcess[str], dict]:
    """``qgis_process --json run ALG -- K=V ...``; returns the process and its JSON results."""
    args = [qgis_process, "--json", "run", alg, "--"]
    args += [f"{k}={item}" for k, v in params.items()  # a list: the parameter repeated
             for item in (v if isinstance(v, list) else [v])]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=TIMEOUT_S,
                          cwd=ROOT)
    results: dict = {}
    if proc.returncode == 0:
        start = proc.stdout.find("{")
        results = json.loads(proc.stdout[start:])["results"]
    return proc, results


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"


@pytest.fixture
def checkpoint(tmp_path) -> Callable[..., Path]:
    """Factory: a tiny untrained CycleGAN checkpoint with ``bands_a`` -> ``bands_b`` bands."""

    def factory(bands_a: int = 4, bands_b: int = 3) -> Path:
        return make_checkpoint(tmp_path / f"tiny_{bands_a}to{bands_b}.safetensors",
                               bands_a=bands_a, bands_b=bands_b, **QGIS_CHECKPOINT)

    return factory


# -- the provider is there ---------------------------------------------------------------------

def test_algorithms_are_listed(qgis_process, env):
    proc = subprocess.run([qgis_process, "list"], capture_output=True, text=True, env=env,
                          timeout=TIMEOUT_S)
    assert proc.returncode == 0, explain(proc)
    lines = {line.strip() for line in proc.stdout.splitlines()}
    assert "geogan:translate\tTranslate raster" in lines, explain(proc)
    assert "geogan:tile\tTile raster" in lines
    assert "geogan:train\tTrain" in lines


def test_plugin_zip_installs_without_the_gui(qgis_process, make_raster, checkpoint, tmp_path):
    """As the README has it: the zip unpacked into the profile's python/plugins folder, enabled
    with ``qgis_process plugins enable``, geogan found through $GEOGAN_EXECUTABLE."""
    import zipfile

    sys.path.insert(0, str(PLUGIN_PATH))
    import build_zip

    settings = tmp_path / "settings"
    plugins = settings / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(build_zip.build(tmp_path / "geogan_qgis.zip")) as zf:
        zf.extractall(plugins)
    env = qgis_env(settings, tmp_path, executable_env=GEOGAN_EXE)
    del env["QGIS_PLUGINPATH"]
    proc = subprocess.run([qgis_process, "plugins", "enable", "geogan_qgis"],
                          capture_output=True, text=True, env=env, timeout=TIMEOUT_S)
    assert proc.returncode == 0, explain(proc)
    assert "* geogan_qgis" in proc.stdout.splitlines(), explain(proc)
    proc = subprocess.run([qgis_process, "list"], capture_output=True, text=True, env=env,
                          timeout=TIMEOUT_S)
    assert proc.returncode == 0, explain(proc)
    assert "geogan:translate\tTranslate raster" in proc.stdout, explain(proc)
    out = tmp_path / "translated.tif"
    proc, results = run_alg(qgis_process, env, "geogan:translate",
                            INPUT=make_raster("in.tif", count=3), CHECKPOINT=checkpoint(3, 3),
                            TILE=32, OVERLAP=4, DEVICE="cpu", OUTPUT=out)
    assert proc.returncode == 0, explain(proc)
    assert f"running: {GEOGAN_EXE} " in proc.stdout, explain(proc)
    assert Path(results["OUTPUT"]) == out and out.is_file()


def test_help_describes_the_translate_parameters(qgis_process, env):
    proc = subprocess.run([qgis_process, "help", "geogan:translate"], capture_output=True,
                          text=True, env=env, timeout=TIMEOUT_S)
    assert proc.returncode == 0, explain(proc)
    for key in ("INPUT", "CHECKPOINT", "DIRECTION", "TILE", "OVERLAP", "NORM", "STATS",
                "BATCH_SIZE", "DEVICE", "BANDS", "BAND_NAMES", "AOI", "BLEND", "PRECISION",
                "COG", "COMPRESS", "OUTPUT"):
        assert f"\n{key}: " in proc.stdout
    # qgis_process lists a choice's values by number; its help (only) says names work too
    # (test_qgis_dialogs checks that the dialogs' help leaves this out)
    assert "given by name (e.g. DIRECTION=a2b) or by number (DIRECTION=0)" in proc.stdout, \
        explain(proc)


# -- translate -----------------------------------------------------------------------------------

@pytest.mark.parametrize("crs", [PROJECTED, GEOGRAPHIC])
def test_translate_keeps_crs_transform_and_size(qgis_process, env, make_raster, checkpoint,
                                                tmp_path, crs):
    import rasterio

    src = make_raster("in.tif", width=67, height=45, count=4, crs=crs, nodata=0)
    ckpt = checkpoint(4, 3)
    out = tmp_path / "out" / "translated.tif"
    proc, results = run_alg(qgis_process, env, "geogan:translate", INPUT=src, CHECKPOINT=ckpt,
                            DIRECTION="a2b", TILE=32, OVERLAP=8, BATCH_SIZE=2, DEVICE="cpu",
                            OUTPUT=out)
    assert proc.returncode == 0, explain(proc)
    assert Path(results["OUTPUT"]) == out
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert b.crs == a.crs
        assert b.transform == a.transform
        assert (b.width, b.height) == (a.width, a.height)
        assert b.count == 3
        data = b.read()
    assert data.std() > 0, "the generator output is not constant"
    assert sorted(p.name for p in out.parent.iterdir()) == ["translated.tif"]


def test_translate_an_area_of_interest_with_band_names(qgis_process, env, make_raster,
                                                       checkpoint, tmp_path):
    import geopandas as gpd
    import rasterio
    from rasterio.enums import ColorInterp
    from rasterio.windows import Window
    from shapely.geometry import box

    src = make_raster("in.tif", width=67, height=45, count=4, nodata=0)
    aoi = tmp_path / "aoi.gpkg"  # columns 10-29, rows 5-24 of the 5 m grid
    gpd.GeoDataFrame(geometry=[box(485950, 5209122, 486050, 5209222)],
                     crs=PROJECTED).to_file(aoi)
    out = tmp_path / "part.tif"
    proc, _ = run_alg(qgis_process, env, "geogan:translate", INPUT=src,
                      CHECKPOINT=checkpoint(4, 3), TILE=32, OVERLAP=8, DEVICE="cpu", AOI=aoi,
                      BAND_NAMES="red,green,blue", OUTPUT=out)
    assert proc.returncode == 0, explain(proc)
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert b.crs == a.crs and (b.width, b.height) == (20, 20)
        assert b.transform == a.window_transform(Window(10, 5, 20, 20))
        assert b.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)


_ALPHA_BANDS = textwrap.dedent("""
    import json, sys
    from qgis.core import QgsApplication, QgsRasterLayer
    app = QgsApplication([], False)
    app.initQgis()
    out = {}
    for path in sys.argv[1:]:
        layer = QgsRasterLayer(path, "layer")
        assert layer.isValid(), path
        out[path] = layer.renderer().alphaBand()
        del layer
    print(json.dumps(out), flush=True)
    app.exitQgis()
""")


def _alpha_bands(*paths: Path) -> dict[str, int]:
    """``renderer().alphaBand()`` of each raster as QGIS loads it by default."""
    python = _qgis_python()
    if python is None:
        pytest.skip("no Python that imports qgis.core")
    proc = subprocess.run([python, "-c", _ALPHA_BANDS, *map(str, paths)], capture_output=True,
                          text=True, timeout=TIMEOUT_S,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 0, explain(proc)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_translated_four_band_raster_loads_without_an_alpha_band(qgis_process, env, make_raster,
                                                                  checkpoint, tmp_path):
    """The NIR band of a 4-band translation is not QGIS's transparency band (as in the source)."""
    import rasterio
    from rasterio.enums import ColorInterp

    src = make_raster("naip.tif", width=50, height=38, count=4, nodata=0)  # gray/undefined
    rgba_default = make_raster("rgba.tif", width=50, height=38, count=4, photometric="RGB",
                               alpha="YES")  # what every 4-band output used to be
    out = tmp_path / "translated.tif"
    proc, _ = run_alg(qgis_process, env, "geogan:translate", INPUT=src,
                      CHECKPOINT=checkpoint(4, 4), TILE=32, OVERLAP=4, DEVICE="cpu", OUTPUT=out)
    assert proc.returncode == 0, explain(proc)
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert b.count == 4 and b.colorinterp == a.colorinterp
        assert ColorInterp.alpha not in b.colorinterp
    alpha = _alpha_bands(src, out, rgba_default)
    assert alpha[str(rgba_default)] == 4  # the check can fail: QGIS does pick up alpha bands
    assert alpha[str(src)] == -1
    assert alpha[str(out)] == -1


def test_translate_reverse_direction_with_executable_from_environment(
        qgis_process, make_raster, checkpoint, tmp_path):
    """GEOGAN_EXECUTABLE is used when the Processing setting is empty; b2a reads domain B."""
    import rasterio

    env = qgis_env(make_profile(tmp_path / "settings", None), tmp_path, GEOGAN_EXE)
    src = make_raster("in3.tif", width=40, height=33, count=3)
    out = tmp_path / "b2a.tif"
    proc, _ = run_alg(qgis_process, env, "geogan:translate", INPUT=src,
                      CHECKPOINT=checkpoint(4, 3), DIRECTION="b2a", TILE=32, OVERLAP=4,
                      DEVICE="cpu", OUTPUT=out)
    assert proc.returncode == 0, explain(proc)
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert (b.crs, b.transform, b.width, b.height) == (a.crs, a.transform, a.width,
                                                           a.height)
        assert b.count == 4


def test_without_geogan_the_error_says_what_to_set(qgis_process, make_raster, checkpoint,
                                                   tmp_path):
    env = qgis_env(make_profile(tmp_path / "settings", None), tmp_path)
    out = tmp_path / "never.tif"
    proc, _ = run_alg(qgis_process, env, "geogan:translate", INPUT=make_raster(count=4),
                      CHECKPOINT=checkpoint(4, 3), OUTPUT=out)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "geogan is neither importable in QGIS's Python nor on PATH" in text, explain(proc)
    assert "GEOGAN_EXECUTABLE" in text
    assert not out.exists()


def test_missing_checkpoint_fails_with_a_clear_message(qgis_process, env, make_raster,
                                                       tmp_path):
    src = make_raster("in.tif", count=4)
    out = tmp_path / "never.tif"
    missing = tmp_path / "no_such_model.safetensors"
    proc, _ = run_alg(qgis_process, env, "geogan:translate", INPUT=src, CHECKPOINT=missing,
                      OUTPUT=out)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert f"checkpoint {missing} not found" in text, explain(proc)
    assert not out.exists()


def test_wrong_band_count_fails_with_a_clear_message(qgis_process, env, make_raster,
                                                     checkpoint, tmp_path):
    src = make_raster("rgb.tif", count=3)
    ckpt = checkpoint(4, 3)
    out = tmp_path / "never.tif"
    proc, _ = run_alg(qgis_process, env, "geogan:translate", INPUT=src, CHECKPOINT=ckpt,
                      DIRECTION="a2b", OUTPUT=out)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert f"{src} has 3 band(s) but the checkpoint's a2b generator expects 4" in text, \
        explain(proc)
    assert not out.exists()


def test_bands_parameter_feeds_a_four_band_raster_to_an_rgb_checkpoint(
        qgis_process, env, make_raster, checkpoint, tmp_path):
    import rasterio

    src = make_raster("naip.tif", count=4)
    ckpt = checkpoint(3, 3)
    out = tmp_path / "rgb_of_naip.tif"
    proc, _ = run_alg(qgis_process, env, "geogan:translate", INPUT=src, CHECKPOINT=ckpt,
                      DIRECTION="a2b", BANDS="1,2,3", TILE=32, OVERLAP=4, OUTPUT=out)
    assert proc.returncode == 0, explain(proc)
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert (b.count, b.crs, b.transform) == (3, a.crs, a.transform)
    proc, _ = run_alg(qgis_process, env, "geogan:translate", INPUT=src, CHECKPOINT=ckpt,
                      DIRECTION="a2b", BANDS="1,x", OUTPUT=tmp_path / "never.tif")
    assert proc.returncode != 0 and "Input bands '1,x'" in proc.stdout + proc.stderr
    assert not (tmp_path / "never.tif").exists()


def test_a_run_folder_is_a_checkpoint(qgis_process, env, make_raster, checkpoint, tmp_path):
    import shutil

    src = make_raster("rgb.tif", count=3)
    ckpt = checkpoint(3, 3)
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(ckpt, run / "model.safetensors")
    shutil.copy(ckpt.with_suffix(".json"), run / "model.json")
    out = tmp_path / "from_run.tif"
    proc, _ = run_alg(qgis_process, env, "geogan:translate", INPUT=src, CHECKPOINT=run,
                      DIRECTION="a2b", TILE=32, OVERLAP=4, OUTPUT=out)
    assert proc.returncode == 0, explain(proc)
    assert out.is_file()


def test_in_process_backend_inside_qgis_matches_the_executable(qgis_process, env, make_raster,
                                                               checkpoint, tmp_path):
    """When QGIS's Python can import geogan and torch, the library runs inside QGIS."""
    import sysconfig

    import rasterio

    qgis_py = _qgis_python()
    version = subprocess.run([qgis_py, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.strip() if qgis_py else ""
    if version != str(tuple(sys.version_info[:2])):
        pytest.skip(f"QGIS's Python {version or '(none)'} cannot load this environment's torch "
                    f"(Python {sys.version_info.major}.{sys.version_info.minor})")
    src = make_raster("in.tif", width=50, height=38, count=4, nodata=0)
    ckpt = checkpoint(4, 3)
    inproc_env = dict(env, GEOGAN_BACKEND="python",
                      PYTHONPATH=os.pathsep.join([sysconfig.get_paths()["purelib"], str(ROOT)]))
    outputs = {}
    for name, run_env in (("python", inproc_env), ("executable", env)):
        outputs[name] = tmp_path / f"{name}.tif"
        proc, _ = run_alg(qgis_process, run_env, "geogan:translate", INPUT=src, CHECKPOINT=ckpt,
                          TILE=32, OVERLAP=4, DEVICE="cpu", OUTPUT=outputs[name])
        assert proc.returncode == 0, explain(proc)
        # the executable backend logs the command it runs; the in-process one runs none
        assert ("running: " in proc.stdout) == (name == "executable"), explain(proc)
    with rasterio.open(outputs["python"]) as a, rasterio.open(outputs["executable"]) as b:
        assert (a.crs, a.transform, a.shape, a.nodata) == (b.crs, b.transform, b.shape, b.nodata)
        assert (a.read() == b.read()).all()


# -- tile ----------------------------------------------------------------------------------------

def test_tile_writes_chips_and_index(qgis_process, env, make_raster, tmp_path):
    import geopandas as gpd
    import rasterio

    src = make_raster("big.tif", width=70, height=50, count=3, crs=PROJECTED)
    outdir = tmp_path / "chips"
    proc, results = run_alg(qgis_process, env, "geogan:tile", INPUT=src, SIZE=32, OVERLAP=0,
                            OUTPUT=outdir)
    assert proc.returncode == 0, explain(proc)
    chips = sorted(outdir.rglob("*.tif"))
    assert len(chips) == int(results["CHIPS"]) > 0
    assert Path(results["INDEX"]) == outdir / "index.gpkg"
    index = gpd.read_file(outdir / "index.gpkg")
    assert len(index) == len(chips)
    with rasterio.open(src) as a:
        for chip in chips:
            with rasterio.open(chip) as c:
                assert c.crs == a.crs
                assert (c.width, c.height) == (32, 32)
                assert c.transform.a == a.transform.a and c.transform.e == a.transform.e
                # chips sit on the source pixel grid
                col, row = ~a.transform @ (c.transform.c, c.transform.f)
                assert col == pytest.approx(round(col)) and row == pytest.approx(round(row))


def test_tile_with_aoi_keeps_fewer_chips(qgis_process, env, make_raster, tmp_path):
    import geopandas as gpd
    import rasterio
    from shapely.geometry import box

    src = make_raster("big.tif", width=96, height=64, count=3, crs=PROJECTED)
    with rasterio.open(src) as a:
        left, bottom, right, top = a.bounds
    aoi = tmp_path / "aoi.gpkg"
    quarter = box(left, top - (top - bottom) / 3, left + (right - left) / 3, top)
    gpd.GeoDataFrame(geometry=[quarter], crs=PROJECTED).to_file(aoi)
    all_dir, aoi_dir = tmp_path / "all", tmp_path / "aoi_chips"
    proc, full = run_alg(qgis_process, env, "geogan:tile", INPUT=src, SIZE=32, OUTPUT=all_dir)
    assert proc.returncode == 0, explain(proc)
    proc, part = run_alg(qgis_process, env, "geogan:tile", INPUT=src, SIZE=32, AOI=aoi,
                         OUTPUT=aoi_dir)
    assert proc.returncode == 0, explain(proc)
    assert 0 < int(part["CHIPS"]) < int(full["CHIPS"])


def test_tile_refuses_a_non_empty_folder_without_overwrite(qgis_process, env, make_raster,
                                                           tmp_path):
    src = make_raster("big.tif", width=40, height=40)
    outdir = tmp_path / "busy"
    outdir.mkdir()
    (outdir / "notes.txt").write_text("mine")
    proc, _ = run_alg(qgis_process, env, "geogan:tile", INPUT=src, SIZE=32, OUTPUT=outdir)
    assert proc.returncode != 0
    # in the dialog's words: its checkbox, not the CLI's --overwrite
    assert "'Replace a non-empty output folder'" in proc.stdout + proc.stderr, explain(proc)
    assert "--overwrite" not in proc.stdout + proc.stderr
    assert [p.name for p in outdir.iterdir()] == ["notes.txt"]


def test_enum_parameters_take_names_and_indexes_and_errors_use_dialog_words(
        qgis_process, env, make_raster, checkpoint, tmp_path):
    """DIRECTION=1 (as ``qgis_process help`` documents it) and NORM=window (by name) are both
    accepted; an error names the dialog's parameters and is not also relayed as the CLI's
    ``Error:`` line."""
    src = make_raster("in.tif", width=40, height=40, count=3)
    ckpt = checkpoint(3, 3)
    proc, results = run_alg(qgis_process, env, "geogan:translate", INPUT=src,
                            CHECKPOINT=ckpt, DIRECTION=1, NORM="window", TILE=32, OVERLAP=8,
                            OUTPUT=tmp_path / "ok.tif")
    assert proc.returncode == 0, explain(proc)
    assert Path(results["OUTPUT"]).is_file()
    proc, _ = run_alg(qgis_process, env, "geogan:translate", INPUT=src, CHECKPOINT=ckpt,
                      DIRECTION="b2a", NORM=0, TILE=32, OVERLAP=20,
                      OUTPUT=tmp_path / "out.tif")
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Incorrect parameter value" not in text, explain(proc)
    assert "'Tile overlap (pixels)' must be between 0 and half the tile (16)" in text, \
        explain(proc)
    assert "Error: " not in text and "--overlap must" not in text, explain(proc)
    proc, _ = run_alg(qgis_process, env, "geogan:translate", INPUT=src, CHECKPOINT=ckpt,
                      DIRECTION="sideways", OUTPUT=tmp_path / "out2.tif")
    assert proc.returncode != 0 and "Incorrect parameter value for DIRECTION" in \
        proc.stdout + proc.stderr, explain(proc)


# -- train -------------------------------------------------------------------------------------

def test_train_writes_a_checkpoint(qgis_process, env, make_raster, tmp_path):
    for domain in ("A", "B"):
        for i in range(2):
            make_raster(f"{domain}/chip_{i}.tif", width=32, height=32, count=3,
                        seed=i + (10 if domain == "B" else 0))
    run_dir = tmp_path / "run"
    proc, results = run_alg(qgis_process, env, "geogan:train", A=tmp_path / "A",
                            B=tmp_path / "B", MODEL="cyclegan", EPOCHS=1, MAX_STEPS=1,
                            CROP=32, GENERATOR="resnet_6blocks", NGF=8, DEVICE="cpu",
                            OUTPUT=run_dir)
    assert proc.returncode == 0, explain(proc)
    ckpt = Path(results["CHECKPOINT"])
    assert ckpt == run_dir / "model.safetensors" and ckpt.is_file()
    meta = json.loads(ckpt.with_suffix(".json").read_text())
    assert meta["model"] == "cyclegan"
    assert meta["generators"]["a2b"]["arch"] == "resnet_6blocks"
    assert meta["generators"]["a2b"]["kwargs"]["ngf"] == 8
    assert len(meta["domains"]["a"]["norm"]["lo"]) == 3


def test_train_from_rasters_writes_a_checkpoint(qgis_process, env, make_raster, tmp_path):
    a1 = make_raster("2009/a1.tif", width=64, height=48, count=3, seed=1)
    a2 = make_raster("2009/a2.tif", width=50, height=60, count=3, seed=2)
    b = make_raster("2020/b.tif", width=64, height=64, count=4, seed=3)
    run_dir = tmp_path / "run"
    proc, results = run_alg(qgis_process, env, "geogan:train", A_RASTERS=[a1, a2],
                            B_RASTERS=[b], MODEL="cyclegan", EPOCHS=1, MAX_STEPS=1, CROP=32,
                            GENERATOR="resnet_6blocks", NGF=8, DEVICE="cpu", OUTPUT=run_dir)
    assert proc.returncode == 0, explain(proc)
    ckpt = Path(results["CHECKPOINT"])
    meta = json.loads(ckpt.with_suffix(".json").read_text())
    assert meta["training"]["layout"] == "raster_windows"
    assert (meta["domains"]["a"]["bands"], meta["domains"]["b"]["bands"]) == (3, 4)
    state = json.loads((run_dir / "train_state.json").read_text())
    assert sorted(Path(p).name for p in state["config"]["a"]) == ["a1.tif", "a2.tif"]
    # rasters and a chip folder for one domain at once is refused
    proc, _ = run_alg(qgis_process, env, "geogan:train", A_RASTERS=[a1], A=tmp_path / "2009",
                      B_RASTERS=[b], MAX_STEPS=1, CROP=32, DEVICE="cpu",
                      OUTPUT=tmp_path / "run2")
    assert proc.returncode != 0
    assert "not both" in proc.stdout + proc.stderr, explain(proc)


# -- cancel from QGIS ----------------------------------------------------------------------------

CANCEL_SCRIPT = """
import sys, time
sys.path.insert(0, PLUGIN_PATH)
from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback
app = QgsApplication([], False)
app.initQgis()
sys.path.insert(0, QgsApplication.pkgDataPath() + "/python/plugins")
from processing.core.Processing import Processing
Processing.initialize()
import processing
import geogan_qgis
plugin = geogan_qgis.classFactory(None)
plugin.initProcessing()
feedback = QgsProcessingFeedback()
state = {}

def cancel_on_first_progress(percent):
    if percent > 0 and "at" not in state:
        state["at"], state["percent"] = time.monotonic(), percent
        feedback.cancel()

feedback.progressChanged.connect(cancel_on_first_progress)
try:
    processing.run("geogan:translate", {"INPUT": sys.argv[1], "CHECKPOINT": sys.argv[2],
                                        "TILE": 32, "OVERLAP": 4, "DEVICE": "cpu",
                                        "OUTPUT": sys.argv[3]}, feedback=feedback)
    print("RESULT finished")
except QgsProcessingException as exc:
    print("RESULT error:", exc)
print("STOPPED_AFTER", time.monotonic() - state["at"], "PERCENT", state["percent"])
"""


def test_cancel_stops_translate_quickly_and_leaves_nothing(make_raster, checkpoint, tmp_path):
    """Cancel as soon as progress shows: the run stops within seconds, no output is left."""
    python = _qgis_python()
    if python is None:
        pytest.skip("no Python with the qgis module (apt-get install python3-qgis)")
    src = make_raster("big.tif", width=480, height=320, count=4)
    outdir = tmp_path / "out"
    outdir.mkdir()
    script = tmp_path / "cancel.py"
    script.write_text(f"PLUGIN_PATH = {str(PLUGIN_PATH)!r}\n" + CANCEL_SCRIPT)
    env = qgis_env(make_profile(tmp_path / "settings", None), tmp_path, GEOGAN_EXE)
    proc = subprocess.run([python, str(script), str(src), str(checkpoint(4, 3)),
                           str(outdir / "translated.tif")], capture_output=True, text=True,
                          env=env, timeout=TIMEOUT_S)
    assert proc.returncode == 0, explain(proc)
    assert "RESULT error: geogan was cancelled" in proc.stdout, explain(proc)
    fields = proc.stdout.split("STOPPED_AFTER")[1].split()
    stopped_after, percent = float(fields[0]), float(fields[2])
    assert 0 < percent < 100
    assert stopped_after < 10.0
    assert list(outdir.iterdir()) == []


# -- start-up stays light ------------------------------------------------------------------------

def test_plugin_start_up_imports_neither_geogan_nor_torch(tmp_path):
    """Load the plugin and its provider in QGIS's Python with heavy imports forbidden."""
    python = _qgis_python()
    if python is None:
        pytest.skip("no Python with the qgis module (apt-get install python3-qgis)")
    script = tmp_path / "startup.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        FORBIDDEN = ("torch", "geogan", "rasterio", "geopandas")

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in FORBIDDEN:
                    raise ImportError("heavy import at start-up: " + name)
                return None

        sys.meta_path.insert(0, Block())
        sys.path.insert(0, {str(PLUGIN_PATH)!r})
        from qgis.core import QgsApplication
        app = QgsApplication([], False)
        app.initQgis()
        import geogan_qgis
        plugin = geogan_qgis.classFactory(None)
        plugin.initProcessing()
        algs = sorted(a.id() for a in QgsApplication.processingRegistry()
                      .providerById("geogan").algorithms())
        print(algs)
        loaded = [m for m in sys.modules if m.split(".")[0] in FORBIDDEN]
        assert not loaded, loaded
        plugin.unload()
    """))
    env = qgis_env(make_profile(tmp_path / "settings", None), tmp_path)
    proc = subprocess.run([python, str(script)], capture_output=True, text=True, env=env,
                          timeout=TIMEOUT_S)
    assert proc.returncode == 0, explain(proc)
    assert "['geogan:tile', 'geogan:train', 'geogan:translate']" in proc.stdout


def _qgis_python() -> str | None:
    for python in (sys.executable, "/usr/bin/python3", shutil.which("python3")):
        if python and subprocess.run([python, "-c", "import qgis.core"], capture_output=True,
                                     env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
                                     timeout=60).returncode == 0:
            return python
    return None


_RENDERER_SCRIPT = """
import sys
from qgis.core import QgsApplication, QgsRasterLayer
app = QgsApplication([], False)
app.initQgis()
layer = QgsRasterLayer(sys.argv[1], "layer")
assert layer.isValid(), sys.argv[1]
r = layer.renderer()
print("RENDERER", {fields}, flush=True)
"""


def qgis_renderer(python: str, raster: Path, fields: str, tmp_path: Path) -> str:
    """What QGIS 3.22 (headless, a fresh profile in ``tmp_path``) says of the renderer ``r``
    of ``raster`` once it loads the layer with the style beside it: the printed ``fields``
    (Python expressions of ``r``, comma-separated), space-separated."""
    script = tmp_path / "load_renderer.py"
    script.write_text(_RENDERER_SCRIPT.replace("{fields}", fields))
    proc = subprocess.run([python, str(script), str(raster)], capture_output=True, text=True,
                          timeout=180, env=qgis_env(make_profile(tmp_path / "settings", None),
                                                    tmp_path))
    assert proc.returncode == 0, explain(proc)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RENDERER "))
    return line[len("RENDERER "):]


_HTML_METADATA = textwrap.dedent("""
    import sys
    from qgis.core import QgsApplication, QgsRasterLayer
    app = QgsApplication([], False)
    app.initQgis()
    layer = QgsRasterLayer(sys.argv[1], "layer")
    assert layer.isValid(), sys.argv[1]
    print("SHOWN" if sys.argv[2] in layer.htmlMetadata() else "MISSING", flush=True)
    del layer
    app.exitQgis()
""")


def test_the_model_s_resolution_in_qgis_and_the_layer_says_it_is_synthetic(
        qgis_process, env, make_raster, tmp_path):
    """A 1 m raster and a model learned at 5 m: the log warns in the dialog's words; with
    the parameter the output keeps the input's grid; QGIS shows the description sentence
    in the layer's information."""
    import rasterio
    from rasterio.transform import from_origin
    from test_qgis_backend import checkpoint_at_5m

    src = make_raster("fine.tif", width=80, height=60,
                      transform=from_origin(485900.0, 5209247.0, 1.0, 1.0))
    ckpt = checkpoint_at_5m(tmp_path / "m5.safetensors")
    proc, _ = run_alg(qgis_process, env, "geogan:translate", INPUT=src, CHECKPOINT=ckpt,
                      TILE=32, OVERLAP=4, DEVICE="cpu", OUTPUT=tmp_path / "plain.tif")
    assert proc.returncode == 0, explain(proc)
    assert "the model learned a at 5 m per pixel" in proc.stdout, explain(proc)
    assert "pass 'Translate at the model's ground resolution'" in proc.stdout, explain(proc)
    out = tmp_path / "at5m.tif"
    proc, _ = run_alg(qgis_process, env, "geogan:translate", INPUT=src, CHECKPOINT=ckpt,
                      TILE=32, OVERLAP=4, DEVICE="cpu", AT_MODEL_RESOLUTION="true", OUTPUT=out)
    assert proc.returncode == 0, explain(proc)
    assert "the model learned" not in proc.stdout, explain(proc)
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert (b.crs, b.transform, b.shape) == (a.crs, a.transform, a.shape)
        sentence = b.tags()["TIFFTAG_IMAGEDESCRIPTION"]
    assert sentence == ("Synthetic imagery generated by geogan from fine.tif with model "
                        "m5.safetensors (a to b); not an observation.")
    python = _qgis_python()
    if python is None:
        pytest.skip("no Python that imports qgis.core")
    shown = subprocess.run([python, "-c", _HTML_METADATA, str(out), sentence],
                           capture_output=True, text=True, timeout=TIMEOUT_S,
                           env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert shown.returncode == 0, explain(shown)
    assert shown.stdout.strip().splitlines()[-1] == "SHOWN"
