"""How a library message names the parameter it is about, and how each front end renders it.

The library writes a parameter in a message as its name between backticks,
```tile` must be a multiple of 4``; the CLI renders it as its flag (``--tile``) and
the QGIS plugin as the dialog's label ("Tile size (pixels)"). A name no option
table knows is left as it is, without the backticks. Another command's parameter is
named with that command in front, ```tile.align_to```: ``geogan tile --align-to`` in
every front end (the label of that command's dialog where it has one).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from .options import COMMANDS, Command, Option

#: A parameter reference in a message: its name between backticks, after the name of
#: another command and a dot when it is that command's (group 1 the command, 2 the name).
PARAM_RE = re.compile(r"`(?:([a-z]+)\.)?([a-z][a-z0-9_]*)`")

#: QGIS words for the parameters every algorithm has under another name.
_QGIS_ONLY: dict[str, str] = {"a": "Domain A rasters", "b": "Domain B rasters"}


def params_of(message: str) -> list[str]:
    """The parameter names a message refers to, in order (without another command's name)."""
    return [m.group(2) for m in PARAM_RE.finditer(message) if _refers(m)]


def _refers(match: re.Match[str]) -> bool:
    """Whether a match names a parameter (not `module.name` of something else)."""
    return match.group(1) is None or match.group(1) in COMMANDS


def _lookup(name: str, commands: Iterable[Command]) -> Option | None:
    for command in commands:
        if name in command:
            return command[name]
    return None


def _search_order(command: str | None) -> list[Command]:
    first = [COMMANDS[command]] if command in COMMANDS else []
    return first + [c for c in COMMANDS.values() if c not in first]


def render(message: str, word: Callable[[str, str | None], str]) -> str:
    """``message`` with each `name` replaced by ``word(name, None)`` and each
    `command.name` by ``word(name, command)``."""
    return PARAM_RE.sub(lambda m: word(m.group(2), m.group(1)) if _refers(m) else m.group(0),
                        message)


def cli_word(name: str, command: str | None = None) -> str:
    """The CLI's flag for parameter ``name`` (``--tile``)."""
    option = _lookup(name, _search_order(command))
    if option is not None:
        return option.cli_flag
    return "--" + name.replace("_", "-")  # a flag of the CLI alone (--output, --co, --json)


def qgis_word(name: str, command: str | None = None) -> str:
    """The QGIS dialog's words for parameter ``name`` ("Tile size (pixels)"), quoted."""
    if name in _QGIS_ONLY:
        return f"'{_QGIS_ONLY[name]}'"
    option = _lookup(name, _search_order(command))
    if option is not None and option.label:
        return f"'{option.label}'"
    return cli_word(name, command)


def for_cli(message: str, command: str | None = None) -> str:
    def word(name: str, other: str | None) -> str:
        if other is None:
            return cli_word(name, command)
        return f"geogan {other} {cli_word(name, other)}"
    return render(message, word)


def for_qgis(message: str, command: str | None = None) -> str:
    def word(name: str, other: str | None) -> str:
        if other is None:
            return qgis_word(name, command)
        option = _lookup(name, [COMMANDS[other]])
        if option is not None and option.label:
            return f"'{option.label}' of geogan's {other} algorithm"
        return f"geogan {other} {cli_word(name, other)}"
    return render(message, word)
