"""The fault hook: a call at every write boundary, so tests can kill a process there.

:func:`fault_point` is called before and after each rename that publishes an output
(:func:`~geogan.fileio.atomic.atomic_output`, :func:`~geogan.fileio.atomic.atomic_directory`,
the checkpoint writer); :func:`set_fault_hook` installs the test's hook. It does nothing
in normal use.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

#: Called as ``hook(point, path)`` at every write boundary (before and after each rename);
#: tests use it to kill a process at each boundary. None in normal use.
_fault_hook: Callable[[str, Path], None] | None = None


def set_fault_hook(hook: Callable[[str, Path], None] | None) -> None:
    """Install ``hook(point, path)``, called at each write boundary (for fault tests)."""
    global _fault_hook
    _fault_hook = hook


def fault_point(point: str, path: Path) -> None:
    """A write boundary: ``point`` names it (e.g. ``"before-rename"``), ``path`` the file."""
    if _fault_hook is not None:
        _fault_hook(point, path)
