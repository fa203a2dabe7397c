"""Option parsing shared by several commands."""

from __future__ import annotations

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


def bands_option(ctx: click.Context, param: click.Parameter,
                 value: str | None) -> tuple[int, ...] | None:
    """click callback for band-list options (``--bands 1,2,3``)."""
    return parse_bands(value, param.opts[0] if param.opts else "--bands")
