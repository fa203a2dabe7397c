"""Run geogan jobs for the QGIS plugin, in QGIS's own Python or as an external command.

This module imports neither QGIS nor geogan nor torch, so QGIS starts fast and
the logic is testable in any Python. A :class:`Job` describes one geogan run
twice: as the arguments of the ``geogan`` command line and as an in-process
call of the library. :func:`run_job` picks one of them:

* ``python``: QGIS's Python can import geogan and torch; the library runs in
  process with progress and cancel callbacks adapted to the QGIS feedback.
* ``executable``: the ``geogan`` command of another environment runs as a child
  process with ``--progress json``; its JSON progress lines drive the progress
  bar, its final ``Error: ...`` line becomes the error message, and Cancel
  interrupts it (then kills it if it lingers) and removes partial output.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .contract import messages
from .contract.protocol import (
    ProgressEvent,
    parse_error_line,
    parse_error_record,
    parse_progress_line,
)
from .outputs import remove_partial_outputs, snapshot_outputs

__all__ = ["BackendError", "Feedback", "Job", "JobCancelled", "ProgressEvent", "run_job",
           "parse_error_line", "parse_progress_line"]

#: Environment variable naming the geogan executable; used when the Processing setting is empty.
ENV_EXECUTABLE = "GEOGAN_EXECUTABLE"
#: Environment variable choosing the backend ("auto", "python" or "executable").
ENV_BACKEND = "GEOGAN_BACKEND"
#: Backend choices: "auto" runs in process when QGIS's Python has geogan and torch.
BACKENDS = ("auto", "python", "executable")
#: Variables QGIS sets for its own Python and GDAL/PROJ that would break another environment.
_FOREIGN_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "PROJ_LIB",
                "PROJ_DATA", "GDAL_DATA", "GDAL_DRIVER_PATH", "GDAL_PLUGINS_PATH")
#: Seconds to wait after interrupting a cancelled child before killing it.
INTERRUPT_GRACE_S = 3.0

InProcessRunner = Callable[[Callable[..., None], Callable[[], bool]], Any]


class BackendError(Exception):
    """A geogan job failed; the message is one line a user can act on."""


class JobCancelled(BackendError):
    """The user cancelled the job; partial output was removed."""


class Feedback(Protocol):
    """What the backend needs from QGIS's ``QgsProcessingFeedback`` (or a test double)."""

    def set_progress(self, percent: float) -> None: ...

    def set_text(self, text: str) -> None: ...

    def info(self, message: str) -> None: ...

    def is_cancelled(self) -> bool: ...


@dataclass(frozen=True)
class Job:
    """One geogan run, both as command-line arguments and as an in-process library call.

    ``args`` follow ``geogan [--progress json]``, e.g. ``("translate", "-o", OUT, "--",
    CKPT, IN)``: positional paths after ``--``, so that a relative path starting with "-"
    is not read as an option.
    ``outputs`` are the files or folders the job creates: removed when it fails or is
    cancelled, unless they existed before it started or ``keep_partial`` is set (a
    training run keeps its last checkpoint to resume from); hidden temporaries
    beside them are removed in every case. ``stop_grace_s`` is how long a cancelled
    external run may take to stop cleanly before it is killed (None: the default).
    """

    args: tuple[str, ...]
    outputs: tuple[Path, ...]
    run_in_process: InProcessRunner
    desc: str = "geogan"
    keep_partial: bool = False
    stop_grace_s: float | None = None


# -- parsing the command's output ---------------------------------------------------------

def dialog_message(template: str, command: str | None) -> str:
    """A geogan message in the dialog's words: the parameters its template names as `name`
    (geogan.contract.messages) by their labels."""
    return messages.for_qgis(template, command)


def format_info(info: dict[str, Any]) -> str:
    """``{"loss_G": 0.51234, "epoch": 2}`` -> ``"loss_G=0.512 epoch=2"`` for the log."""
    parts = []
    for key, value in info.items():
        parts.append(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)


# -- choosing a backend ---------------------------------------------------------------------

