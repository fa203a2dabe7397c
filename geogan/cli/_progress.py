"""Adapters from the library's progress callbacks to a terminal bar, log lines or JSON lines.

``geogan --progress bar`` (the default) draws a tqdm bar only when stderr is a
terminal. When it is not (a log file, a pipe, a job scheduler, a test runner) no bar
is drawn: the progress goes to the log instead, one line per tenth of the work at
INFO level, so ``-v`` shows it and a plain run writes nothing besides its result.
Amounts are whole numbers for counted things (``12/40 chips``) and megapixels with
two decimals (``0.56/0.68 Mpx``); speeds are always ``unit/s`` (``0.31 Mpx/s``).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

import click

log = logging.getLogger("geogan.progress")

#: Decimals of amounts and speeds in a unit; units not listed count whole things.
DECIMALS: dict[str, int] = {"Mpx": 2}
#: Log mode: one line each time the work passes another of these fractions of the total.
LOG_STEP = 0.1
#: tqdm's layout with geogan's amounts and speed in place of tqdm's raw figures.
BAR_FORMAT = "{l_bar}{bar}| {amounts} [{elapsed}<{remaining}, {speed}{postfix}]"


def _number(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals; two significant digits when that would show 0."""
    if value and abs(value) < 0.5 * 10.0 ** -decimals:
        return f"{value:.2g}"
    return f"{value:.{decimals}f}"


def format_amount(done: float, total: float | None, unit: str) -> str:
    """``0.56/0.68 Mpx``, ``12/40 chips`` (``?`` for an unknown total)."""
    decimals = DECIMALS.get(unit, 0)
    whole = "?" if not total else _number(total, decimals)
    return f"{_number(done, decimals)}/{whole} {unit}"


def format_rate(rate: float | None, unit: str) -> str:
    """``0.31 Mpx/s``, ``34664 windows/s``, ``2.5 steps/s``, ``0.04 steps/s``: never s/unit."""
    if not rate:
        return f"? {unit}/s"
    decimals = DECIMALS.get(unit, 0 if rate >= 10 else 1)
    return f"{_number(rate, decimals)} {unit}/s"


def format_line(desc: str, done: float, total: float, unit: str, rate: float | None,
                remaining_s: float | None = None) -> str:
    """A plain progress line for logs: ``translate: 50% (0.34/0.68 Mpx, 0.30 Mpx/s, 1 s left)``."""
    pct = f"{100.0 * done / total:.0f}%" if total else "?%"
    parts = [format_amount(done, total, unit), format_rate(rate, unit)]
    if remaining_s is not None and done < total:
        parts.append(f"{_interval(remaining_s)} left")
    return f"{desc}: {pct} ({', '.join(parts)})"


def _interval(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal (not a file, pipe or captured stream)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed or odd stream
        return False


def _bar_class() -> type:
    from tqdm import tqdm

    class Bar(tqdm):  # type: ignore[misc, valid-type]
        """tqdm with geogan's amounts and speed (:func:`format_amount`, :func:`format_rate`)."""

        @property
        def format_dict(self) -> dict[str, Any]:
            d = dict(super().format_dict)
            if getattr(self, "unit", None) is not None:
                d["amounts"] = format_amount(self.n, self.total, self.unit)
                d["speed"] = format_rate(d.get("rate"), self.unit)
            return d

    return Bar


class Reporter:
    """A progress callback (see :mod:`geogan.progress`) for the CLI.

    ``bar``: a tqdm bar on stderr with the figures passed as ``info``.
    ``log``: INFO log lines, one per :data:`LOG_STEP` of the total (``bar`` when stderr
    is not a terminal).
    ``json``: one JSON object per update on stderr (:mod:`geogan.contract.protocol`).
    ``none``: nothing.
    """

    def __init__(self, mode: str, desc: str, unit: str = "items") -> None:
        self.mode = mode
        self.desc = desc
        self.unit = unit
        self._bar: Any = None
        self._last = 0.0
        self._started = time.perf_counter()
        self._logged = -1  # the last tenth logged

    def __call__(self, done: float, total: float, **info: float | str) -> None:
        if self.mode == "json":
            from geogan.contract.protocol import progress_line

            fields = dict(info)
            desc = str(fields.pop("desc", self.desc))
            sys.stderr.write(progress_line(done, total, desc, **fields) + "\n")
            sys.stderr.flush()
        elif self.mode == "bar":
            self._draw(done, total, info)
        elif self.mode == "log":
            self._log(done, total)

    def _draw(self, done: float, total: float, info: dict[str, float | str]) -> None:
        if self._bar is None:
            self._bar = _bar_class()(total=total, desc=self.desc, unit=self.unit,
                                     dynamic_ncols=True, file=sys.stderr,
                                     bar_format=BAR_FORMAT)
        if total and self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._last)
        self._last = done
        if info:
            self._bar.set_postfix({k: (f"{v:.3g}" if isinstance(v, float) else v)
                                   for k, v in info.items()}, refresh=False)
        if total and done >= total:  # finished: later log lines print below it
            self.close()
            self._last = 0.0

    def _log(self, done: float, total: float) -> None:
        now = time.perf_counter()
        if not total:
            return
        tenth = int(min(done / total, 1.0) / LOG_STEP + 1e-9)
        if tenth <= self._logged or tenth == 0:
            return
        self._logged = tenth
        elapsed = now - self._started
        rate = done / elapsed if elapsed > 0 else None
        remaining = (total - done) / rate if rate else None
        log.info("%s", format_line(self.desc, done, total, self.unit, rate, remaining))
        if done >= total:  # a later phase starts counting again
            self._logged = -1
            self._started = now

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def progress_mode() -> str:
    """The mode chosen by ``geogan --progress``, ``log`` for ``bar`` when stderr is no terminal."""
    ctx = click.get_current_context(silent=True)
    mode = "bar"
    if ctx is not None:
        root = ctx.find_root()
        if isinstance(root.obj, dict):
            mode = root.obj.get("progress", "bar")
    if mode == "bar" and not is_terminal(sys.stderr):
        return "log"
    return mode


@contextlib.contextmanager
def reporter(desc: str, unit: str = "items") -> Iterator[Reporter]:
    """A :class:`Reporter` in the mode :func:`progress_mode` says; closed on exit."""
    mode = progress_mode()
    rep = Reporter(mode, desc, unit)
    try:
        if mode == "bar":
            from tqdm.contrib.logging import logging_redirect_tqdm

            # log lines go above the bar instead of through it
            with logging_redirect_tqdm():
                yield rep
        else:
            yield rep
    finally:
        rep.close()
