"""Which inputs a batch translates into which outputs, on which task or rank, and which remain."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from geogan.contract.formats import default_format, picture_names
from geogan.errors import InputError, OutputError
from geogan.fileio import check_output_file, is_complete_raster
from geogan.inputs import GdalPath, as_output
from geogan.normstats import stats_path_for
from geogan.rasterio_io import check_outputs_not_read
from geogan.shards import Share, task_share
from geogan.translate.config import OUTPUT_SUFFIXES, TranslateConfig

log = logging.getLogger(__name__)

#: The format of outputs geogan names, and the plain pictures (geogan.contract.formats).
_DEFAULT = default_format()
_PICTURES = "/".join(picture_names())


def expand_inputs(inputs: Iterable[str | os.PathLike[str]],
                  files_from: str | os.PathLike[str] | None = None) -> list[Path]:
    """Files, folders (their rasters, not recursive), globs and ``--files-from`` lists."""
    from geogan.inputs import expand_inputs as expand

    return expand(inputs, files_from=files_from)  # type: ignore[return-value]  (GdalPath too)


def map_outputs(files: Sequence[Path], output: str | os.PathLike[str]) -> list[Path]:
    """Output path of each input file.

    OUTPUT is a file when the inputs name a single raster and OUTPUT ends in one of
    :data:`~geogan.translate.config.OUTPUT_SUFFIXES` (.tif, .tiff, .png, .jpg, .jpeg) and
    is not an existing folder; otherwise it is a folder that receives
    ``<input stem>.tif`` for each input (:func:`geogan.contract.formats.default_format`).
    No output may be a file GDAL reads for any of the inputs
    (:func:`~geogan.rasterio_io.check_outputs_not_read`), even with ``overwrite``.
    """
    out = as_output(output)
    if (not out.is_dir() and out.suffix.lower() not in OUTPUT_SUFFIXES
            and re.fullmatch(r"\.[A-Za-z][A-Za-z0-9]{1,4}", out.suffix)):
        raise OutputError(f"-o {out}: geogan translate writes {_DEFAULT.name} (or {_PICTURES} "
                          f"for pictures); give a {_DEFAULT.suffixes[0]} file name or a folder "
                          "(to use a folder of that name, create it first)")
    single = (len(files) == 1 and not out.is_dir()
              and out.suffix.lower() in OUTPUT_SUFFIXES)
    if single:
        outs = [out]
    else:
        if out.exists() and not out.is_dir():
            raise OutputError(f"{out} is a file but {len(files)} input(s) need an output folder; "
                              "give a folder with -o")
        outs = [out / f"{f.stem}{_DEFAULT.suffixes[0]}" for f in files]
        by_name: dict[Path, Path] = {}
        for f, o in zip(files, outs, strict=True):
            if o in by_name:
                raise InputError(f"{by_name[o]} and {f} would both be written to {o}; "
                                 "rename one or translate them into different folders")
            by_name[o] = f
    check_outputs_not_read(outs, files)
    return outs


def rank_share(shard: str | None = None) -> tuple[int, int]:
    """``(index, count)`` of this process: its job-array task or torchrun rank (``(0, 1)``
    alone; see :func:`geogan.shards.task_share`)."""
    share = task_share(shard)
    return share.index, share.count


def my_share(pairs: Sequence[tuple[Path, Path]], share: Share,
             config: TranslateConfig) -> tuple[list[tuple[Path, Path]], TranslateConfig]:
    """This task's ``(input, output)`` pairs, and the config it runs them with.

    A job-array task takes the inputs whose file name is its own (:meth:`Share.owns`)
    and, unless ``config.overwrite``, leaves complete outputs alone as with
    ``skip_existing``, so that a retried task redoes only what is not complete.
    """
    mine = share.pick(pairs, lambda pair: pair[0].name)
    if share.is_array and not config.overwrite and not config.skip_existing:
        log.info("%s: outputs that exist and are complete are left alone", share.describe())
        config = replace(config, skip_existing=True)
    return mine, config


def files_to_translate(mine: Sequence[tuple[Path, Path]], config: TranslateConfig
                       ) -> tuple[list[tuple[Path, Path]], dict[Path, list[str]]]:
    """The ``(input, output)`` pairs still to translate; check every output first.

    With ``config.skip_existing`` complete outputs are left out, unless a raster asked for
    beside one (``confidence``) is missing: then the pair stays, and the second value maps
    its output (kept as it is) to the names of the rasters to write beside it
    (:mod:`~geogan.translate.resume`). Otherwise an existing output (or its statistics
    file) is an error unless ``config.overwrite``.
    """
    from geogan.translate.resume import missing_sides

    todo: list[tuple[Path, Path]] = []
    kept: dict[Path, list[str]] = {}
    for src, dst in mine:
        if config.skip_existing and dst.exists():
            if not is_complete_raster(dst):
                raise OutputError(f"{dst} exists but is not a complete raster (left by an "
                                  "interrupted or failed write); delete it and run again")
            missing = missing_sides(dst, config)
            if missing:
                kept[dst] = [side.name for side in missing]
                todo.append((src, dst))
                continue
            log.info("skipping %s: %s already exists", src, dst)
            continue
        check_output_file(dst, config.overwrite)
        if config.save_stats and isinstance(dst, GdalPath):
            raise InputError(f"`save_stats` writes a JSON file beside the output, which geogan "
                             f"writes to local folders only, not to {dst}; translate to a "
                             "local file to keep the statistics, or drop `save_stats`")
        if config.save_stats:
            check_output_file(stats_path_for(dst), config.overwrite)
        if config.stac:
            from geogan.stac import check_item_output

            check_item_output(dst, config.overwrite)
        _check_side_rasters(dst, config)
        todo.append((src, dst))
    return todo, kept


def _check_side_rasters(dst: Path, config: TranslateConfig) -> None:
    """Each raster written beside ``dst`` (:mod:`geogan.sink.side`) can be written."""
    from geogan.sink import check_side_outputs, side_rasters

    sides = side_rasters(config)
    if sides and config.at_model_resolution:
        raise InputError(f"`at_model_resolution` writes no {sides[0].name} raster beside the "
                         "output; drop `at_model_resolution`")
    check_side_outputs(dst, config, local=not isinstance(dst, GdalPath))
