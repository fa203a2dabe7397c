"""Every example in the help works: the flags it names exist, its ``--co`` options are GDAL's."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from geogan.cli import COMMANDS, main
from geogan.contract.options import COMMANDS as OPTION_TABLES

#: ``--flag`` as a word (not the ``--`` of a range or the middle of a path).
FLAG_RE = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*(?![\w])")
#: ``geogan CMD ...`` between quotes inside prose: an example of CMD.
QUOTED_RE = re.compile(r"'geogan (\w+)([^']*)'")
#: ``--co KEY=VALUE`` in a help text.
CO_RE = re.compile(r"--co\s+([A-Za-z_][A-Za-z0-9_]*)=([^\s,;.)]+)")


def _help(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


def _flags_of(command: click.Command) -> set[str]:
    flags = {"--help"}
    for param in command.params:
        if isinstance(param, click.Option):
            flags.update(o for o in [*param.opts, *param.secondary_opts] if o.startswith("--"))
    return flags


def _command(name: str) -> click.Command:
    ctx = click.Context(main)
    command = main.get_command(ctx, name)
    assert command is not None, name
    return command


def examples_and_prose(text: str, own: str) -> list[tuple[str, str]]:
    """``(command, text)`` pieces of a help: its example lines and quoted ``'geogan X ...'``
    go to the command they run, the rest of the text to ``own``."""
    pieces: list[tuple[str, str]] = []
    prose: list[str] = []
    for line in text.splitlines():
        match = re.match(r"\s*(?:torchrun .*-m )?geogan (\w+)(.*)", line)
        if match and not line.lstrip().startswith("Usage:"):
            pieces.append((match.group(1), match.group(2).split("(")[0]))
        else:
            prose.append(line)
    flat = " ".join(" ".join(prose).split())
    for match in QUOTED_RE.finditer(flat):
        pieces.append((match.group(1), match.group(2)))
    pieces.append((own, QUOTED_RE.sub("", flat)))
    return pieces


def test_the_extraction_finds_example_lines_and_quoted_commands():
    text = ("  Examples:\n    geogan train --a x --b y -o run   (--note)\n"
            "  chips from 'geogan tile\n  --pair' and --crop here\n")
    pieces = examples_and_prose(text, "train")
    assert ("train", " --a x --b y -o run   ") in pieces
    assert ("tile", " --pair") in pieces
    assert FLAG_RE.findall(pieces[-1][1]) == ["--crop"]


@pytest.mark.parametrize("name", [None, *COMMANDS])
def test_every_flag_in_a_help_is_an_option_of_its_command(name):
    text = _help(name) if name else _help()
    own = name or ""
    wrong = []
    for command, piece in examples_and_prose(text, own):
        known = _flags_of(_command(command) if command else main)
        wrong += [f"{flag} (of {command or 'geogan'})" for flag in FLAG_RE.findall(piece)
                  if flag not in known]
    assert not wrong, f"geogan {name} --help names flags that do not exist: {wrong}"


@pytest.mark.parametrize("table", list(OPTION_TABLES.values()), ids=list(OPTION_TABLES))
def test_option_table_help_names_flags_of_its_command(table):
    known = _flags_of(_command(table.name))
    wrong = {(opt.name, flag) for opt in table.values() for flag in FLAG_RE.findall(opt.help)
             if flag not in known}
    assert not wrong


def _co_examples() -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    found = []
    texts = [(name, _help(name)) for name in COMMANDS]
    texts += [(f"{t.name}.{o.name}", o.help) for t in OPTION_TABLES.values() for o in t.values()]
    for where, text in texts:
        pairs = tuple((k.upper(), v) for k, v in CO_RE.findall(" ".join(text.split()))
                      if (k, v) != ("KEY", "VALUE"))  # the metavar, not an example
        if pairs:
            found.append((where, pairs))
    return found


def test_help_shows_creation_options():
    assert any(name == "translate" for name, _ in _co_examples())


@pytest.mark.parametrize(("where", "pairs"), _co_examples(), ids=lambda v: str(v)[:40])
def test_creation_options_in_help_are_accepted_by_gdal(where, pairs):
    from rasterio.transform import from_origin

    from geogan.sink import check_creation_options, output_profile

    src = {"width": 64, "height": 64, "count": 3, "dtype": "uint8", "nodata": None,
           "crs": "EPSG:26914", "transform": from_origin(0, 64, 1, 1)}
    profile = output_profile(src, creation_options=pairs)
    check_creation_options(profile, pairs, "GTiff")  # raises InputError when GDAL rejects one
