"""File and folder names geogan writes: run folders, chips and their index, temporaries.

The library writes these names and the QGIS plugin looks for them (a run folder
as a checkpoint, a chip folder's index, the hidden temporaries of a cancelled job).
"""

from __future__ import annotations

import re
from pathlib import PurePath

# -- training run folders ------------------------------------------------------------------

#: The model checkpoint inside a training run folder (a run folder works as a checkpoint).
RUN_CHECKPOINT_NAME = "model.safetensors"
#: The training state (optimisers, image pools, RNG, step) in a run folder.
TRAIN_STATE_NAME = "train_state.safetensors"
#: The state of a checkpoint being committed (renamed to TRAIN_STATE_NAME once complete).
TRAIN_STATE_PENDING = "train_state.pending.safetensors"
LOSSES_CSV = "losses.csv"
LOSS_PLOT = "loss_plot.png"
PREVIEW_DIR = "previews"
TENSORBOARD_DIR = "tensorboard"
#: A checkpoint's JSON sidecar sits beside it with this suffix.
SIDECAR_SUFFIX = ".json"
#: An ONNX export's sidecar: ``model.onnx`` -> ``model.onnx.json`` (never a checkpoint's).
ONNX_SIDECAR_SUFFIX = ".onnx.json"


def sidecar_name(name: str) -> str:
    """``model.safetensors`` -> ``model.json``."""
    return str(PurePath(name).with_suffix(SIDECAR_SUFFIX))


#: The files of a run folder besides previews/ and tensorboard/.
RUN_FILES = frozenset({
    RUN_CHECKPOINT_NAME, sidecar_name(RUN_CHECKPOINT_NAME),
    TRAIN_STATE_NAME, sidecar_name(TRAIN_STATE_NAME),
    TRAIN_STATE_PENDING, sidecar_name(TRAIN_STATE_PENDING),
    LOSSES_CSV, LOSS_PLOT})

# -- chip folders --------------------------------------------------------------------------

#: The tile index of a chip folder, and its layer.
INDEX_NAME = "index.gpkg"
INDEX_LAYER = "chips"
#: Sub-folders of a paired chip folder (``geogan tile --pair``).
PAIR_DIRS = ("A", "B")
#: GeoTIFF tag of a chip: the window of it that holds source pixels (edge chips are padded).
VALID_WINDOW_TAG = "GEOGAN_VALID_WINDOW"

CHIP_NAME_RE = re.compile(r"^(?P<stem>.+)__c(?P<col>\d+)_r(?P<row>\d+)\.tif$")


def chip_stem(source_stem: str) -> str:
    """The stem of a source's chips: its own, without leading dots, so that chips of
    ``.hidden.tif`` are not hidden files that other commands skip (``hidden__c...``)."""
    return source_stem.lstrip(".") or "chip"


def chip_name(stem: str, col_off: int, row_off: int) -> str:
    """The file name of a chip: ``naip_2009__c000512_r000256.tif`` (see :func:`chip_stem`)."""
    return f"{chip_stem(stem)}__c{col_off:06d}_r{row_off:06d}.tif"


def parse_chip_name(name: str) -> tuple[str, int, int]:
    """``(stem, col_off, row_off)`` from a chip file name made by :func:`chip_name`."""
    m = CHIP_NAME_RE.match(PurePath(name).name)
    if m is None:
        raise ValueError(f"{name} is not a geogan chip name (<stem>__cCCCCCC_rRRRRRR.tif)")
    return m["stem"], int(m["col"]), int(m["row"])


def part_name(index: int, count: int) -> str:
    """The chip folder of job-array task ``index`` of ``count``: ``part-0003-of-0008``."""
    return f"part-{index:04d}-of-{count:04d}"


# -- translate outputs ---------------------------------------------------------------------

#: Normalisation statistics saved beside an output: ``<output>.stats.json``.
STATS_SUFFIX = ".stats.json"
#: ``translate --confidence``: ``<output stem>.confidence.tif`` (and its QGIS style, ``.qml``).
CONFIDENCE_SUFFIX = ".confidence.tif"
#: ``geogan mosaic --index FOLDER``: the outputs' footprints (and their layer), and a VRT.
BATCH_INDEX_NAME = "index.gpkg"
BATCH_INDEX_LAYER = "outputs"
BATCH_VRT_NAME = "mosaic.vrt"

# -- temporaries ---------------------------------------------------------------------------

#: ``.<name>.<pid>.<random>.tmp<suffix>`` (or ``.old``): hidden temporaries beside an output.
TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?P<token>[0-9a-f]{8})\.(?P<kind>tmp|old)"
                     r"(\..*)?$")
#: ``.<name>.geogan-lock``: the lock file beside an output folder while a job writes it
#: (:mod:`geogan.fileio.lock`); it may outlive a killed job and is never a user's file.
LOCK_SUFFIX = ".geogan-lock"
#: The temporaries safetensors (0.5 and later) makes beside a file it saves; geogan's older
#: versions left them in run folders when killed (``.tmpAB12cd``).
SAFETENSORS_TEMP_RE = re.compile(r"^\.tmp[A-Za-z0-9]{6}$")


def temp_name(final_name: str, pid: int, token: str, kind: str = "tmp",
              suffix: str = "") -> str:
    """The hidden temporary name of ``final_name`` for process ``pid`` (token: 8 hex digits)."""
    return f".{final_name}.{pid}.{token}.{kind}{suffix}"


def lock_name(final_name: str) -> str:
    """The name of the lock file of output ``final_name``, beside it in the same folder."""
    return f".{final_name}{LOCK_SUFFIX}"


def is_lock_name(name: str) -> bool:
    """Whether ``name`` is a lock file's (:func:`lock_name`)."""
    return name.startswith(".") and name.endswith(LOCK_SUFFIX) and len(name) > len(LOCK_SUFFIX) + 1


def temp_of(name: str) -> str | None:
    """The final name a hidden temporary belongs to, or None if ``name`` is not one."""
    m = TEMP_RE.match(name)
    return m.group("name") if m else None


def temp_pid(name: str) -> int | None:
    """The id of the process that made temporary ``name``, or None if it is not one."""
    m = TEMP_RE.match(name)
    return int(m.group("pid")) if m else None
