"""One set of normalisation statistics for a whole batch, estimated once and written to a file.

``geogan translate MODEL INPUTS --stats-only -o shared.stats.json`` is the first step of a
job array whose outputs must match in colour where they meet: it estimates the ``global``
statistics over every input together, exactly as ``--shared-stats`` does, translates
nothing, and writes them to one JSON file. Every task then runs ``--stats
shared.stats.json``, so each output is translated with the same statistics whichever
task makes it, and equals a single process's output with that file byte for byte.

(``--shared-stats`` in every task gives the same statistics too, but each task estimates
them again over all inputs, and reads a sample of every input to do it.)
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from geogan import normstats
from geogan.checkpoint import load_generator
from geogan.errors import InputError
from geogan.fileio import check_output_file
from geogan.inputs import GdalOutput, as_output
from geogan.progress import CancelCheck, check_cancel
from geogan.shards import task_share
from geogan.translate.config import TranslateConfig
from geogan.translate.planning import expand_inputs
from geogan.translate.runtime import resolve_device, torch_threads
from geogan.translate.stats import batch_stats
from geogan.translate.subset import inspect_input

log = logging.getLogger(__name__)

#: The name ending the statistics file must have.
STATS_FILE_SUFFIX = ".json"


def check_stats_only(config: TranslateConfig, output: Path | GdalOutput) -> None:
    """Refuse, in one line, a ``stats_only`` run whose file could not serve every task."""
    if config.norm != "global":
        raise InputError("`stats_only` writes one global set of statistics for all inputs; it "
                         f"needs `norm` global, not {config.norm}")
    if config.stats:
        raise InputError("`stats_only` estimates the statistics `stats` would give; drop "
                         "`stats`")
    if isinstance(output, GdalOutput) or output.suffix.lower() != STATS_FILE_SUFFIX:
        raise InputError(f"`stats_only` writes one statistics file: give `output` a local "
                         f"file name ending in {STATS_FILE_SUFFIX}, not {output}")
    share = task_share(config.shard)
    if share.enabled:
        raise InputError(f"`stats_only` writes one statistics file for the whole batch; run it "
                         f"once before the job array, not as {share.describe()} (drop `shard` "
                         "and the array's task index)")


def write_shared_stats(checkpoint: str | os.PathLike[str],
                       inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                       output: str | os.PathLike[str], config: TranslateConfig | None = None,
                       cancel: CancelCheck | None = None, *, direction: str = "a2b") -> Path:
    """Estimate one set of ``global`` statistics over all ``inputs`` and write it to ``output``.

    The statistics are those ``config.shared_stats`` gives the same inputs (the same
    sample, ``bands``, ``bounds``/``aoi`` parts, device and precision); pass ``output``
    as ``config.stats`` to translate any of the inputs with them. ``output`` (a local
    ``.json`` file) is refused if it exists, unless ``config.overwrite``. Raises
    :class:`InputError` for a generator without instance normalisation, whose
    translations use no statistics.
    """
    config = config or TranslateConfig()
    if direction not in ("a2b", "b2a"):
        raise InputError(f"unknown `direction` {direction!r}; choose a2b or b2a")
    target = as_output(output)
    check_stats_only(config, target)
    target = Path(target)
    check_output_file(target, config.overwrite)
    files = expand_inputs([inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs))
    check_cancel(cancel, "estimation")
    with torch_threads(config.threads):
        device = resolve_device(config.device)
        generator = load_generator(checkpoint, direction, device)
        if not normstats.norm_layers(generator.module):
            raise InputError(f"the {direction} generator of {checkpoint} has no instance "
                             "normalisation, so its translations use no statistics; translate "
                             "without `stats_only`")
        for path in files:
            inspect_input(path, generator, config)
        stats = batch_stats(generator, files, dataclasses.replace(config, shared_stats=True),
                            device, cancel)
    assert stats is not None  # norm global with shared_stats always estimates
    stats.save(target, overwrite=config.overwrite)
    log.info("wrote the statistics of %d input(s) to %s", len(files), target)
    return target