def in_process_available() -> bool:
    """Whether this Python can import geogan and torch (checked without importing them)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in ("geogan", "torch"))
    except (ImportError, ValueError):
        return False


def resolve_executable(setting: str | None = None) -> str:
    """The geogan executable: the Processing setting, else $GEOGAN_EXECUTABLE, else PATH."""
    candidates = [(setting or "").strip(), os.environ.get(ENV_EXECUTABLE, "").strip()]
    sources = ("the geogan executable setting", f"${ENV_EXECUTABLE}")
    for source, value in zip(sources, candidates, strict=True):
        if not value:
            continue
        found = shutil.which(value) or (value if os.path.isfile(value) else None)
        if found is None:
            raise BackendError(f"{source} points to {value}, which is not an executable file; "
                               "set it to the geogan command of an environment with geogan "
                               "installed (e.g. /path/to/venv/bin/geogan)")
        return found
    found = shutil.which("geogan")
    if found is None:
        raise BackendError("geogan is neither importable in QGIS's Python nor on PATH; set "
                           "Processing > Options > Providers > geogan > geogan executable "
                           f"(or ${ENV_EXECUTABLE}) to the geogan command of an environment "
                           "with geogan installed")
    return found


def choose_backend(preference: str | None = None) -> str:
    """``"python"`` or ``"executable"`` from a preference (setting, then $GEOGAN_BACKEND)."""
    choice = (preference or "").strip().lower() or os.environ.get(ENV_BACKEND, "").strip().lower()
    choice = choice or "auto"
    if choice not in BACKENDS:
        raise BackendError(f"unknown geogan backend {choice!r}; choose one of "
                           f"{', '.join(BACKENDS)}")
    if choice == "auto":
        return "python" if in_process_available() else "executable"
    if choice == "python" and not in_process_available():
        raise BackendError("the geogan backend is set to 'python' but QGIS's Python cannot "
                           "import geogan and torch; install them there or choose 'executable'")
    return choice


# -- running ----------------------------------------------------------------------------------

def run_job(job: Job, feedback: Feedback, backend: str | None = None,
            executable: str | None = None) -> Any:
    """Run ``job`` with the chosen backend; partial output is removed on failure or cancel.

    ``backend`` and ``executable`` are the Processing settings (empty means default).
    Returns whatever the in-process call returns (None for the executable backend).
    Raises :class:`BackendError` (or :class:`JobCancelled`) with a one-line message.
    """
    which = choose_backend(backend)
    states = snapshot_outputs(job.outputs)
    try:
        if which == "python":
            return run_in_process(job, feedback)
        exe = resolve_executable(executable)
        try:
            run_external([exe, "--progress", "json", *job.args], feedback,
                         grace_s=job.stop_grace_s, command=_command(job))
        except JobCancelled as exc:
            if job.keep_partial and job.outputs:
                raise JobCancelled(f"{job.desc} was cancelled; {job.outputs[0]} keeps what "
                                   "was saved so far") from exc
            raise
        return None
    except BaseException:
        removed = remove_partial_outputs(states, temporaries_only=job.keep_partial)
        if removed:
            feedback.info("removed partial output: " + ", ".join(str(p) for p in removed))
        raise


def run_in_process(job: Job, feedback: Feedback) -> Any:
    """Call the geogan library in this Python; GeoganError becomes :class:`BackendError`."""
    from geogan.errors import Cancelled, GeoganError

    last_desc = [""]

    def progress(done: float, total: float, **info: float | str) -> None:
        if total:
            feedback.set_progress(100.0 * min(max(done / total, 0.0), 1.0))
        desc = str(info.get("desc", ""))
        if desc and desc != last_desc[0]:
            last_desc[0] = desc
            feedback.set_text(desc)

    feedback.set_text(job.desc)
    warnings = _WarningsToLog(feedback, _command(job))
    logger = logging.getLogger("geogan")
    logger.addHandler(warnings)
    try:
        return job.run_in_process(progress, feedback.is_cancelled)
    except Cancelled as exc:
        raise JobCancelled(str(exc)) from exc
    except GeoganError as exc:
        raise BackendError(dialog_message(exc.template, _command(job))) from exc
    except Exception as exc:  # a bug or a resource error: still one line for the user
        feedback.info("".join(traceback.format_exception(exc)).rstrip())
        lines = str(exc).strip().splitlines()
        detail = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        raise BackendError(f"{job.desc} failed ({detail}); the traceback is in the log") from exc
    finally:
        logger.removeHandler(warnings)


class _WarningsToLog(logging.Handler):
    """geogan's warnings (a resolution mismatch, synthetic training data...) in the job's
    log, naming parameters as the dialog does."""

    def __init__(self, feedback: Feedback, command: str | None) -> None:
        super().__init__(logging.WARNING)
        self.feedback, self.command = feedback, command

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.feedback.info("Warning: " + dialog_message(record.getMessage(), self.command))
        except Exception:  # noqa: BLE001 - logging must never break the job
            self.handleError(record)


def _command(job: Job) -> str | None:
    return job.args[0] if job.args else None


def child_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the external geogan: QGIS's Python/GDAL/PROJ variables removed."""
    env = dict(os.environ if base is None else base)
    for name in _FOREIGN_ENV:
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONIOENCODING", "utf-8")
    return env


