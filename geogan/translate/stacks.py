"""``translate --stack``: each input read with its stack rasters as one raster, as in training.

The stacked views are those of :mod:`geogan.stack` (the first raster's grid, the stack
rasters resampled bilinearly onto it). The output keeps the first raster's grid, nodata
value and mask (an alpha band becomes the mask, as without a stack); a pixel where any stack
raster has no data (its nodata, mask or alpha, or outside it) is invalid input, so it is
nodata (or masked) in the output like the first raster's own invalid pixels (see
:mod:`geogan.stack_valid`). A stack laid out otherwise than the one the
checkpoint records (:func:`geogan.contract.stacking.stack_problem`) is refused before
anything is read or written.
"""

from __future__ import annotations

import os
from pathlib import Path

from geogan.contract.stacking import stack_problem
from geogan.errors import GeoganError, InputError
from geogan.translate.config import TranslateConfig

#: How stack rasters are put on the first raster's grid at translation.
STACK_RESAMPLING = "bilinear"


def stacked_files(checkpoint: str | os.PathLike[str], files: list[Path],
                  config: TranslateConfig, direction: str) -> list[Path]:
    """``files`` as stacked views with ``config.stack`` (themselves without a stack);
    :class:`InputError` when the stack does not fit the checkpoint's."""
    from geogan.checkpoint import read_checkpoint_meta
    from geogan.contract.choices import sides_of

    try:
        meta = read_checkpoint_meta(checkpoint)
    except GeoganError:
        if not config.stack:
            return files  # loading the generator says what is wrong with the checkpoint
        raise
    domain = meta.domains.get(sides_of(direction)[0])
    trained = domain.stack if domain is not None else None
    if not config.stack and not trained:
        return files
    from geogan.stack import stack_record, stacked_inputs

    if not config.stack:
        raise InputError(stack_problem(trained, None) or "")
    views, layers = stacked_inputs(files, config.stack, "`stack`", STACK_RESAMPLING)
    problem = stack_problem(trained, stack_record(layers or []))
    if problem is not None:
        raise InputError(problem)
    return views
