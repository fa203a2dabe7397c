"""Several outputs that take their places together: all of them, or none.

A translation with a raster beside it (:mod:`geogan.sink`) writes each file to its own
temporary (:func:`~geogan.fileio.atomic_output` with ``group``); only once every one was
written and checked are they renamed onto their names, in :meth:`OutputGroup.commit`.
A file that exists (``overwrite``) is first moved aside, and put back if a later rename
fails, so a failure at any point leaves every name as it was. A process killed between
moving a file aside and renaming the new one onto its name leaves both temporaries;
the next run over that output puts the old file back
(:func:`~geogan.fileio.atomic.remove_leftovers`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from geogan.contract import names
from geogan.fileio.errors import write_error
from geogan.fileio.faults import fault_point
from geogan.fileio.temp import temp_path

log = logging.getLogger(__name__)


class OutputGroup:
    """Temporaries waiting for their names; :func:`output_group` commits or discards them."""

    def __init__(self) -> None:
        self._pairs: list[tuple[Path, Path]] = []  # (temporary, final)
        self._after: list[Callable[[], None]] = []

    def __len__(self) -> int:
        return len(self._pairs)

    def add(self, tmp: Path, final: Path) -> None:
        """Rename the complete ``tmp`` onto ``final`` when the group commits."""
        self._pairs.append((Path(tmp), Path(final)))

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` once every file of the group is in place (e.g. remove a stale
        sidecar)."""
        self._after.append(action)

    def discard(self) -> None:
        """Remove every temporary of the group (a failure before the commit)."""
        for tmp, _final in self._pairs:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        self._pairs.clear()

    def commit(self) -> None:
        """Rename every temporary onto its name; on a failure undo the renames done."""
        moved: list[tuple[Path, Path]] = []  # (moved-aside old file, its name)
        placed: list[Path] = []
        current = self._pairs[0][1] if self._pairs else Path()
        try:
            for tmp, final in self._pairs:
                current = final
                if final.exists() or final.is_symlink():
                    m = names.TEMP_RE.match(tmp.name)
                    old = temp_path(final, kind="old", token=m.group("token") if m else None)
                    final.rename(old)
                    moved.append((old, final))
                    fault_point("between-renames", final)
                tmp.replace(final)
                placed.append(final)
        except BaseException as exc:
            self._undo(placed, moved)
            if isinstance(exc, OSError):
                raise write_error(current, exc) from exc
            raise
        for old, _final in moved:
            with contextlib.suppress(OSError):
                old.unlink()
        for _tmp, final in self._pairs:
            fault_point("after-rename", final)
            log.debug("wrote %s", final)
        for action in self._after:
            action()

    def _undo(self, placed: list[Path], moved: list[tuple[Path, Path]]) -> None:
        for final in placed:
            with contextlib.suppress(OSError):
                final.unlink()
        for old, final in moved:
            with contextlib.suppress(OSError):
                old.rename(final)
        self.discard()


@contextlib.contextmanager
def output_group() -> Iterator[OutputGroup]:
    """Yield a group for :func:`~geogan.fileio.atomic_output`'s ``group``; commit it when
    the block ends without error, else remove its temporaries."""
    group = OutputGroup()
    try:
        yield group
    except BaseException:
        group.discard()
        raise
    group.commit()
