"""The QGIS plugin's backend without QGIS: progress parsing, the external run, cancel, cleanup.

The plugin package is imported the way QGIS imports it (``geogan_qgis`` from the
plugin folder); its backend and job modules import neither QGIS nor torch.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import make_checkpoint

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "qgis_plugin"
sys.path.insert(0, str(PLUGIN_DIR))

from geogan_qgis import backend, jobs  # noqa: E402
from geogan_qgis.backend import BackendError, Job, JobCancelled  # noqa: E402
from geogan_qgis.contract import choices as plugin_choices  # noqa: E402
from geogan_qgis.contract.names import INDEX_NAME, RUN_CHECKPOINT_NAME  # noqa: E402


class RecordingFeedback:
    """A backend.Feedback that records everything.

    With ``cancel_on_progress`` it cancels when the job first reports progress (the job
    is then under way and has started writing): ``on_cancel`` runs at that moment (to
    look at the partial output), then :attr:`cancelled` is set and its time noted.
    """

    def __init__(self, cancel_on_progress: bool = False,
                 on_cancel: Callable[[], None] | None = None) -> None:
        self.progress: list[float] = []
        self.texts: list[str] = []
        self.messages: list[str] = []
        self.cancelled = threading.Event()
        self.cancelled_at: float | None = None
        self._cancel_on_progress = cancel_on_progress
        self._on_cancel = on_cancel

    def set_progress(self, percent: float) -> None:
        self.progress.append(percent)
        if self._cancel_on_progress and not self.cancelled.is_set():
            if self._on_cancel is not None:
                self._on_cancel()
            self.cancelled_at = time.monotonic()
            self.cancelled.set()

    def set_text(self, text: str) -> None:
        self.texts.append(text)

    def info(self, message: str) -> None:
        self.messages.append(message)

    def is_cancelled(self) -> bool:
        return self.cancelled.is_set()


def fake_geogan(tmp_path: Path, body: str, name: str = "fake-geogan") -> Path:
    """An executable Python script standing in for the geogan command."""
    script = tmp_path / name
    script.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    script.chmod(0o755)
    return script


# -- parsing -------------------------------------------------------------------------------------

def test_parse_progress_line_reads_fraction_desc_and_figures():
    line = json.dumps({"progress": 0.42, "done": 42, "total": 100, "desc": "translating",
                       "loss_G": 0.5})
    event = backend.parse_progress_line(line + "\n")
    assert event is not None
    assert event.fraction == pytest.approx(0.42)
    assert (event.done, event.total, event.desc) == (42, 100, "translating")
    assert event.info == {"loss_G": 0.5}


@pytest.mark.parametrize("line", [
    "INFO geogan.translate: wrote out.tif",
    "Error: checkpoint x not found",
    '{"done": 3, "total": 4}',          # no progress key
    '{"progress": "many"}',             # not a number
    "{not json}",
    "[1, 2]",
    "",
])
def test_parse_progress_line_ignores_other_lines(line):
    assert backend.parse_progress_line(line) is None


def test_parse_progress_line_clamps_out_of_range():
    assert backend.parse_progress_line('{"progress": 1.7}').fraction == 1.0
    assert backend.parse_progress_line('{"progress": -2}').fraction == 0.0
    assert backend.parse_progress_line('{"progress": NaN}').fraction == 0.0


def test_parse_error_line():
    assert backend.parse_error_line("Error: a.tif has 3 bands\n") == "a.tif has 3 bands"
    assert backend.parse_error_line("ERROR something") is None
    assert backend.parse_error_line("Errors: x") is None


# -- executable and backend choice ---------------------------------------------------------------

def test_resolve_executable_prefers_setting_then_env_then_path(tmp_path, monkeypatch):
    one = fake_geogan(tmp_path, "", "one")
    two = fake_geogan(tmp_path, "", "two")
    path_dir = tmp_path / "bin"
    path_dir.mkdir()
    on_path = fake_geogan(path_dir, "", "geogan")
    monkeypatch.setenv("PATH", str(path_dir))
    monkeypatch.setenv(backend.ENV_EXECUTABLE, str(two))
    assert backend.resolve_executable(str(one)) == str(one)
    assert backend.resolve_executable("") == str(two)
    monkeypatch.delenv(backend.ENV_EXECUTABLE)
    assert backend.resolve_executable(None) == str(on_path)


def test_resolve_executable_explains_what_to_set(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(backend.ENV_EXECUTABLE, raising=False)
    with pytest.raises(BackendError, match="geogan executable") as err:
        backend.resolve_executable("")
    assert "\n" not in str(err.value)
    missing = tmp_path / "nowhere" / "geogan"
    with pytest.raises(BackendError, match=str(missing)):
        backend.resolve_executable(str(missing))


def test_choose_backend(monkeypatch):
    monkeypatch.delenv(backend.ENV_BACKEND, raising=False)
    monkeypatch.setattr(backend, "in_process_available", lambda: False)
    assert backend.choose_backend("") == "executable"
    assert backend.choose_backend("auto") == "executable"
    with pytest.raises(BackendError, match="cannot import geogan"):
        backend.choose_backend("python")
    monkeypatch.setattr(backend, "in_process_available", lambda: True)
    assert backend.choose_backend("auto") == "python"
    monkeypatch.setenv(backend.ENV_BACKEND, "executable")
    assert backend.choose_backend("") == "executable"   # env fills an empty setting
    assert backend.choose_backend("python") == "python"  # the setting wins
    with pytest.raises(BackendError, match="unknown geogan backend"):
        backend.choose_backend("gpu")


def test_in_process_available_matches_this_python():
    import importlib.util

    expected = all(importlib.util.find_spec(m) is not None for m in ("geogan", "torch"))
    assert backend.in_process_available() is expected


def test_child_environment_drops_qgis_python_and_proj_settings():
    env = backend.child_environment({"PATH": "/bin", "PYTHONPATH": "/qgis/python",
                                     "PYTHONHOME": "/qgis", "PROJ_LIB": "/qgis/proj",
                                     "GDAL_DATA": "/qgis/gdal", "HOME": "/home/me"})
    assert env["PATH"] == "/bin" and env["HOME"] == "/home/me"
    for name in ("PYTHONPATH", "PYTHONHOME", "PROJ_LIB", "GDAL_DATA"):
        assert name not in env
    assert env["PYTHONUNBUFFERED"] == "1"


# -- running the external command ----------------------------------------------------------------

PROGRESS_SCRIPT = """
import json, sys
assert sys.argv[1:3] == ["--progress", "json"], sys.argv
print("starting", sys.argv[3])
for i in range(1, 5):
    sys.stderr.write(json.dumps({"progress": i / 4, "done": i, "total": 4,
                                 "desc": "step"}) + "\\n")
