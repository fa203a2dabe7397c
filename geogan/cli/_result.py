"""Command results: a human summary on stdout, or one JSON object with ``--json``.

Every command that produces something (files written, counts, figures) calls
:func:`emit` once at the end; ``--json`` (added to every command by the group) turns
the summary into a single JSON object on stdout, for scripts and other programs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

#: Key in the root context's ``obj`` set by the ``--json`` option of any command.
JSON_KEY = "json"


def _store_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    root = ctx.find_root()
    if not isinstance(root.obj, dict):
        root.obj = {}
    root.obj[JSON_KEY] = bool(value) or bool(root.obj.get(JSON_KEY))
    return value


def json_option() -> click.Option:
    """The ``--json`` option every command gets (it sets the root context's flag)."""
    return click.Option(["--json", "as_json_result"], is_flag=True, expose_value=False,
                        callback=_store_json, is_eager=True,
                        help="Print the result (paths written, counts, figures) as one JSON "
                             "object on stdout.")


def wants_json() -> bool:
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return False
    root = ctx.find_root()
    return isinstance(root.obj, dict) and bool(root.obj.get(JSON_KEY))


def _plain(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return str(Path(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def emit(result: dict[str, Any], text: Callable[[], str] | str) -> None:
    """Print ``result`` as JSON with ``--json``, else the human ``text``."""
    if wants_json():
        click.echo(json.dumps(_plain(result), indent=2, sort_keys=False))
    else:
        click.echo(text() if callable(text) else text)
