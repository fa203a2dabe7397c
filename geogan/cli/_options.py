"""Option parsing shared by several commands."""

from __future__ import annotations

from typing import Any

import click

from geogan.errors import InputError


def parse_bands(text: str | None, option: str = "--bands") -> tuple[int, ...] | None:
    """``"1,2,3"`` -> ``(1, 2, 3)``; ``None`` or empty -> ``None`` (all bands)."""
    if text is None or not text.strip():
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise InputError(f"{option} {text!r} is not a list of band numbers; "
                         "write them like 1,2,3") from exc


def with_listed(inputs: tuple[object, ...] | list[object],
                files_from: object | None) -> list[str]:
    """INPUT arguments plus the paths a ``--files-from`` list names; at least one."""
    from geogan.inputs import read_files_from

    items = [str(i) for i in inputs]
    if files_from is not None:
        items.extend(read_files_from(str(files_from)))
    if not items:
        raise InputError("no input given; pass INPUT paths or --files-from LIST")
    return items


def _creation_options(ctx: click.Context, param: click.Parameter,
                      value: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    from geogan.sink import parse_creation_options

    return parse_creation_options(value)


#: ``--co KEY=VALUE`` (repeatable), as in gdal_translate and rio: GDAL creation options.
co_option = click.option(
    "--co", "creation_options", multiple=True, metavar="KEY=VALUE", callback=_creation_options,
    help="A GDAL creation option for the output GeoTIFF (or the COG with --cog), after "
         "geogan's defaults; repeat for more, e.g. --co COMPRESS=JPEG --co QUALITY=90.")


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
