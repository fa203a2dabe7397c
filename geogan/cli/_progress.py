"""Adapters from the library's progress callbacks to a terminal bar or JSON lines."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import click


class Reporter:
    """A progress callback (see :mod:`geogan.progress`) for the CLI.

    ``bar``: a tqdm bar on stderr with the figures passed as ``info``.
    ``json``: one JSON object per update on stderr (:mod:`geogan.spec.protocol`).
    ``none``: nothing.
    """

    def __init__(self, mode: str, desc: str, unit: str = "it") -> None:
        self.mode = mode
        self.desc = desc
        self.unit = unit
        self._bar: Any = None
        self._last = 0.0

    def __call__(self, done: float, total: float, **info: float | str) -> None:
        if self.mode == "json":
            from geogan.spec.protocol import progress_line

            fields = dict(info)
            desc = str(fields.pop("desc", self.desc))
            sys.stderr.write(progress_line(done, total, desc, **fields) + "\n")
            sys.stderr.flush()
        elif self.mode == "bar":
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(total=total, desc=self.desc, unit=self.unit,
                                 dynamic_ncols=True, file=sys.stderr)
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

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextlib.contextmanager
def reporter(desc: str, unit: str = "it") -> Iterator[Reporter]:
    """A :class:`Reporter` in the mode chosen by ``geogan --progress``; closed on exit."""
    ctx = click.get_current_context(silent=True)
    mode = "bar"
    if ctx is not None:
        root = ctx.find_root()
        if isinstance(root.obj, dict):
            mode = root.obj.get("progress", "bar")
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
