"""Build the QGIS plugin zip for Plugins > Manage and Install Plugins > Install from ZIP.

Usage: ``python qgis_plugin/build_zip.py [-o dist/geogan_qgis.zip]``

The zip holds one folder, ``geogan_qgis/``, as QGIS expects, with geogan's torch-free
ground floor (``geogan/contract``) copied in as ``geogan_qgis/contract`` and geogan's LICENSE
(which the QGIS plugin repository requires). The plugin version
in metadata.txt is set to geogan's version so both always match. The archive
is reproducible: sorted entries with a fixed timestamp.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLUGIN = HERE / "geogan_qgis"
ROOT = HERE.parent
CONTRACT = ROOT / "geogan" / "contract"
LICENSE = ROOT / "LICENSE"
DEFAULT_OUTPUT = ROOT / "dist" / "geogan_qgis.zip"
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
_SKIP_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej", ".swp"}
_EPOCH = (2020, 1, 1, 0, 0, 0)


def geogan_version() -> str:
    """``__version__`` of geogan, read from the source without importing it."""
    text = (ROOT / "geogan" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.MULTILINE)
    if match is None:
        raise SystemExit("Error: no __version__ in geogan/__init__.py")
    return match.group(1)


def _files(folder: Path) -> list[Path]:
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_dir() or any(part in _SKIP_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if path.suffix in _SKIP_SUFFIXES:
            continue
        files.append(path)
    return files


def plugin_files() -> list[tuple[Path, str]]:
    """``(file, name in the zip)`` of everything that belongs in the zip."""
    entries = [(p, f"{PLUGIN.name}/{p.relative_to(PLUGIN).as_posix()}") for p in _files(PLUGIN)]
    entries += [(p, f"{PLUGIN.name}/contract/{p.relative_to(CONTRACT).as_posix()}")
                for p in _files(CONTRACT)]
    entries.append((LICENSE, f"{PLUGIN.name}/LICENSE"))
    return sorted(entries, key=lambda e: e[1])


def build(output: Path = DEFAULT_OUTPUT) -> Path:
    """Write the plugin zip to ``output`` (atomically) and return its path."""
    version = geogan_version()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path, arcname in plugin_files():
                data = path.read_bytes()
                if path.name == "metadata.txt":
                    data = re.sub(rb"(?m)^version=.*$", b"version=" + version.encode(), data)
                info = zipfile.ZipInfo(arcname, date_time=_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
        tmp.replace(output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"zip to write (default: {DEFAULT_OUTPUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    path = build(args.output)
    sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