sys.stderr.write("INFO geogan: a log line\\n")
"""


def _job(args: tuple[str, ...], outputs: tuple[Path, ...] = ()) -> Job:
    def not_in_process(progress, cancel):
        raise AssertionError("the executable backend must not call the library")

    return Job(args, outputs, not_in_process)


def test_run_external_relays_progress_and_messages(tmp_path):
    exe = fake_geogan(tmp_path, PROGRESS_SCRIPT)
    fb = RecordingFeedback()
    backend.run_job(_job(("tile", "x.tif")), fb, backend="executable", executable=str(exe))
    assert fb.progress == [25.0, 50.0, 75.0, 100.0]
    assert fb.texts == ["step"]
    assert "starting tile" in fb.messages
    assert "INFO geogan: a log line" in fb.messages
    assert not any(m.startswith("{") for m in fb.messages)  # progress lines are not logged


def test_run_external_raises_the_cli_error_message(tmp_path):
    exe = fake_geogan(tmp_path, """
        import sys
        sys.stderr.write('{"progress": 0.1}\\n')
        sys.stderr.write("Error: in.tif has 3 band(s) but the checkpoint expects 4\\n")
        sys.exit(1)
    """)
    with pytest.raises(BackendError) as err:
        backend.run_job(_job(("translate",)), RecordingFeedback(), "executable", str(exe))
    assert str(err.value) == "in.tif has 3 band(s) but the checkpoint expects 4"
    assert not isinstance(err.value, JobCancelled)


def test_run_external_without_error_line_reports_status_and_last_line(tmp_path):
    exe = fake_geogan(tmp_path, """
        import sys
        sys.stderr.write("Traceback: boom\\n")
        sys.exit(3)
    """)
    with pytest.raises(BackendError, match=r"status 3: Traceback: boom"):
        backend.run_job(_job(("train",)), RecordingFeedback(), "executable", str(exe))


@pytest.mark.filterwarnings("error")
def test_run_external_closes_the_pipes_of_the_child(tmp_path):
    """No ``ResourceWarning: unclosed file`` (an error here) after a run that succeeds or fails."""
    import gc

    ok = fake_geogan(tmp_path, PROGRESS_SCRIPT, "ok-geogan")
    failing = fake_geogan(tmp_path, """
        import sys
        sys.stderr.write("Error: model diverged\\n")
        sys.exit(1)
    """, "failing-geogan")
    fb = RecordingFeedback()
    backend.run_job(_job(("tile", "x.tif")), fb, backend="executable", executable=str(ok))
    with pytest.raises(BackendError, match="^model diverged$"):
        backend.run_job(_job(("translate",)), fb, backend="executable", executable=str(failing))
    gc.collect()  # an unclosed pipe warns when its file object is collected
    assert fb.progress[-1] == 100.0


def test_run_external_that_cannot_start(tmp_path):
    not_exe = tmp_path / "geogan.txt"
    not_exe.write_text("not a program")
    with pytest.raises(BackendError, match="cannot run"):
        backend.run_external([str(not_exe)], RecordingFeedback())


# A slow "translate": writes a hidden temporary beside the output the way geogan's
# atomic writer does, then reports progress for a minute (a cancel that never comes
# fails the test: the run finishes). With CLEAN it removes the temporary on SIGINT (as
# geogan does through KeyboardInterrupt); without, it ignores SIGINT.
SLOW_SCRIPT = """
import json, signal, sys, time
out = sys.argv[-1]
import os
tmp = os.path.join(os.path.dirname(out), "." + os.path.basename(out)
                   + "." + str(os.getpid()) + ".abcdef01.tmp.tif")
