"""The demo's data ships with the package: setup.cfg lists every file of geogan/sample_data as
package data, and importlib.resources finds the rasters and the model where geogan is installed.

Building a wheel is ``make dist`` (CI runs it); these tests build nothing.
"""

from __future__ import annotations

import configparser
import glob
from importlib.resources import files
from pathlib import Path

import geogan
from geogan.demo import (
    DATA_FOLDER,
    PRETRAINED_NAME,
    REFERENCE_NAME,
    SOURCE_NAME,
    default_data_dir,
)

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "geogan"


def _package_data_globs() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    text = cfg.get("options.package_data", "geogan", fallback="")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _packaged(globs: list[str]) -> set[str]:
    """The files under geogan/ that the package_data globs take, as setuptools expands them."""
    found: set[str] = set()
    for pattern in globs:
        found.update(Path(p).as_posix() for p in glob.glob(pattern, root_dir=PACKAGE))
    return found


def test_setup_cfg_lists_every_sample_data_file_as_package_data() -> None:
    data_files = {p.relative_to(PACKAGE).as_posix()
                  for p in (PACKAGE / DATA_FOLDER).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts}
    assert {f"{DATA_FOLDER}/{SOURCE_NAME}", f"{DATA_FOLDER}/{REFERENCE_NAME}",
            f"{DATA_FOLDER}/{PRETRAINED_NAME}"} <= data_files
    missing = data_files - _packaged(_package_data_globs())
    assert not missing, f"geogan/{DATA_FOLDER} files setup.cfg's package_data leaves out: " \
                        f"{sorted(missing)}"


def test_sample_data_is_not_kept_twice_in_the_repository() -> None:
    assert not (ROOT / "sample_data").exists()


def test_importlib_resources_finds_the_rasters_and_the_model() -> None:
    data = files("geogan").joinpath(DATA_FOLDER)
    for name in (SOURCE_NAME, REFERENCE_NAME, PRETRAINED_NAME,
                 str(Path(PRETRAINED_NAME).with_suffix(".json")), "README.md"):
        assert data.joinpath(name).is_file(), name
    assert default_data_dir().resolve() == Path(geogan.__file__).resolve().parent / DATA_FOLDER
    assert (default_data_dir() / PRETRAINED_NAME).stat().st_size > 1_000_000
