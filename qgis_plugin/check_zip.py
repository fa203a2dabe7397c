"""Check a QGIS plugin zip against the rules of the QGIS plugin repository (plugins.qgis.org).

Usage: ``python qgis_plugin/check_zip.py [--strict] [dist/geogan_qgis.zip]``

The repository refuses an upload that breaks one of these rules (its validator's, plus
the layout QGIS's installer expects):

* a readable zip of at most 25 MB, without absolute paths or ``..``;
* one top-level folder, named like the plugin package (``geogan_qgis``): an ASCII letter,
  then letters, digits, ``-`` or ``_``; holding ``__init__.py`` with ``classFactory``,
  ``metadata.txt`` and ``LICENSE``;
* nothing compiled or hidden: no ``__pycache__``, ``.pyc``/``.pyo``, ``__MACOSX``,
  ``.git`` or any other name starting with a dot;
* ``metadata.txt`` with a ``[general]`` section holding name, qgisMinimumVersion,
  description, about, version, author, email, repository and tracker; a plausible
  email, http(s) addresses, an author without slashes, true/false flags;
* ``icon=`` naming a file that is in the zip.

Missing recommended metadata (homepage, tags, category) is a warning; ``--strict``
(``make qgis-plugin``) refuses it too. Prints one ``Error: ...`` line per broken rule
and exits 1, or prints the zip's name and exits 0.
"""

from __future__ import annotations

import argparse
import configparser
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

HERE = Path(__file__).resolve().parent
PACKAGE = "geogan_qgis"
DEFAULT_ZIP = HERE.parent / "dist" / f"{PACKAGE}.zip"
MAX_BYTES = 25_000_000
REQUIRED = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email",
            "repository", "tracker")
RECOMMENDED = ("homepage", "tags", "category")
URLS = ("repository", "tracker", "homepage")
BOOLEANS = ("experimental", "deprecated", "server")
FORBIDDEN_DIRS = ("__pycache__", "__MACOSX", ".git")
_PACKAGE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]+$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_VERSION_RE = re.compile(r"^\d+\.\d+(\.\d+)?$")


@dataclass
class Report:
    """What is wrong with a plugin zip: errors (refused) and warnings (recommendations)."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def problems(self, strict: bool = False) -> list[str]:
        return self.errors + (self.warnings if strict else [])


def check(path: Path, package: str = PACKAGE) -> Report:
    """Check the plugin zip at ``path``, whose one folder must be ``package``."""
    report = Report()
    path = Path(path)
    if not path.is_file():
        report.errors.append(f"{path} not found; build it with python qgis_plugin/build_zip.py")
        return report
    if path.stat().st_size > MAX_BYTES:
        report.errors.append(f"{path} is larger than the repository's {MAX_BYTES // 10**6} MB")
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                report.errors.append(f"{path}: {bad} is damaged (CRC error)")
            _check_layout(zf, package, report)
            if not report.errors:
                _check_metadata(zf, package, report)
    except (zipfile.BadZipFile, OSError) as exc:
        report.errors.append(f"{path} is not a readable zip ({exc})")
    return report


def _check_layout(zf: zipfile.ZipFile, package: str, report: Report) -> None:
    names = zf.namelist()
    if not names:
        report.errors.append("the zip is empty")
        return
    for name in names:
        parts = [p for p in name.split("/") if p]
        if name.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", name):
            report.errors.append(f"{name}: paths in the zip must be relative, without '..'")
        if any(p in FORBIDDEN_DIRS for p in parts) or name.endswith((".pyc", ".pyo")):
            report.errors.append(f"{name}: no compiled files, __pycache__, __MACOSX or .git "
                                 "in a plugin zip")
        elif any(p.startswith(".") for p in parts):
            report.errors.append(f"{name}: no hidden files or folders in a plugin zip")
    tops = sorted({name.split("/")[0] for name in names})
    if len(tops) != 1 or not any("/" in n for n in names):
        report.errors.append(f"the zip must hold one folder, {package}/, and nothing beside "
                             f"it; it holds {', '.join(tops)}")
    elif tops[0] != package:
        report.errors.append(f"the zip's folder is {tops[0]}/; it must be named like the "
                             f"plugin package, {package}/")
    if not _PACKAGE_RE.match(package):
        report.errors.append(f"plugin folder {package}: start with an ASCII letter, then "
                             "letters, digits, '-' or '_'")
    for required in ("__init__.py", "metadata.txt", "LICENSE"):
        if f"{package}/{required}" not in names:
            report.errors.append(f"{package}/{required} is missing")
    init = f"{package}/__init__.py"
    if init in names and "def classFactory(" not in zf.read(init).decode("utf-8", "replace"):
        report.errors.append(f"{init} has no classFactory(iface), which QGIS calls")


def _check_metadata(zf: zipfile.ZipFile, package: str, report: Report) -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    try:
        parser.read_string(zf.read(f"{package}/metadata.txt").decode("utf-8"))
    except (configparser.Error, UnicodeDecodeError) as exc:
        report.errors.append(f"metadata.txt cannot be read ({exc})")
        return
    if not parser.has_section("general"):
        report.errors.append("metadata.txt has no [general] section")
        return
    meta = {k: v.strip() for k, v in parser.items("general")}
    for key in REQUIRED:
        if not meta.get(key):
            report.errors.append(f"metadata.txt: {key} is required")
    for key in RECOMMENDED:
        if not meta.get(key):
            report.warnings.append(f"metadata.txt: {key} is recommended")
    email = meta.get("email", "")
    if email and not _EMAIL_RE.match(email):
        report.errors.append(f"metadata.txt: email {email!r} is not an email address")
    for key in URLS:
        url = urlparse(meta.get(key, ""))
        if meta.get(key) and (url.scheme not in ("http", "https") or not url.netloc):
            report.errors.append(f"metadata.txt: {key} {meta[key]!r} is not an http(s) address")
    if "/" in meta.get("author", ""):
        report.errors.append("metadata.txt: author cannot contain slashes")
    minimum = meta.get("qgisMinimumVersion", "")
    if minimum and not _VERSION_RE.match(minimum):
        report.errors.append(f"metadata.txt: qgisMinimumVersion {minimum!r} is not like 3.22")
    for key in BOOLEANS:
        if key in meta and meta[key].lower() not in ("true", "false", "1", "0"):
            report.errors.append(f"metadata.txt: {key} must be True or False")
    icon = meta.get("icon", "").removeprefix("./")
    if not icon:
        report.errors.append("metadata.txt: icon is required (a PNG or SVG in the plugin)")
    elif f"{package}/{icon}" not in zf.namelist():
        report.errors.append(f"metadata.txt: icon {icon} is not in the zip")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("zip", type=Path, nargs="?", default=DEFAULT_ZIP,
                        help="plugin zip to check (default: dist/geogan_qgis.zip)")
    parser.add_argument("--strict", action="store_true",
                        help="refuse missing recommended metadata too")
    args = parser.parse_args(argv)
    report = check(args.zip)
    problems = report.problems(args.strict)
    for problem in problems:
        sys.stderr.write(f"Error: {problem}\n")
    if not args.strict:
        for warning in report.warnings:
            sys.stderr.write(f"Warning: {warning}\n")
    if problems:
        return 1
    sys.stdout.write(f"{args.zip}: passes the QGIS plugin repository's checks\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
