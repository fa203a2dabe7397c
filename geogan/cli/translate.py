"""``geogan translate``: convert orthophotos with a trained checkpoint, window by window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geogan.cli._options import (
    ManyValues,
    OutputPath,
    co_option,
    config_values,
    spec_option,
    spec_options,
    with_listed,
)
from geogan.cli._result import emit
from geogan.contract.formats import default_format
from geogan.contract.messages import for_cli
from geogan.contract.options import TRANSLATE

_OUT = default_format()  # the format of -o (geogan.contract.formats)


@click.command("translate")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("inputs", nargs=-1, metavar="INPUT...")
@click.option("-o", "--output", required=True, type=OutputPath(gdal=True),
              help=f"Output {_OUT.name} (one input file, name ending in {_OUT.suffixes[0]}) or "
                   "folder; also a writable GDAL path (/vsis3/..., /vsizip/out.zip/a.tif).")
@spec_options(TRANSLATE, skip=("stack",))
@spec_option(TRANSLATE["stack"], cls=ManyValues)
@co_option(TRANSLATE)
def command(checkpoint: Path, inputs: tuple[str, ...], output: Path, **params: Any) -> None:
    """Translate INPUT rasters (files, folders or globs) with CHECKPOINT.

    Outputs keep each input's CRS, transform, size and nodata mask, with the
    band count and dtype of the target domain. With --bounds or --aoi, only that
    part of each input is translated, on its pixel grid, as if it had been cut out
    first (gdal_translate -projwin). With several inputs, OUTPUT is a folder that
    receives <input name>.tif for each. Under torchrun the files are shared out
    across the GPUs; as a job-array task (Slurm, Kubernetes Indexed Job, AWS Batch,
    or --shard I/N) each task translates its share and leaves complete outputs
    alone, so a retried task redoes only what is missing.
    """
    from geogan.cli._progress import reporter
    from geogan.shards import task_share
    from geogan.translate import TranslateConfig, translate_files

    values = config_values(TRANSLATE, params, TranslateConfig)
    if values.get("stats") is not None:
        values["stats"] = str(values["stats"])
    config = TranslateConfig(**values, creation_options=params["creation_options"])
    if params["stats_only"]:
        from geogan.shared_stats import write_shared_stats

        stats = write_shared_stats(checkpoint, with_listed(inputs, params["files_from"]),
                                   output, config, direction=params["direction"])
        emit({"stats": stats}, str(stats))
        return
    share = task_share(params["shard"])
    desc = f"translate ({for_cli(share.describe())})" if share.enabled else "translate"
    with reporter(desc, unit="Mpx") as rep:
        paths = translate_files(checkpoint, with_listed(inputs, params["files_from"]), output,
                                config, progress=rep, direction=params["direction"])
    emit({"outputs": paths}, lambda: "\n".join(str(p) for p in paths))
