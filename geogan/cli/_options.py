"""Option parsing shared by several commands."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from geogan.contract import options
from geogan.contract.options import Command, Option
from geogan.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


def parse_bands(text: str | None, option: str = "--bands") -> tuple[int, ...] | None:
    """``"1,2,3"`` -> ``(1, 2, 3)``; ``None`` or empty -> ``None`` (all bands)."""
    try:
        return options.parse_bands(text)
    except ValueError as exc:
        raise InputError(f"{option} {text!r} is not a list of band numbers; "
                         "write them like 1,2,3") from exc


class OutputPath(click.ParamType):
    """``-o``: a local ``Path``; with ``gdal``, a writable ``/vsi...`` path is kept as given.

    Without ``gdal`` a GDAL path is refused: click's ``Path`` would fold its double slashes
    and make a local folder of it. ``/vsimem/`` is always refused here: what the command
    writes there is gone when its process ends (the library may still write there).
    """

    name = "path"

    def __init__(self, gdal: bool = False, what: str = "its outputs") -> None:
        self.gdal, self.what = gdal, what

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        from geogan.inputs import as_output, is_gdal_path

        if isinstance(value, Path):
            return value
        text = os.fspath(value)
        if not is_gdal_path(text):
            return Path(text)
        if not self.gdal:
            command = ctx.info_name if ctx is not None else "this command"
            raise InputError(f"`output` {text}: geogan {command} writes {self.what} to a local "
                             "folder; give a local path (translate and mosaic can write to "
                             "GDAL paths)")
        if text.startswith("/vsimem/"):
            raise InputError(f"`output` {text}: a /vsimem/ file lives in geogan's memory and is "
                             "gone when the command ends; give a local path or a GDAL path "
                             "that lasts (/vsizip/..., /vsis3/...)")
        return as_output(text, "`output`")


def with_listed(inputs: tuple[object, ...] | list[object],
                files_from: object | None) -> list[str]:
    """INPUT arguments plus the paths a ``--files-from`` list names; at least one."""
    from geogan.inputs import read_files_from

    items = [str(i) for i in inputs]
    if files_from is not None:
        items.extend(read_files_from(str(files_from)))
    if not items:
        raise InputError("no input given; pass INPUT paths or `files_from` LIST")
    return items


def _creation_options(ctx: click.Context, param: click.Parameter,
                      value: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    from geogan.sink import parse_creation_options

    return parse_creation_options(value)


def co_option(command: Command) -> Callable[[F], F]:
    """``--co KEY=VALUE`` (repeatable), as in gdal_translate and rio: GDAL creation options.

    The help names ``--cog`` only for a command that has it.
    """
    what = "each chip GeoTIFF" if command.name == "tile" else "the output GeoTIFF"
    cog = " (or the COG with --cog)" if "cog" in command else ""
    return click.option(
        "--co", "creation_options", multiple=True, metavar="KEY=VALUE",
        callback=_creation_options,
        help=f"A GDAL creation option for {what}{cog}, after geogan's defaults; repeat for "
             "more, e.g. --co COMPRESS=JPEG --co JPEG_QUALITY=90.")


def bands_option(ctx: click.Context, param: click.Parameter,
                 value: str | None) -> tuple[int, ...] | None:
    """click callback for band-list options (``--bands 1,2,3``)."""
    return parse_bands(value, param.opts[0] if param.opts else "--bands")


class ManyValues(click.Option):
    """An option that takes every value up to the next option, and may be repeated.

    ``--a 2009/*.tif --b 2020/*.tif`` works after the shell expanded the globs into many
    file names; the values of all uses arrive as one tuple.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["multiple"] = True
        super().__init__(*args, **kwargs)

    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        super().add_to_parser(parser, ctx)
        for name in self.opts:
            option = parser._long_opt.get(name) or parser._short_opt.get(name)
            if option is None:
                continue
            store = option.process

            def process(value: Any, state: Any, store: Any = store) -> None:
                store(value, state)
                while state.rargs and not state.rargs[0].startswith("-"):
                    store(state.rargs.pop(0), state)

            option.process = process


def spec_option(opt: Option, *, required: bool = False, **overrides: Any) -> Callable[[F], F]:
    """The click option of one entry of :mod:`geogan.contract.options`.

    The Python parameter is the option's library name (``max_nodata``); its flag,
    type, default, choices and help come from the entry.
    """
    decls = [d for d in (opt.short, opt.cli_flag) if d]
    kwargs: dict[str, Any] = {"help": opt.help or None, "default": opt.default,
                              "required": required}
    if opt.kind == "flag":
        if opt.negatable:
            decls = [f"{opt.cli_flag}/--no-{opt.cli_flag[2:]}"]
            kwargs["show_default"] = True
        elif opt.default is True:  # ``--no-augment`` sets augment False
            kwargs.update(is_flag=True, flag_value=False)
        else:
            kwargs["is_flag"] = True
    elif opt.kind == "int":
        kwargs["type"] = (click.IntRange(min=_int(opt.minimum), max=_int(opt.maximum))
                          if opt.minimum is not None or opt.maximum is not None else int)
    elif opt.kind == "float":
        kwargs["type"] = (click.FloatRange(min=opt.minimum, max=opt.maximum)
                          if opt.minimum is not None or opt.maximum is not None else float)
    elif opt.kind == "choice":
        kwargs["type"] = click.Choice(list(opt.choices))
    elif opt.kind == "path":
        kwargs["type"] = click.Path(path_type=Path)
    elif opt.kind == "bands":
        kwargs["callback"] = bands_option
    elif opt.kind == "bounds":
        kwargs.update(nargs=4, type=float)
    if opt.metavar:
        kwargs["metavar"] = opt.metavar
    if opt.default is not None and opt.kind != "flag" and not required:
        kwargs.setdefault("show_default", True)
    kwargs.update(overrides)
    return click.option(*decls, opt.name, **kwargs)


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def spec_options(command: Command, *, skip: tuple[str, ...] = (),
                 required: tuple[str, ...] = ()) -> Callable[[F], F]:
    """All options of ``command`` (but ``skip``), in the spec's order."""

    def decorate(func: F) -> F:
        for opt in reversed(list(command.values())):
            if opt.name not in skip:
                func = spec_option(opt, required=opt.name in required)(func)
        return func

    return decorate


def config_values(command: Command, params: dict[str, Any],
                  fields: Any = None) -> dict[str, Any]:
    """The values of ``params`` that are options of ``command`` (and fields of ``fields``)."""
    names = set(command)
    if fields is not None:
        import dataclasses

        names &= {f.name for f in dataclasses.fields(fields)}
    return {k: v for k, v in params.items() if k in names}


def invoked_as(argv0: str | None = None, path: str | None = None) -> str:
    """How to call geogan again, as the user did: ``geogan`` when that is what ``PATH``
    finds, else the script's path (e.g. ``.venv/bin/geogan`` after ``make demo``, relative
    to the current folder where it lies below it)."""
    import shutil
    import sys

    script = Path(argv0 if argv0 is not None else sys.argv[0])
    if script.name != "geogan":
        return "geogan"
    found = shutil.which("geogan", path=path)
    if found is not None and Path(found).resolve() == script.resolve():
        return "geogan"
    try:
        return str(script.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(script.resolve())
