"""The lines ``geogan --progress json`` writes on stderr for other programs (QGIS's plugin).

* progress: ``{"progress": 0.42, "done": 42, "total": 100, "desc": "...", ...info}``;
* error: ``{"error": "<message in the CLI's words>", "template": "<message with
  `parameter` names>", "params": [...]}`` followed by ``Error: <message>`` (what a
  person reads, and what older readers understand);
* warning: ``{"warning": "<message in the CLI's words>", "template": ..., "params": [...]}``
  for each warning geogan logs (a reader renders the template in its own words);
* the exit status: 0, 1 for an error, 130 after Ctrl-C, 143 after SIGTERM.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

EXIT_ERROR = 1
EXIT_SIGINT = 130
EXIT_SIGTERM = 143
#: The prefix of the CLI's last line when a command fails.
ERROR_PREFIX = "Error: "


@dataclass(frozen=True)
class ProgressEvent:
    """One progress line."""

    fraction: float
    done: float
    total: float
    desc: str = ""
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ErrorEvent:
    """One error line: the message in the CLI's words and its template with parameter names."""

    message: str
    template: str
    params: tuple[str, ...] = ()


def progress_line(done: float, total: float, desc: str = "", **info: Any) -> str:
    record: dict[str, Any] = {"progress": (done / total) if total else 0.0, "done": done,
                              "total": total, "desc": desc, **info}
    return json.dumps(record)


def error_line(message: str, template: str, params: list[str] | tuple[str, ...]) -> str:
    return json.dumps({"error": message, "template": template, "params": list(params)})


def warning_line(message: str, template: str, params: list[str] | tuple[str, ...]) -> str:
    return json.dumps({"warning": message, "template": template, "params": list(params)})


def _record(line: str) -> dict[str, Any] | None:
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def parse_progress_line(line: str) -> ProgressEvent | None:
    """A :class:`ProgressEvent` from one stderr line, or None if it is not a progress record."""
    record = _record(line)
    if record is None or "progress" not in record:
        return None
    try:
        fraction = float(record.pop("progress"))
        done = float(record.pop("done", 0.0))
        total = float(record.pop("total", 0.0))
    except (TypeError, ValueError):
        return None
    if math.isnan(fraction):
        fraction = 0.0
    desc = record.pop("desc", "")
    return ProgressEvent(min(max(fraction, 0.0), 1.0), done, total, str(desc), record)


def parse_error_record(line: str, kind: str = "error") -> ErrorEvent | None:
    """An :class:`ErrorEvent` from one stderr line, or None if it is not an error record
    (``kind="warning"``: a warning record)."""
    record = _record(line)
    if record is None or not isinstance(record.get(kind), str):
        return None
    template = record.get("template")
    params = record.get("params") or []
    return ErrorEvent(record[kind], template if isinstance(template, str) else record[kind],
                      tuple(str(p) for p in params if isinstance(p, str)))


def parse_error_line(line: str) -> str | None:
    """The message of a final ``Error: <message>`` line of the geogan CLI, else None."""
    text = line.strip()
    if text.startswith(ERROR_PREFIX):
        return text[len(ERROR_PREFIX):].strip()
    return None
