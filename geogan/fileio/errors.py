"""What went wrong in a write, in words a user can act on: write errors, free space, the
errors GDAL only logs, and whether a written raster reads back.

A failed write raises :class:`~geogan.errors.OutputError` naming the file and the cause
(:func:`write_error`): a full disk, a folder without write permission, or the cause as
the system gave it. GDAL reports some write failures (a full disk while flushing its
cache) only as error messages, not exceptions: :func:`gdal_errors` collects them and
turns them into an error.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

from geogan.errors import GeoganError, OutputError, first_line

log = logging.getLogger(__name__)

#: Free space under which a failed write is reported as a full disk (GDAL's TIFF driver
#: often names only the failed call, e.g. "TIFFAppendToStrip: Write error").
_FULL_BYTES = 1 << 20


def free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent).

    A ``/vsi...`` output is written in the system's temporary folder (``TMPDIR``) first,
    and a ``/vsizip/`` one then copied into a zip on the local disk: the smaller of the
    two spaces.
    """
    text = os.fspath(path)
    if text.startswith("/vsi"):
        import tempfile

        from geogan.inputs import GdalOutput

        spaces = [_free_at(Path(tempfile.gettempdir()))]
        zip_file = GdalOutput(text).local_zip()
        if zip_file is not None:
            spaces.append(_free_at(zip_file.parent))
        known = [s for s in spaces if s is not None]
        return min(known) if known else None
    return _free_at(Path(path))


def _free_at(path: Path) -> int | None:
    """Free bytes on the file system of ``path`` or its nearest existing parent."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def format_bytes(n: float) -> str:
    """``123456789`` -> ``"118 MB"``."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def check_free_space(path: Path, needed: int, *, certain: bool = True) -> None:
    """Fail (``certain``) or warn when ``needed`` bytes do not fit where ``path`` will be.

    ``certain`` means the output will be about ``needed`` bytes (uncompressed data); else
    ``needed`` is an upper bound (compressed outputs are smaller) and only a warning is given.
    """
    free = free_bytes(path)
    if free is None or needed <= free:
        return
    if certain:
        raise OutputError(f"not enough space for {path}: it needs about "
                          f"{format_bytes(needed)} and {format_bytes(free)} are free; free "
                          "space or choose another output location")
    log.warning("%s may not fit: up to %s uncompressed, %s free", path, format_bytes(needed),
                format_bytes(free))


def write_error(path: Path, exc: BaseException | str) -> OutputError:
    """An :class:`OutputError` for a failed write of ``path``, naming the cause and what to do."""
    if isinstance(exc, OSError) and exc.errno is not None:
        cause = os.strerror(exc.errno).lower()
    else:
        cause = first_line(exc) if isinstance(exc, BaseException) else str(exc)
    text = cause.lower()
    free = free_bytes(path if os.fspath(path).startswith("/vsi") else Path(path).parent)
    if (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) \
            or "no space left" in text or "disk full" in text or "quota" in text \
            or (free is not None and free < _FULL_BYTES):
        left = f", {format_bytes(free)} free" if free is not None else ""
        if os.fspath(path).startswith("/vsi"):
            import tempfile

            left += (f" (GDAL paths are written in {tempfile.gettempdir()} first: free space "
                     "there, or set TMPDIR to a folder with space)")
        return OutputError(f"no space left on device writing {path}{left}; free space or "
                           "choose another output location")
    if (isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)) \
            or "permission denied" in text or "read-only" in text:
        return OutputError(f"cannot write {path} ({cause}); choose a writable output location")
    return OutputError(f"writing {path} failed ({cause}); check free disk space and "
                       "permissions, then run again")


class _GdalErrors(logging.Handler):
    """Collects, per thread, the error messages GDAL signals through rasterio's loggers."""

    _LOGGERS = ("rasterio._err", "rasterio._env", "rasterio._io")

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.by_thread: dict[int, list[str]] = {}
        self.users = 0
        self.saved: list[tuple[int, bool]] = []
        self.guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        messages = self.by_thread.get(record.thread or 0)
        if messages is None:
            return
        try:
            text = record.getMessage()
        except Exception:  # a malformed record must not break the writer
            return
        if "signalled an error" in text or record.levelno >= logging.ERROR:
            match = re.search(r"msg='(.*)'", text)
            messages.append(match.group(1) if match else text)

    def start(self) -> list[str]:
        with self.guard:
            if self.users == 0:
                loggers = [logging.getLogger(n) for n in self._LOGGERS]
                self.saved = [(lg.level, lg.propagate) for lg in loggers]
                for lg in loggers:
                    lg.addHandler(self)
                    if lg.getEffectiveLevel() > logging.INFO:
                        lg.setLevel(logging.INFO)
                        lg.propagate = False  # collected here, not shown twice
            self.users += 1
            messages: list[str] = []
            self.by_thread[threading.get_ident()] = messages
            return messages

    def stop(self) -> None:
        with self.guard:
            self.by_thread.pop(threading.get_ident(), None)
            self.users -= 1
            if self.users == 0:
                for name, (level, propagate) in zip(self._LOGGERS, self.saved, strict=True):
                    lg = logging.getLogger(name)
                    lg.removeHandler(self)
                    lg.setLevel(level)
                    lg.propagate = propagate


_GDAL_ERRORS = _GdalErrors()


@contextlib.contextmanager
def gdal_errors(path: Path) -> Iterator[None]:
    """Raise :class:`OutputError` for ``path`` if GDAL signalled an error inside the block.

    GDAL's TIFF driver reports a full disk met while flushing its block cache (at close)
    only as error messages; without this, the file would be kept as if complete. Each
    thread collects its own messages, so chip-writing threads do not mix them up.
    """
    messages = _GDAL_ERRORS.start()
    try:
        yield
    except Exception as exc:
        if messages and not isinstance(exc, GeoganError):  # GDAL's text, not "see previous"
            raise write_error(path, messages[0]) from exc
        raise
    finally:
        _GDAL_ERRORS.stop()
    if messages:
        raise write_error(path, messages[0])


def verify_raster(path: Path, final: Path | None = None) -> None:
    """Re-open a written raster and read its first and last block of every band."""
    import rasterio
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    name = final or path
    try:
        with rasterio.open(path) as ds:
            w, h = ds.width, ds.height
            bw, bh = ds.block_shapes[0] if ds.block_shapes else (w, h)
            ds.read(window=Window(0, 0, min(bw, w), min(bh, h)))
            x0, y0 = ((w - 1) // bw) * bw, ((h - 1) // bh) * bh
            ds.read(window=Window(x0, y0, w - x0, h - y0))
    except RasterioError as exc:
        raise write_error(name, f"the written file does not read back: {first_line(exc)}") \
            from exc


def is_complete_raster(path: Path) -> bool:
    """True when ``path`` opens as a raster and its first and last blocks read."""
    try:
        verify_raster(path)
    except OutputError:
        return False
    return True