open(tmp, "w").write("partial")
open(out, "w").write("should not survive")
if not CLEAN:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
try:
    for i in range(1, 1201):
        sys.stderr.write(json.dumps({"progress": i / 1200}) + "\\n")
        time.sleep(0.05)
except KeyboardInterrupt:
    os.remove(tmp)
    sys.exit(130)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("clean", [True, False], ids=["interrupt", "kill"])
def test_cancel_stops_the_child_and_removes_partial_output(tmp_path, monkeypatch, clean):
    monkeypatch.setattr(backend, "INTERRUPT_GRACE_S", 1.0)
    exe = fake_geogan(tmp_path, f"CLEAN = {clean}\n" + SLOW_SCRIPT)
    outdir = tmp_path / "out"
    outdir.mkdir()
    keep = outdir / "keep.tif"
    keep.write_text("user file")
    output = outdir / "translated.tif"
    at_cancel: list[str] = []
    fb = RecordingFeedback(cancel_on_progress=True, on_cancel=lambda: at_cancel.extend(
        sorted(p.name for p in outdir.iterdir())))
    with pytest.raises(JobCancelled):
        backend.run_job(_job(("translate", str(output)), (output,)), fb, "executable",
                        str(exe))
    assert fb.cancelled_at is not None
    assert time.monotonic() - fb.cancelled_at < backend.INTERRUPT_GRACE_S + 3.0
    assert fb.progress[-1] < 100.0  # stopped part way
    # the child had written its output and temporary; the cancel removed both
    assert len(at_cancel) == 3 and at_cancel[1:] == ["keep.tif", "translated.tif"]
    assert at_cancel[0].startswith(".translated.tif.") and at_cancel[0].endswith(".tmp.tif")
    assert sorted(p.name for p in outdir.iterdir()) == ["keep.tif"]
    assert keep.read_text() == "user file"


def test_failure_keeps_an_output_that_existed_before(tmp_path):
    output = tmp_path / "translated.tif"
    output.write_text("previous result")
    exe = fake_geogan(tmp_path, """
        import os, sys
        out = sys.argv[-1]
        tmp = ".translated.tif.999999.abcdef01.tmp.tif"
        open(os.path.join(os.path.dirname(out), tmp), "w").write("p")
        sys.stderr.write("Error: model diverged\\n")
        sys.exit(1)
    """)
    fb = RecordingFeedback()
    with pytest.raises(BackendError, match="model diverged"):
        backend.run_job(_job(("translate", str(output)), (output,)), fb, "executable",
                        str(exe))
    assert output.read_text() == "previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake-geogan", "translated.tif"]
    assert any("removed partial output" in m for m in fb.messages)


def test_failed_folder_output_is_removed(tmp_path):
    outdir = tmp_path / "chips"
    exe = fake_geogan(tmp_path, """
        import os, sys
        os.makedirs(os.path.join(sys.argv[-1], "sub"))
        sys.exit(2)
    """)
    with pytest.raises(BackendError):
        backend.run_job(_job(("tile", str(outdir)), (outdir,)), RecordingFeedback(),
                        "executable", str(exe))
    assert not outdir.exists()


