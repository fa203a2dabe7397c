"""The ``geogan`` command: a click group whose subcommands load lazily.

Each subcommand lives in its own module ``geogan.cli.<name>`` and only adapts
arguments, progress and cancellation to one library call. Importing this module
imports neither torch nor rasterio, so ``geogan --help`` is instant.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
import signal
import sys
from typing import Any

import click

from geogan import __version__
from geogan.contract import choices, protocol
from geogan.errors import GeoganError, Terminated, TerminateRequest

#: command name -> module under geogan.cli that defines a click command called ``command``.
COMMANDS: dict[str, str] = {
    "tile": "tile",
    "mosaic": "mosaic",
    "train": "train",
    "translate": "translate",
    "evaluate": "evaluate",
    "export": "export",
    "demo": "demo",
    "info": "info",
    "import": "import_",
}


class LazyGroup(click.Group):
    """Loads a subcommand's module only when that subcommand runs or its help is shown."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, mod in COMMANDS.items()
                if importlib.util.find_spec(f"geogan.cli.{mod}") is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        mod = COMMANDS.get(cmd_name)
        if mod is None or importlib.util.find_spec(f"geogan.cli.{mod}") is None:
            return None
        command = importlib.import_module(f"geogan.cli.{mod}").command
        assert isinstance(command, click.Command)
        if not any("--json" in p.opts for p in command.params if isinstance(p, click.Option)):
            from geogan.cli._result import json_option

            command.params.append(json_option())
        return command

    def main(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().main(*args, **kwargs)
        except SystemExit as exc:
            _exit_past_gloo(exc.code)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Terminated as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(protocol.EXIT_SIGTERM)
        except GeoganError as exc:
            logging.getLogger("geogan").debug("error", exc_info=True)
            if (ctx.obj or {}).get("progress") == "json":  # for programs: the message's template
                from geogan.contract.messages import for_cli
                from geogan.contract.protocol import error_line

                command = ctx.invoked_subcommand
                click.echo(error_line(for_cli(exc.template, command), exc.template, exc.params),
                           err=True)
            raise click.ClickException(str(exc)) from exc
        except TerminateRequest:
            click.echo("Terminated.", err=True)
            sys.exit(protocol.EXIT_SIGTERM)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(protocol.EXIT_SIGINT)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as exc:  # never a traceback: one line, details with -vv
            logging.getLogger("geogan").debug("unexpected error", exc_info=True)
            raise click.ClickException(unexpected_error_message(exc)) from exc


#: torch's words for a failed allocation (a RuntimeError on the CPU, on some GPUs too).
_ALLOCATION_FAILED = re.compile(r"can't allocate memory|not enough memory|out of memory",
                                re.IGNORECASE)
_ASKED_BYTES = re.compile(r"tried to allocate (\d+) bytes")


def _exit_past_gloo(code: Any) -> None:
    """End a process that used a gloo process group now, skipping C++'s static destructors.

    torch's gloo threads outlive ``destroy_process_group`` and, torn down at exit, now and
    then abort the process (see :func:`geogan.train.runtime.process_group`); everything of
    geogan's is written and closed by now, so only the streams are flushed first.
    """
    runtime = sys.modules.get("geogan.train.runtime")
    if runtime is None or not getattr(runtime, "gloo_threads_left", False):
        return
    import os

    status = code if isinstance(code, int) else 0 if code is None else 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def unexpected_error_message(exc: BaseException) -> str:
    """One line for an error geogan did not foresee (out of memory, a system error...)."""
    from geogan.errors import first_line

    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" \
            or (isinstance(exc, RuntimeError) and _ALLOCATION_FAILED.search(str(exc))):
        asked = _ASKED_BYTES.search(str(exc))
        if asked:
            from geogan.fileio import format_bytes

            size = f" ({format_bytes(int(asked.group(1)))} could not be allocated)"
        else:
            size = ""
        return (f"out of memory{size}; lower the sizes that grow memory (--tile, "
                "--batch-size, --size, --crop, --ngf) and try again")
    if isinstance(exc, OSError):
        import errno

        from geogan.fileio import write_error

        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return str(write_error(exc.filename or "the output", exc))
        where = f"{exc.filename}: " if exc.filename else ""
        return (f"{where}{exc.strerror or first_line(exc)}; check the path, permissions and "
                "free space")
    return (f"unexpected {type(exc).__name__}: {first_line(exc)}; run again with -vv for "
            "details and report it to geogan's issue tracker")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="geogan")
@click.option("-v", "--verbose", count=True,
              help="More log output: -v what geogan does, -vv debug (also GDAL's).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors, no progress bars.")
@click.option("--progress", "progress_format", type=click.Choice(list(choices.PROGRESS_FORMATS)),
              default="bar", show_default=True,
              help="Progress as a bar, as JSON lines on stderr (for other programs), or none.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool, progress_format: str) -> None:
    """Translate georeferenced imagery from one look to another with GANs.

    train (from rasters, or from chips cut by tile) -> translate, keeping CRS, transform
    and nodata intact.
    """
    level = (logging.ERROR if quiet else logging.WARNING if verbose == 0
             else logging.INFO if verbose == 1 else logging.DEBUG)
    # geogan's own messages at ``level``; other libraries' only from -vv on: a GDAL error
    # (e.g. libtiff's "No space left on device") becomes geogan's own one-line error.
    fresh = not logging.getLogger().handlers  # else a host (a test, a program) logs
    logging.basicConfig(level=logging.DEBUG if verbose >= 2 else logging.CRITICAL,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if fresh:
        logging.getLogger().handlers[0].setFormatter(
            LogWords(ctx.invoked_subcommand, json_warnings=progress_format == "json"))
    logging.getLogger("geogan").setLevel(level)
    if verbose < 2 and ctx.invoked_subcommand is not None:
        from geogan.cli._quiet import silence_libtiff

        silence_libtiff()
    ctx.obj = {"progress": "none" if quiet and progress_format == "bar" else progress_format}
    # SIGTERM (a job scheduler, QGIS's Cancel) unwinds like Ctrl-C, so temporary outputs
    # are removed; training installs its own handler that saves a checkpoint first.
    signal.signal(signal.SIGTERM, _terminate)


class LogWords(logging.Formatter):
    """Log lines in the CLI's words: a parameter a message names as `tile` is ``--tile``.

    With ``--progress json`` a warning is a warning record of :mod:`geogan.contract.protocol`,
    its template kept for the program that reads it (QGIS's plugin uses its own words).
    """

    def __init__(self, command: str | None, json_warnings: bool = False) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.command, self.json_warnings = command, json_warnings

    def format(self, record: logging.LogRecord) -> str:
        from geogan.contract.messages import for_cli, params_of

        template = record.getMessage()
        text = for_cli(template, self.command)
        if self.json_warnings and record.levelno == logging.WARNING:
            return protocol.warning_line(text, template, params_of(template))
        rendered = logging.makeLogRecord({**record.__dict__, "msg": text, "args": None})
        return super().format(rendered)


def _terminate(signum: int, frame: Any) -> None:
    raise TerminateRequest(f"signal {signum}")
