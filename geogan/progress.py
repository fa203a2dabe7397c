"""Progress and cancellation as plain callbacks, so the library has no UI.

The CLI adapts them to a progress bar (or JSON lines for other programs), the
QGIS plugin to ``feedback.setProgress`` and ``feedback.isCanceled``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from geogan.errors import Cancelled


class ProgressCallback(Protocol):
    """Called as work advances: ``done`` of ``total`` units, with optional named figures."""

    def __call__(self, done: float, total: float, **info: float | str) -> None: ...


CancelCheck = Callable[[], bool]


def no_progress(done: float, total: float, **info: float | str) -> None:
    """A progress callback that ignores everything."""


def never_cancel() -> bool:
    """A cancel check that never asks to stop."""
    return False


def check_cancel(cancel: CancelCheck | None, what: str = "job") -> None:
    """Raise :class:`Cancelled` if ``cancel`` says the caller wants to stop."""
    if cancel is not None and cancel():
        raise Cancelled(f"{what} cancelled; no partial output was kept")
