"""The library names parameters in messages as `name` (geogan.contract.messages), never by a
front end's words: no CLI flag of the contract's option tables is spelled in a message string
of a library module (the CLI, geogan/cli/, renders `name` as the flag; QGIS as its label)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from geogan.contract.messages import for_cli
from geogan.contract.options import COMMANDS

ROOT = Path(__file__).resolve().parents[1] / "geogan"

#: Library files whose strings are a front end's text by design.
FRONT_END_TEXT = {
    "cli",                   # the CLI: flags are its words
    "contract/options.py",   # the option tables' help, shown by the CLI's --help
}

#: (file, flag) pairs that are a literal command line of another program, or not geogan's
#: parameter, kept as they are. Keep this short and say why.
ALLOWED: set[tuple[str, str]] = {
    # TODO(sink): the user's creation options as given, in GDAL's refusal; to become
    # `co` KEY=VALUE (geogan/sink/ is another helper's while this test is written)
    ("sink/gdal.py", "--co"),
}

FLAG_RE = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _flags() -> set[str]:
    """Every CLI flag of the contract's options, and the CLI's own ``--output`` and ``--co``
    (which messages name as `output` and `co`)."""
    flags = {"--output", "--co"}
    for command in COMMANDS.values():
        for option in command.values():
            flags.add(option.cli_flag)
            if option.negatable:
                flags.add("--no-" + option.name.replace("_", "-"))
    return flags


def _message_strings(tree: ast.AST) -> list[ast.Constant]:
    """The string constants of a module but its docstrings (and other bare string
    statements, which no one sees); f-strings' literal parts included."""
    bare = {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    return [node for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in bare]


def _offences(allowed: set[tuple[str, str]] = ALLOWED) -> list[str]:
    flags, found = _flags(), []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.split("/")[0] in FRONT_END_TEXT or rel in FRONT_END_TEXT:
            continue
        for node in _message_strings(ast.parse(path.read_text(), str(path))):
            for flag in FLAG_RE.findall(node.value):
                if flag in flags and (rel, flag) not in allowed:
                    found.append(f"geogan/{rel}:{node.lineno}: {flag} in {node.value!r}")
    return found


def test_no_library_message_spells_a_cli_flag() -> None:
    offences = _offences()
    assert not offences, ("name the parameter as `name` instead (geogan.contract.messages):\n"
                          + "\n".join(offences))
    # each allowance is still needed (remove it once its file names the parameter)
    everything = "\n".join(_offences(set()))
    for rel, flag in ALLOWED:
        assert f"geogan/{rel}:" in everything and f": {flag} in" in everything, (rel, flag)


def test_the_scan_finds_a_flag_and_skips_docstrings() -> None:
    source = ('"""Run with --tile 256."""\n'
              'def f(n):\n'
              '    """--overlap too."""\n'
              '    raise ValueError(f"{n} is wrong; pass --overwrite or --array=3")\n')
    strings = [node.value for node in _message_strings(ast.parse(source))]
    assert [FLAG_RE.findall(s) for s in strings] == [["--overwrite", "--array"]]
    assert "--overwrite" in _flags() and "--array" not in _flags()
    assert {"--align-to", "--resume", "--shard", "--bands", "--no-augment"} <= _flags()


def test_messages_name_another_commands_parameter() -> None:
    from geogan.errors import InputError

    exc = InputError("translate them to one grid (`tile.align_to`, or gdalwarp)")
    assert str(exc) == "translate them to one grid (geogan tile --align-to, or gdalwarp)"
    assert exc.params == ["align_to"]
    # a dotted name that is no command's is not a parameter: left as it is
    assert for_cli("see `numpy.float32` and `tile`") == "see `numpy.float32` and --tile"
