"""Threads that keep the error that ended them, and queue hand-offs that stop on error or cancel."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from geogan.errors import GeoganError
from geogan.progress import CancelCheck, check_cancel

#: Seconds a blocked hand-off waits before it looks again at the other side and the cancel.
POLL_S = 0.1


class Stop(Exception):
    """A worker thread was told to stop because the job failed or was cancelled."""


class Worker(threading.Thread):
    """A daemon thread that keeps the exception that ended it."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self._fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn()
        except Stop:
            pass
        except BaseException as exc:  # handed to the caller's thread
            self.error = exc


def put(q: queue.Queue[Any], item: Any, stop: threading.Event) -> None:
    """Hand an item on from a worker thread, raising :class:`Stop` once ``stop`` is set."""
    while True:
        if stop.is_set():
            raise Stop
        try:
            q.put(item, timeout=POLL_S)
            return
        except queue.Full:
            continue


def get_checked(q: queue.Queue[Any], worker: Worker, cancel: CancelCheck | None,
                what: str) -> Any:
    """Next item from a worker's queue, raising its error or the caller's cancel meanwhile."""
    while True:
        check_cancel(cancel, what)
        try:
            return q.get(timeout=POLL_S)
        except queue.Empty:
            if not worker.is_alive() and q.empty():
                if worker.error is not None:
                    raise worker.error from None
                raise GeoganError(f"{what}: the {worker.name} thread stopped "
                                  "unexpectedly") from None


def put_checked(q: queue.Queue[Any], item: Any, worker: Worker, cancel: CancelCheck | None,
                what: str) -> None:
    """Hand an item to a worker's queue, raising its error or the caller's cancel meanwhile."""
    while True:
        check_cancel(cancel, what)
        if not worker.is_alive():
            if worker.error is not None:
                raise worker.error
            raise GeoganError(f"{what}: the {worker.name} thread stopped unexpectedly")
        try:
            q.put(item, timeout=POLL_S)
            return
        except queue.Full:
            continue