def test_killed_job_gets_back_the_output_it_had_moved_aside(tmp_path):
    """Killed between the two renames of a folder swap: the old folder is the only copy."""
    outdir = tmp_path / "chips"
    outdir.mkdir()
    (outdir / "index.gpkg").write_text("previous chips")
    exe = fake_geogan(tmp_path, """
        import os, signal, sys
        parent, name = os.path.split(sys.argv[-1])
        os.makedirs(os.path.join(parent, f".{name}.999999.abcdef01.tmp", "A"))
        os.rename(sys.argv[-1], os.path.join(parent, f".{name}.999999.abcdef01.old"))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    with pytest.raises(BackendError):
        backend.run_job(_job(("tile", str(outdir)), (outdir,)), RecordingFeedback(),
                        "executable", str(exe))
    assert (outdir / "index.gpkg").read_text() == "previous chips"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chips", "fake-geogan"]


# -- in-process backend --------------------------------------------------------------------------

def test_in_process_adapts_progress_cancel_and_errors(tmp_path):
    pytest.importorskip("geogan")
    from geogan.errors import InputError
    from geogan.progress import check_cancel

    output = tmp_path / "out.tif"

    def work(progress, cancel):
        output.write_text("partial")
        for i in range(1, 4):
            progress(i, 4, desc="phase")
            check_cancel(cancel, "translation")
        raise InputError("in.tif has no CRS; assign one first")

    fb = RecordingFeedback()
    with pytest.raises(BackendError, match="^in.tif has no CRS; assign one first$"):
        backend.run_job(Job(("translate",), (output,), work, "translating"), fb, "python")
    assert fb.progress == [25.0, 50.0, 75.0]
    assert fb.texts == ["translating", "phase"]
    assert not output.exists()

    written: list[bool] = []
    fb = RecordingFeedback(cancel_on_progress=True,
                           on_cancel=lambda: written.append(output.exists()))
    with pytest.raises(JobCancelled, match="cancelled"):
        backend.run_job(Job(("translate",), (output,), work), fb, "python")
    assert fb.progress == [25.0]  # the first check after the cancel stopped the work
    assert written == [True] and not output.exists()


def test_in_process_unexpected_error_is_one_line_with_the_traceback_logged(tmp_path):
    pytest.importorskip("geogan")

    def work(progress, cancel):
        raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")

    fb = RecordingFeedback()
    with pytest.raises(BackendError) as err:
        backend.run_job(Job(("translate",), (), work, "translating"), fb, "python")
    assert str(err.value) == ("translating failed (RuntimeError: CUDA out of memory.); "
                              "the traceback is in the log")
    assert any("Traceback" in m and "Tried to allocate" in m for m in fb.messages)


def test_cancelled_training_keeps_its_run_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(backend, "INTERRUPT_GRACE_S", 1.0)
    run_dir = tmp_path / "run"
    exe = fake_geogan(tmp_path, """
        import os, sys, time
        run = sys.argv[sys.argv.index("-o") + 1]
        os.makedirs(run)
        open(os.path.join(run, "model.safetensors"), "w").write("step 1")
        try:
            for _ in range(1200):  # a minute; a cancel that never comes fails the test
                sys.stderr.write('{"progress": 0.1}\\n')
                time.sleep(0.05)
        except KeyboardInterrupt:
            tmp = ".model.safetensors.999999.abcdef01.tmp.safetensors"
            open(os.path.join(run, tmp), "w").write("half-saved")
            sys.exit(130)
    """)
    job = Job(("train", "-o", str(run_dir)), (run_dir, run_dir / "model.safetensors"),
              lambda p, c: None, "training", keep_partial=True)
    fb = RecordingFeedback(cancel_on_progress=True)
    with pytest.raises(JobCancelled, match=f"training was cancelled; {run_dir} keeps"):
        backend.run_job(job, fb, "executable", str(exe))
    assert fb.cancelled_at is not None
    assert time.monotonic() - fb.cancelled_at < backend.INTERRUPT_GRACE_S + 3.0
    assert sorted(p.name for p in run_dir.iterdir()) == ["model.safetensors"]


# -- checkpoint metadata without torch -----------------------------------------------------------

def write_fake_checkpoint(path: Path, bands_a: int, bands_b: int, directions=("a2b", "b2a"),
                          in_header: bool = True) -> Path:
    """A safetensors file with no tensors and geogan metadata (the format is a JSON header)."""
    meta = {"format": "geogan-checkpoint", "format_version": 1, "model": "cyclegan",
            "generators": {d: {"key": "G_" + d.upper(), "arch": "resnet_6blocks",
                               "kwargs": {}} for d in directions},
            "domains": {"a": {"name": "a", "norm": {"dtype": "uint8", "lo": [0.0] * bands_a,
                                                    "hi": [255.0] * bands_a}},
                        "b": {"name": "b", "norm": {"dtype": "uint8", "lo": [0.0] * bands_b,
                                                    "hi": [255.0] * bands_b}}}}
    header: dict = {"__metadata__": {"geogan": json.dumps(meta)}} if in_header else {}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    if not in_header:
        path.with_suffix(".json").write_text(json.dumps(meta))
    return path


def test_checkpoint_info_reads_bands_and_directions(tmp_path):
    ckpt = write_fake_checkpoint(tmp_path / "m.safetensors", 4, 3)
    info = jobs.checkpoint_info(ckpt)
    assert info.directions == ("a2b", "b2a")
    assert (info.input_bands("a2b"), info.output_bands("a2b")) == (4, 3)
    assert (info.input_bands("b2a"), info.output_bands("b2a")) == (3, 4)
    run = tmp_path / "run"
    run.mkdir()
    write_fake_checkpoint(run / "model.safetensors", 1, 1, ("a2b",), in_header=False)
    assert jobs.checkpoint_info(run).bands == {"a": 1, "b": 1}


def test_check_translate_input_messages(tmp_path):
    ckpt = write_fake_checkpoint(tmp_path / "m.safetensors", 4, 3, ("a2b",))
    assert jobs.check_translate_input(ckpt, "a2b", "in.tif", 4).path == ckpt
    with pytest.raises(BackendError, match=r"^in\.tif has 3 band\(s\) but the checkpoint's a2b "
                                           r"generator expects 4; choose a 4-band raster"):
        jobs.check_translate_input(ckpt, "a2b", "in.tif", 3)
    with pytest.raises(BackendError, match="no 'b2a' generator; available: a2b"):
        jobs.check_translate_input(ckpt, "b2a", "in.tif", 3)
    with pytest.raises(BackendError, match=r"checkpoint .*nope\.safetensors not found"):
        jobs.check_translate_input(tmp_path / "nope.safetensors", "a2b", "in.tif", 4)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(os.urandom(64))
    with pytest.raises(BackendError, match="truncated or not a safetensors file"):
        jobs.checkpoint_info(junk)


def test_fake_checkpoint_matches_the_library_reader(tmp_path):
    """The dependency-free reader and geogan.checkpoint agree on the same file."""
    pytest.importorskip("safetensors")
    checkpoint = pytest.importorskip("geogan.checkpoint")
    ckpt = write_fake_checkpoint(tmp_path / "m.safetensors", 4, 3)
    plugin = jobs.checkpoint_info(ckpt).meta
    assert checkpoint.read_checkpoint_meta(ckpt).to_json() == plugin.to_json()


# -- the jobs through the in-process backend (the QGIS tests cover the executable one) ---------

@pytest.fixture
def one_thread():
    """Torch on one thread: the machine is shared and these networks are tiny."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


#: :func:`conftest.make_checkpoint` arguments of the QGIS tests' untrained CycleGAN: both
#: directions, ngf 8, no nodata (bands as each test needs).
QGIS_CHECKPOINT = {"ngf": 8, "directions": ("a2b", "b2a"), "nodata": None}


def test_translate_job_in_process_keeps_the_georeference(make_raster, tmp_path, one_thread):
    pytest.importorskip("torch")
    import rasterio

    src = make_raster("in.tif", width=45, height=37, count=4, crs="EPSG:4326", nodata=0)
    ckpt = make_checkpoint(tmp_path / "m.safetensors", bands_a=4, **QGIS_CHECKPOINT)
    out = tmp_path / "out.tif"
    job = jobs.translate_job(ckpt, src, out, direction="a2b", tile=32, overlap=4, device="cpu")
    assert job.args[:3] == ("translate", "-o", str(out))
    assert job.args[-3:] == ("--", str(ckpt), str(src))
    fb = RecordingFeedback()
    result = backend.run_job(job, fb, backend="python")
    assert result == [out]
    assert fb.progress and fb.progress[-1] == pytest.approx(100.0)
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert (b.crs, b.transform, b.width, b.height, b.count) == (
            a.crs, a.transform, a.width, a.height, 3)


def test_translate_job_in_process_cancel_leaves_nothing(make_raster, tmp_path, one_thread):
    pytest.importorskip("torch")
    src = make_raster("in.tif", width=64, height=64, count=4)
    ckpt = make_checkpoint(tmp_path / "m.safetensors", bands_a=4, **QGIS_CHECKPOINT)
    outdir = tmp_path / "out"
    outdir.mkdir()
    job = jobs.translate_job(ckpt, src, outdir / "t.tif", tile=32, overlap=4, device="cpu")
    at_cancel: list[str] = []
    fb = RecordingFeedback(cancel_on_progress=True, on_cancel=lambda: at_cancel.extend(
        p.name for p in outdir.iterdir()))
    with pytest.raises(JobCancelled):
        backend.run_job(job, fb, backend="python")
    assert fb.progress[-1] < 100.0 and at_cancel  # stopped part way, a temporary written
    assert list(outdir.iterdir()) == []


def test_translate_job_in_process_reports_the_library_message(make_raster, tmp_path, one_thread):
    pytest.importorskip("torch")
    src = make_raster("rgb.tif", count=3)
    ckpt = make_checkpoint(tmp_path / "m.safetensors", bands_a=4, **QGIS_CHECKPOINT)
    job = jobs.translate_job(ckpt, src, tmp_path / "o.tif", tile=32, overlap=4, device="cpu")
    with pytest.raises(BackendError, match=r"has 3 band\(s\) but the checkpoint's a2b "
                                           r"generator expects 4"):
        backend.run_job(job, RecordingFeedback(), backend="python")
    assert not (tmp_path / "o.tif").exists()


def test_translate_job_norm_choices_and_stats_file(make_raster, tmp_path, one_thread):
    """The plugin's NORM choices and default are geogan's; a statistics file is passed on
    and one made for another model is refused with geogan's message."""
    pytest.importorskip("torch")
    from geogan.contract.choices import NORM_MODES
    from geogan.contract.options import TRANSLATE

    assert tuple(plugin_choices.NORM_MODES) == tuple(NORM_MODES)
    plain = jobs.translate_job(tmp_path / "m.safetensors", tmp_path / "in.tif", tmp_path / "o.tif")
    assert plain.args[plain.args.index("--norm") + 1] == TRANSLATE.default_of("norm")
    src = make_raster("in.tif", width=45, height=37, count=4)
    ckpt = make_checkpoint(tmp_path / "m.safetensors", bands_a=4, **QGIS_CHECKPOINT)
    stats = tmp_path / "s.stats.json"
    stats.write_text(json.dumps({"format": "geogan-norm-stats", "format_version": 1,
                                 "mode": "global", "model": {"sha256": "0" * 64},
                                 "layers": {}}))
    job = jobs.translate_job(ckpt, src, tmp_path / "o.tif", tile=32, overlap=4, device="cpu",
                             norm="global", stats=stats)
    assert ("--stats", str(stats)) == job.args[job.args.index("--stats"):][:2]
    with pytest.raises(BackendError, match="made for another model"):
        backend.run_job(job, RecordingFeedback(), backend="python")
    assert not (tmp_path / "o.tif").exists()
    outs = {}
    for norm in ("window", "global"):
        job = jobs.translate_job(ckpt, src, tmp_path / f"{norm}.tif", tile=32, overlap=4,
                                 device="cpu", norm=norm)
        assert ("--norm", norm) == job.args[job.args.index("--norm"):][:2]
        outs[norm] = backend.run_job(job, RecordingFeedback(), backend="python")[0]
    import rasterio

    with rasterio.open(outs["window"]) as a, rasterio.open(outs["global"]) as b:
        assert (a.read() != b.read()).any()


def test_tile_job_in_process_writes_chips_and_index(make_raster, tmp_path):
    pytest.importorskip("geopandas")
    src = make_raster("in.tif", width=70, height=40, count=3)
    outdir = tmp_path / "chips"
    job = jobs.tile_job(src, outdir, size=32, overlap=0)
    result = backend.run_job(job, RecordingFeedback(), backend="python")
    chips = sorted(outdir.rglob("*.tif"))
    assert result.chips == len(chips) > 0
    assert (outdir / INDEX_NAME).is_file()


def test_train_job_in_process_writes_a_checkpoint_and_resumes(make_raster, tmp_path, one_thread):
    pytest.importorskip("torch")
    for domain in ("A", "B"):
        for i in range(2):
            make_raster(f"{domain}/chip_{i}.tif", width=32, height=32, count=3, seed=i)
    run_dir = tmp_path / "run"
    job = jobs.train_job(tmp_path / "A", tmp_path / "B", run_dir, epochs=1, max_steps=1,
                         crop=32, generator="resnet_6blocks", ngf=8, device="cpu")
    assert job.keep_partial
    ckpt = backend.run_job(job, RecordingFeedback(), backend="python")
    assert Path(ckpt) == run_dir / RUN_CHECKPOINT_NAME
    info = jobs.checkpoint_info(ckpt)
    assert info.bands == {"a": 3, "b": 3} and info.directions == ("a2b", "b2a")
    resume = jobs.train_job(tmp_path / "A", tmp_path / "B", run_dir, epochs=1, max_steps=2,
                            device="cpu", resume=True)
    assert "--resume" in resume.args and "--model" not in resume.args
    backend.run_job(resume, RecordingFeedback(), backend="python")
    assert json.loads(ckpt.with_suffix(".json").read_text())["step"] == 2


def test_train_job_from_rasters_in_process_and_as_arguments(make_raster, tmp_path, one_thread):
    pytest.importorskip("torch")
    a = [make_raster(f"A/a{i}.tif", width=48, height=40, count=3, seed=i) for i in range(2)]
    b = make_raster("B/b.tif", width=64, height=64, count=3, seed=5)
    aoi = tmp_path / "aoi.geojson"
    ring = [[485900.0, 5209247.0], [486100.0, 5209247.0], [486100.0, 5209000.0],
            [485900.0, 5209000.0], [485900.0, 5209247.0]]  # the rasters' north-west corner
    aoi.write_text(json.dumps({
        "type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:26914"}},
        "features": [{"type": "Feature", "properties": {},
                      "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    run_dir = tmp_path / "run"
    job = jobs.train_job(a, [b], run_dir, epochs=1, max_steps=1, crop=32,
                         generator="resnet_6blocks", ngf=8, device="cpu", aoi=aoi,
                         max_nodata=0.25)
    args = list(job.args)
    assert [args[i + 1] for i, arg in enumerate(args) if arg == "--a"] == [str(p) for p in a]
    assert args[args.index("--aoi") + 1] == str(aoi) and "--max-nodata" in args
    ckpt = backend.run_job(job, RecordingFeedback(), backend="python")
    meta = json.loads(Path(ckpt).with_suffix(".json").read_text())
    assert meta["training"]["layout"] == "raster_windows"
    state = json.loads((run_dir / "train_state.json").read_text())
    assert state["config"]["windows"]["max_nodata"] == 0.25
    assert Path(state["config"]["windows"]["aoi"]) == aoi.absolute()


def _parsed(args: tuple[str, ...]) -> dict:
    """What geogan's own command line makes of a job's arguments (nothing runs)."""
    import click

    from geogan.cli import main

    command = main.get_command(click.Context(main), args[0])
    with command.make_context(args[0], list(args[1:])) as ctx:
        return dict(ctx.params)


def test_tile_job_arguments_round_trip_through_the_cli(tmp_path):
    pytest.importorskip("geogan.cli")
    from geogan.contract.options import TILE

    src, out, aoi = tmp_path / "in.tif", tmp_path / "chips", tmp_path / "aoi.gpkg"
    given = {"size": 64, "overlap": 8, "aoi": aoi, "max_nodata": 0.25, "min_std": 1.5,
             "overwrite": True, "bands": (3, 2, 1)}
    params = _parsed(jobs.tile_job(src, out, **given).args)
    assert params["inputs"] == (str(src),) and params["outdir"] == out
    assert {k: params[k] for k in given} == given
    # left at their defaults, the job's options parse to the command's defaults
    params = _parsed(jobs.tile_job(src, out).args)
    assert {k: params[k] for k in given} == {k: TILE.default_of(k) for k in given}


def test_train_job_arguments_round_trip_through_the_cli(tmp_path):
    pytest.importorskip("geogan.cli")
    from geogan.contract.options import TRAIN

    a, b, run = [tmp_path / "a1.tif", tmp_path / "a2.tif"], tmp_path / "B", tmp_path / "run"
    given = {"model": "cut", "epochs": 3, "max_steps": 40, "batch_size": 2, "crop": 64,
             "generator": "resnet_6blocks", "ngf": 16, "lr": 1e-4, "device": "cpu",
             "overwrite": True, "aoi": tmp_path / "aoi.gpkg", "max_nodata": 0.1,
             "min_std": 2.0, "upsample": "deconv"}
    params = _parsed(jobs.train_job(a, b, run, **given).args)
    assert params["a"] == tuple(str(p) for p in a) and params["b"] == (str(b),)
    assert params["output"] == run and params["resume"] is False
    assert {k: params[k] for k in given} == given
    defaults = _parsed(jobs.train_job(tmp_path / "A", b, run).args)
    assert {k: defaults[k] for k in given} == {k: TRAIN.default_of(k) for k in given}
    # on resume only the data, the length and the device are passed: the rest is the run's
    job = jobs.train_job(None, None, run, resume=True, **given)
    params = _parsed(job.args)
    assert params["resume"] is True and params["a"] == () and params["b"] == ()
    passed = {"epochs", "max_steps", "device"}
    assert {k: params[k] for k in passed} == {k: given[k] for k in passed}
    assert {k: params[k] for k in set(given) - passed} == {
        k: TRAIN.default_of(k) for k in set(given) - passed}
    assert set(job.args) >= {"--resume", "--epochs", "--max-steps", "--device"}
    assert not {"--model", "--crop", "--aoi", "--overwrite"} & set(job.args)


def test_job_arguments_keep_relative_paths_that_start_with_a_dash(tmp_path, monkeypatch):
    """A relative path such as ``-2020.tif`` reaches the CLI as a path, never as an option."""
    pytest.importorskip("geogan.cli")
    monkeypatch.chdir(tmp_path)
    ckpt, src, out = Path("-model.safetensors"), Path("-2020.tif"), Path("-out.tif")
    params = _parsed(jobs.translate_job(ckpt, src, out).args)
    assert params["checkpoint"] == ckpt and params["inputs"] == (str(src),)
    assert params["output"] == out
    params = _parsed(jobs.tile_job(src, Path("-chips"), aoi=Path("-aoi.gpkg")).args)
    assert params["inputs"] == (str(src),) and params["outdir"] == Path("-chips")
    assert params["aoi"] == Path("-aoi.gpkg")
    a, b = [Path("-a1.tif"), Path("-a2.tif")], [Path("-b1.tif"), Path("-b2.tif")]
    params = _parsed(jobs.train_job(a, b, Path("-run")).args)
    assert params["a"] == ("-a1.tif", "-a2.tif") and params["b"] == ("-b1.tif", "-b2.tif")
    assert params["output"] == Path("-run")
    assert list(tmp_path.iterdir()) == []  # parsing wrote nothing


def test_cli_args_pass_a_flag_only_when_it_differs_from_its_default(tmp_path):
    pytest.importorskip("geogan.cli")
    from geogan.contract.options import TRAIN

    assert jobs.cli_args(TRAIN, {"augment": True, "compile": False, "overwrite": False}) == []
    args = jobs.cli_args(TRAIN, {"augment": False, "compile": True, "overwrite": True})
    assert args == ["--no-augment", "--compile", "--overwrite"]
    params = _parsed(("train", "-o", str(tmp_path / "run"), *args))
    assert (params["augment"], params["compile"], params["overwrite"]) == (False, True, True)


def test_plugin_zip_holds_the_plugin(tmp_path):
    sys.path.insert(0, str(PLUGIN_DIR))
    import zipfile

    import build_zip

    from geogan import __version__

    path = build_zip.build(tmp_path / "geogan_qgis.zip")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        metadata = zf.read("geogan_qgis/metadata.txt").decode()
        init = zf.read("geogan_qgis/__init__.py").decode()
    assert all(n.startswith("geogan_qgis/") for n in names)
    for required in ("provider.py", "backend.py", "jobs.py", "translate_algorithm.py",
                     "tile_algorithm.py", "train_algorithm.py", "icon.svg"):
        assert f"geogan_qgis/{required}" in names
    # geogan's ground floor travels with the plugin, so QGIS starts without geogan
    for module in ("__init__", "options", "choices", "messages", "names", "checkpoint",
                   "protocol"):
        assert f"geogan_qgis/contract/{module}.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert "hasProcessingProvider=yes" in metadata.splitlines()
    assert f"version={__version__}" in metadata.splitlines()
    assert "def classFactory(" in init
    assert build_zip.build(tmp_path / "again.zip").read_bytes() == path.read_bytes()


def test_plugin_modules_without_qgis_import_nothing_heavy():
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(PLUGIN_DIR)!r})
        import geogan_qgis, geogan_qgis.backend, geogan_qgis.jobs
        heavy = [m for m in ("torch", "geogan", "rasterio", "numpy", "qgis") if m in sys.modules]
        assert not heavy, heavy
    """)
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_train_choices_match_the_library_registries():
    pytest.importorskip("torch")
    import inspect

    from geogan.contract.choices import UPSAMPLES
    from geogan.models import DEFAULT_UPSAMPLE, GENERATORS
    from geogan.models.gan import GAN_MODELS

    assert plugin_choices.MODELS == tuple(GAN_MODELS)
    assert plugin_choices.UPSAMPLES == UPSAMPLES
    upsample = inspect.signature(jobs.train_job).parameters["upsample"].default
    assert upsample == DEFAULT_UPSAMPLE
    assert plugin_choices.GENERATORS == tuple(GENERATORS)


def test_train_job_trains_cut_with_one_direction(make_raster, tmp_path, one_thread):
    pytest.importorskip("torch")
    for domain in ("A", "B"):
        for i in range(2):
            make_raster(f"{domain}/chip_{i}.tif", width=32, height=32, count=3, seed=i)
    run_dir = tmp_path / "run"
    job = jobs.train_job(tmp_path / "A", tmp_path / "B", run_dir, model="cut", epochs=1,
                         max_steps=1, crop=32, generator="resnet_6blocks", ngf=8,
                         device="cpu", upsample="resize")
    assert job.args[job.args.index("--upsample") + 1] == "resize"
    ckpt = backend.run_job(job, RecordingFeedback(), backend="python")
    info = jobs.checkpoint_info(ckpt)
    assert info.directions == ("a2b",)
    meta = json.loads(Path(ckpt).with_suffix(".json").read_text())
    assert meta["model"] == "cut" and meta["generators"]["a2b"]["kwargs"]["upsample"] == "resize"


def test_translate_job_with_bands(make_raster, tmp_path, one_thread):
    pytest.importorskip("torch")
    import rasterio

    src = make_raster("naip.tif", width=40, height=32, count=4, nodata=0)
    ckpt = make_checkpoint(tmp_path / "rgb.safetensors", **QGIS_CHECKPOINT)
    out = tmp_path / "out.tif"
    bands = jobs.parse_bands("3, 2,1")
    assert bands == (3, 2, 1)
    info = jobs.check_translate_input(ckpt, "a2b", str(src), len(bands))
    assert info.input_bands("a2b") == 3
    job = jobs.translate_job(ckpt, src, out, tile=32, overlap=4, device="cpu", bands=bands)
    assert "--bands" in job.args and job.args[job.args.index("--bands") + 1] == "3,2,1"
    assert backend.run_job(job, RecordingFeedback(), backend="python") == [out]
    with rasterio.open(out) as b:
        assert b.count == 3
    for bad in ("1,x", "0,1,2"):
        with pytest.raises(backend.BackendError, match="Input bands"):
            jobs.parse_bands(bad)
    assert jobs.parse_bands(" ") is None


def checkpoint_at_5m(path: Path, bands: int = 3) -> Path:
    """A QGIS test checkpoint whose domains were learned at 5 m (EPSG:26914)."""
    from geogan.contract.checkpoint import DomainMeta
    from geogan.normalize import BandNorm

    norm = BandNorm.full_range("uint8", bands, None).to_json()
    domains = {side: DomainMeta(side, norm, gsd_m=5.0, crs="EPSG:26914") for side in ("a", "b")}
    return make_checkpoint(path, bands_a=bands, bands_b=bands, meta={"domains": domains},
                           **QGIS_CHECKPOINT)


def test_translate_job_in_process_logs_the_resolution_warning_in_the_dialog_s_words(
        make_raster, tmp_path, one_thread):
    pytest.importorskip("torch")
    import rasterio
    from rasterio.transform import from_origin

    src = make_raster("fine.tif", width=80, height=60,
                      transform=from_origin(485900.0, 5209247.0, 1.0, 1.0))
    ckpt = checkpoint_at_5m(tmp_path / "m.safetensors")
    fb = RecordingFeedback()
    backend.run_job(jobs.translate_job(ckpt, src, tmp_path / "o.tif", tile=32, overlap=4,
                                       device="cpu"), fb, backend="python")
    warned = [m for m in fb.messages if m.startswith("Warning: ")]
    assert len(warned) == 1 and "the model learned a at 5 m per pixel" in warned[0]
    assert "pass 'Translate at the model's ground resolution'" in warned[0]
    job = jobs.translate_job(ckpt, src, tmp_path / "at.tif", tile=32, overlap=4, device="cpu",
                             at_model_resolution=True)
    assert "--at-model-resolution" in job.args
    fb = RecordingFeedback()
    backend.run_job(job, fb, backend="python")
    assert not [m for m in fb.messages if m.startswith("Warning: ")]
    with rasterio.open(src) as a, rasterio.open(tmp_path / "at.tif") as b:
        assert (b.crs, b.transform, b.shape) == (a.crs, a.transform, a.shape)
        assert b.tags()["GEOGAN_AT_MODEL_RESOLUTION"] == "yes"


def test_the_executable_s_warnings_reach_the_log_in_the_dialog_s_words(tmp_path):
    exe = fake_geogan(tmp_path, """
        import json, sys
        template = "a.tif has 1 m pixels; pass `at_model_resolution` to translate at 5 m"
        print(json.dumps({"warning": template.replace("`at_model_resolution`",
                                                      "--at-model-resolution"),
                          "template": template, "params": ["at_model_resolution"]}),
              file=sys.stderr)
    """)
    fb = RecordingFeedback()
    backend.run_job(_job(("translate",), ()), fb, "executable", str(exe))
    assert ("Warning: a.tif has 1 m pixels; pass 'Translate at the model's ground resolution' "
            "to translate at 5 m") in fb.messages
