"""Exceptions with messages a user can act on.

Every message is one line that names the file or option at fault and says what
to do. A message names the parameter it is about by its library name between
backticks (```tile` must be ...``, see :mod:`geogan.contract.messages`); ``str()``
renders it in the CLI's words (``--tile must be ...``), which the CLI prints as
``Error: <message>`` before it exits non-zero, and the QGIS plugin renders the
:attr:`~GeoganError.template` in its dialog's words ("'Tile size (pixels)' must be
...") for its ``QgsProcessingException``.
"""

from __future__ import annotations

from collections.abc import Iterable

from geogan.contract import messages


class GeoganError(Exception):
    """Base class of all errors geogan reports to users."""

    @property
    def template(self) -> str:
        """The message with the parameters it names as `name` (no front end's words)."""
        return super().__str__()

    @property
    def params(self) -> list[str]:
        """The library names of the parameters the message is about."""
        return messages.params_of(self.template)

    def __str__(self) -> str:
        return messages.for_cli(self.template)


class InputError(GeoganError):
    """An input file, folder or option is unusable (missing, unreadable, wrong shape)."""


class GeoreferenceError(InputError):
    """A raster's georeference is missing or unsupported (no CRS, rotated transform)."""


class OutputError(GeoganError):
    """An output cannot be written (exists without --overwrite, unwritable folder)."""


class CheckpointError(GeoganError):
    """A checkpoint is missing, truncated, or does not describe a geogan model."""


class TrainingError(GeoganError):
    """Training cannot go on (non-finite loss, device unavailable)."""


class Cancelled(GeoganError):
    """The caller asked the running job to stop (Ctrl-C, QGIS Cancel)."""


class Terminated(Cancelled):
    """The job stopped because the process was sent SIGTERM (exit status 143)."""


class TerminateRequest(KeyboardInterrupt):
    """Raised by the CLI's SIGTERM handler: unwinds like Ctrl-C, exits with status 143."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty).

    GDAL, PROJ and torch errors can run to many lines; geogan quotes only the first.
    When the message only points at an earlier error (rasterio's "Read failed. See
    previous exception for details."), GDAL's own message, kept as the exception's
    ``__cause__`` or ``__context__``, is quoted instead.
    """
    text = str(exc).strip()
    inner = exc.__cause__ or exc.__context__
    if inner is not None and inner is not exc and "see previous exception" in text.lower():
        cause = first_line(inner)
        if cause and cause != type(inner).__name__:
            return cause
    return text.splitlines()[0] if text else type(exc).__name__


def require_choice(name: str, value: object, choices: Iterable[str]) -> None:
    """Refuse ``value`` of parameter ``name`` unless it is one of ``choices`` (one line)."""
    names = list(choices)
    if value not in names:
        raise InputError(f"unknown `{name}` {value!r}; choose one of {', '.join(names)}")
