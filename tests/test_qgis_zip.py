"""The plugin zip against the QGIS plugin repository's rules (qgis_plugin/check_zip.py).

The zip ``make qgis-plugin`` builds passes; a zip that breaks one rule is refused with an
``Error:`` line that names it. No QGIS needed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = ROOT / "qgis_plugin"
sys.path.insert(0, str(PLUGIN_DIR))

import build_zip  # noqa: E402
import check_zip  # noqa: E402


@pytest.fixture(scope="module")
def good_zip(tmp_path_factory) -> Path:
    return build_zip.build(tmp_path_factory.mktemp("zip") / "geogan_qgis.zip")


def run_checker(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(PLUGIN_DIR / "check_zip.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def test_the_built_zip_passes_every_check(good_zip):
    report = check_zip.check(good_zip)
    assert (report.errors, report.warnings) == ([], [])
    proc = run_checker("--strict", good_zip)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and "passes" in proc.stdout
    with zipfile.ZipFile(good_zip) as zf:
        names = zf.namelist()
        assert (ROOT / "LICENSE").read_bytes() == zf.read("geogan_qgis/LICENSE")
    assert {n.split("/")[0] for n in names} == {"geogan_qgis"}


def test_make_qgis_plugin_builds_and_checks_the_zip():
    """The Makefile target runs the checker, strictly, on the zip it has just built."""
    make = (ROOT / "Makefile").read_text()
    recipe = make.split("\nqgis-plugin:")[1].split("\n\n")[0]
    lines = [line.strip() for line in recipe.splitlines() if line.startswith("\t")]
    assert lines == ["$(PYTHON) qgis_plugin/build_zip.py",
                     "$(PYTHON) qgis_plugin/check_zip.py --strict dist/geogan_qgis.zip"]


Edit = Callable[[str, bytes], "list[tuple[str, bytes]]"]


def rewrite(good: Path, out: Path, edit: Edit, extra: tuple[tuple[str, bytes], ...] = ()) -> Path:
    """A copy of ``good`` with each entry replaced by ``edit(name, data)`` (a list: none, one,
    several entries), plus ``extra`` entries."""
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            for new_name, data in edit(name, src.read(name)):
                dst.writestr(new_name, data)
        for name, data in extra:
            dst.writestr(name, data)
    return out


def keep(name: str, data: bytes) -> list[tuple[str, bytes]]:
    return [(name, data)]


def drop(*names: str) -> Edit:
    return lambda name, data: [] if name in names else [(name, data)]


def metadata(pattern: str, replacement: str) -> Edit:
    """Edit metadata.txt with a regular expression (multiline)."""

    def edit(name: str, data: bytes) -> list[tuple[str, bytes]]:
        if name == "geogan_qgis/metadata.txt":
            text, count = re.subn(pattern, replacement, data.decode(), flags=re.MULTILINE)
            assert count, pattern
            data = text.encode()
        return [(name, data)]

    return edit


def rename_folder(name: str, data: bytes) -> list[tuple[str, bytes]]:
    return [(name.replace("geogan_qgis/", "geogan-plugin/", 1), data)]


BROKEN: dict[str, tuple[Edit, tuple[tuple[str, bytes], ...], str]] = {
    "pycache": (keep, (("geogan_qgis/__pycache__/jobs.cpython-311.pyc", b"\0"),),
                "no compiled files, __pycache__"),
    "pyc": (keep, (("geogan_qgis/jobs.pyc", b"\0"),), "no compiled files"),
    "hidden file": (keep, (("geogan_qgis/.DS_Store", b"x"),), "no hidden files"),
    "hidden folder": (keep, (("geogan_qgis/.idea/x.xml", b"x"),), "no hidden files"),
    "git folder": (keep, (("geogan_qgis/.git/HEAD", b"x"),), ".git"),
    "two folders": (keep, (("other/readme.txt", b"x"),),
                    "must hold one folder, geogan_qgis/, and nothing beside it"),
    "file beside": (keep, (("README.txt", b"x"),), "must hold one folder"),
    "folder name": (rename_folder, (), "it must be named like the plugin package"),
    "parent path": (keep, (("geogan_qgis/../evil.py", b"x"),), "without '..'"),
    "absolute path": (keep, (("/etc/evil.py", b"x"),), "paths in the zip must be relative"),
    "no LICENSE": (drop("geogan_qgis/LICENSE"), (), "geogan_qgis/LICENSE is missing"),
    "no __init__": (drop("geogan_qgis/__init__.py"), (), "geogan_qgis/__init__.py is missing"),
    "no metadata": (drop("geogan_qgis/metadata.txt"), (),
                    "geogan_qgis/metadata.txt is missing"),
    "no classFactory": (lambda n, d: [(n, d.replace(b"def classFactory(", b"def factory("))],
                        (), "no classFactory"),
    "no icon line": (metadata(r"^icon=.*\n", ""), (), "icon is required"),
    "icon missing": (drop("geogan_qgis/icon.svg"), (), "icon icon.svg is not in the zip"),
    "bad email": (metadata(r"^email=.*$", "email=geogan at example"), (),
                  "is not an email address"),
    "bad url": (metadata(r"^repository=.*$", "repository=github.com/geogan"), (),
                "repository 'github.com/geogan' is not an http(s) address"),
    "slash in author": (metadata(r"^author=.*$", "author=a/b"), (),
                        "author cannot contain slashes"),
    "bad minimum version": (metadata(r"^qgisMinimumVersion=.*$", "qgisMinimumVersion=latest"),
                            (), "qgisMinimumVersion 'latest' is not like 3.22"),
    "bad flag": (metadata(r"^experimental=.*$", "experimental=maybe"), (),
                 "experimental must be True or False"),
    "no general": (metadata(r"^\[general\]$", "[plugin]"), (), "no [general] section"),
}
BROKEN.update({f"no {key}": (metadata(rf"^{key}=.*\n", ""), (), f"metadata.txt: {key} is "
                             "required") for key in check_zip.REQUIRED})


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_zip_breaking_a_rule_is_refused(good_zip, tmp_path, case):
    edit, extra, message = BROKEN[case]
    bad = rewrite(good_zip, tmp_path / "geogan_qgis.zip", edit, extra)
    errors = check_zip.check(bad).errors
    assert any(message in e for e in errors), errors
    proc = run_checker(bad)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert any(line.startswith("Error: ") and message in line
               for line in proc.stderr.splitlines()), proc.stderr


def test_missing_recommended_metadata_is_refused_only_when_strict(good_zip, tmp_path):
    bad = rewrite(good_zip, tmp_path / "geogan_qgis.zip", metadata(r"^homepage=.*\n", ""))
    report = check_zip.check(bad)
    assert report.errors == [] and report.warnings == ["metadata.txt: homepage is recommended"]
    proc = run_checker(bad)
    assert proc.returncode == 0 and "Warning: metadata.txt: homepage is recommended" in \
        proc.stderr
    proc = run_checker("--strict", bad)
    assert proc.returncode == 1
    assert proc.stderr == "Error: metadata.txt: homepage is recommended\n"


def test_not_a_zip_or_no_zip(tmp_path):
    junk = tmp_path / "geogan_qgis.zip"
    junk.write_bytes(b"not a zip")
    proc = run_checker(junk)
    assert proc.returncode == 1 and proc.stderr.startswith(f"Error: {junk} is not a readable zip")
    assert "Traceback" not in proc.stderr
    proc = run_checker(tmp_path / "missing.zip")
    assert proc.returncode == 1 and "missing.zip not found" in proc.stderr