def run_external(argv: Sequence[str], feedback: Feedback, poll_s: float = 0.1,
                 grace_s: float | None = None, command: str | None = None) -> None:
    """Run a geogan command line, relaying its progress; stop it when ``feedback`` cancels.

    The command's error (its JSON error record, else its ``Error:`` line) becomes the
    exception's message, in the dialog's words for ``command``; it is not also relayed
    to the log, so QGIS shows it once.

    Raises :class:`BackendError` with the command's ``Error:`` message when it fails,
    :class:`JobCancelled` when cancelled (after the child has exited).
    """
    grace = INTERRUPT_GRACE_S if grace_s is None else grace_s
    proc = _spawn(argv, feedback)
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    readers = [threading.Thread(target=_pump, args=(stream, name, lines), daemon=True)
               for stream, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))]
    for t in readers:
        t.start()
    relay = _Relay(feedback, command)
    open_streams = 2
    cancelled = False
    exited_at: float | None = None
    while open_streams:
        if not cancelled and feedback.is_cancelled():
            cancelled = True
            feedback.info("cancelling geogan")
            _stop(proc, grace)
        try:
            name, line = lines.get(timeout=poll_s)
        except queue.Empty:
            # a grandchild that inherited the pipes must not keep us waiting forever
            if proc.poll() is not None:
                exited_at = exited_at or time.monotonic()
                if time.monotonic() - exited_at > 2.0:
                    break
            continue
        if line is None:
            open_streams -= 1
        else:
            relay.line(name, line)
    cancelled = cancelled or feedback.is_cancelled()
    rc = proc.wait()
    for t in readers:
        t.join(timeout=1.0)
    if cancelled:
        raise JobCancelled("geogan was cancelled; partial output was removed")
    if rc != 0:
        detail = relay.tail[-1] if relay.tail else "no message"
        raise BackendError(relay.error or f"geogan exited with status {rc}: {detail}")


def _spawn(argv: Sequence[str], feedback: Feedback) -> subprocess.Popen[str]:
    """Start the geogan command line in a process group of its own, its output piped."""
    kwargs: dict[str, Any] = {}
    if sys.platform == "win32":
        kwargs["creationflags"] = (subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
                                   | subprocess.CREATE_NO_WINDOW)  # type: ignore[attr-defined]
    else:
        kwargs["start_new_session"] = True  # its own process group: Cancel reaches workers too
    feedback.info("running: " + subprocess.list2cmdline(list(argv)))
    try:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=child_environment(), text=True,
                                encoding="utf-8", errors="replace", bufsize=1, **kwargs)
    except OSError as exc:
        raise BackendError(f"cannot run {argv[0]} ({exc.strerror}); set the geogan executable "
                           "setting to the geogan command of an environment with geogan "
                           "installed") from exc


class _Relay:
    """What the child's output lines mean for QGIS: progress, its error, log lines."""

    def __init__(self, feedback: Feedback, command: str | None) -> None:
        self.feedback, self.command = feedback, command
        self.error: str | None = None
        self.tail: list[str] = []
        self.last_desc = ""

    def line(self, name: str, line: str) -> None:
        event = parse_progress_line(line) if name == "stderr" else None
        if event is not None:
            self.feedback.set_progress(100.0 * event.fraction)
            if event.desc and event.desc != self.last_desc:
                self.last_desc = event.desc
                self.feedback.set_text(event.desc)
            return
        record = parse_error_record(line) if name == "stderr" else None
        if record is not None:
            self.error = dialog_message(record.template, self.command)
            return
        warning = parse_error_record(line, "warning") if name == "stderr" else None
        if warning is not None:
            self.feedback.info("Warning: " + dialog_message(warning.template, self.command))
            return
        message = parse_error_line(line) if name == "stderr" else None
        if message is not None:
            self.error = self.error or dialog_message(message, self.command)
            return
        text = line.rstrip()
        if text:
            self.feedback.info(text)
            self.tail = (self.tail + [text])[-5:]


def _pump(stream: Any, name: str, out: queue.Queue[tuple[str, str | None]]) -> None:
    """Queue ``stream``'s lines, then close it (its end of the pipe) and queue None.

    The reader closes the pipe itself, once the child (or a grandchild that inherited
    it) has closed its end: closing it from another thread would block on the read.
    """
    try:
        for line in stream:
            out.put((name, line))
    except (OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(OSError, ValueError):
            stream.close()
        out.put((name, None))


def _stop(proc: subprocess.Popen[str], grace_s: float) -> None:
    """Interrupt ``proc`` (so geogan removes its temporaries), kill it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        if sys.platform == "win32":
            proc.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
        else:
            os.killpg(proc.pid, signal.SIGINT)
    except (OSError, ValueError):
        pass
    deadline = time.monotonic() + grace_s
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is None:
        try:
            if sys.platform == "win32":
                proc.kill()
            else:
                os.killpg(proc.pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass
        proc.wait()
