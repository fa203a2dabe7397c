"""The documentation's generated reference pages list every option of geogan's option table,
and the README's links lead to pages that exist.

The generator (docs/gen_reference.py) is run here and its Markdown parsed; `make docs`
builds the site itself.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from geogan.contract import options as spec

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _generator() -> ModuleType:
    loaded = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    sys.modules[loaded.name] = module  # its dataclasses look their module up there
    loaded.loader.exec_module(module)
    return module


gen = _generator()


def _sections(markdown: str, prefix: str) -> dict[str, str]:
    """``## <prefix>NAME ...`` sections of a page, by NAME."""
    parts = re.split(r"^## ", markdown, flags=re.MULTILINE)[1:]
    return {p.split("\n", 1)[0][len(prefix):].split(" ")[0]: p for p in parts
            if p.startswith(prefix)}


def _rows(section: str) -> list[list[str]]:
    """The cells of every table row of a section (header and rule left out)."""
    rows = []
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return [r for r in rows if r[0] not in ("option", "parameter", "output")]


def _flags(cell: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", cell))


def test_cli_reference_lists_every_option_of_every_command() -> None:
    sections = _sections(gen.cli_reference(), "geogan ")
    for name, command in spec.COMMANDS.items():
        assert name in sections, f"no section for geogan {name}"
        rows = {flag: row for row in _rows(sections[name]) for flag in _flags(row[0])}
        for opt in command.values():
            assert opt.cli_flag in rows, f"geogan {name} {opt.cli_flag} missing"
            row = rows[opt.cli_flag]
            if opt.short:
                assert opt.short in _flags(row[0])
            if opt.kind != "flag" and opt.default is not None:
                assert row[2] == f"`{opt.default}`", (name, opt.name, row)
            for choice in opt.choices:
                assert f"`{choice}`" in row[1], (name, opt.name, choice)
            assert gen.cell(opt.help) in row[3], (name, opt.name)


def test_cli_reference_lists_the_options_commands_add_themselves() -> None:
    sections = _sections(gen.cli_reference(), "geogan ")
    commands = gen.cli_commands()
    assert {"info", "import", "demo"} <= set(commands) <= set(sections)
    for name, command in commands.items():
        listed = {f for row in _rows(sections[name]) for f in _flags(row[0])}
        for param in command.params:
            if hasattr(param, "opts") and param.param_type_name == "option":
                assert set(param.opts) <= listed, (name, param.opts)
    assert "`--co`" in sections["translate"] and "`-o`, `--output`" in sections["tile"]


def test_an_option_added_to_the_table_appears_in_the_reference(monkeypatch) -> None:
    extra = spec.Option("brand_new", "int", 7, "An option only the table knows.")
    tile = spec.Command("tile", *spec.TILE.values(), extra)
    monkeypatch.setitem(spec.COMMANDS, "tile", tile)
    rows = _rows(_sections(gen.cli_reference(), "geogan ")["tile"])
    [row] = [r for r in rows if "`--brand-new`" in r[0]]
    assert row[2] == "`7`" and "An option only the table knows." in row[3]


def _shown(module: str) -> tuple[str, ...]:
    """``SHOWN`` of a QGIS algorithm module, read from its source (QGIS need not be there)."""
    tree = ast.parse((ROOT / "qgis_plugin" / "geogan_qgis" / f"{module}.py").read_text())
    [value] = [n.value for n in tree.body if isinstance(n, ast.Assign)
               and any(getattr(t, "id", "") == "SHOWN" for t in n.targets)]
    return tuple(ast.literal_eval(value))


@pytest.mark.parametrize("module, command, algorithm", [
    ("translate_algorithm", spec.TRANSLATE, "Translate raster"),
    ("tile_algorithm", spec.TILE, "Tile raster"),
    ("train_algorithm", spec.TRAIN, "Train"),
])
def test_qgis_reference_lists_every_parameter_the_dialog_shows(module: str,
                                                               command: spec.Command,
                                                               algorithm: str) -> None:
    sections = {s.split(" (`", 1)[0]: s
                for s in re.split(r"^## ", gen.qgis_reference(), flags=re.MULTILINE)[1:]}
    rows = {row[0]: row for row in _rows(sections[algorithm])}
    shown = _shown(module)
    assert shown
    for name in shown:
        opt = command[name]
        row = rows[f"`{opt.qgis_key}`"]
        assert row[1] == opt.label and row[-1] == f"`{opt.cli_flag}`", row
        for choice in opt.choices:
            assert f"`{choice}`" in row[4]
    assert "`OUTPUT`" in rows and {"`INPUT`", "`A_RASTERS`"} & rows.keys()


def test_generator_writes_the_reference_pages(tmp_path: Path) -> None:
    assert gen.main(["--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["cli.md", "qgis.md", "sample-data.md"]
    sample = (tmp_path / "sample-data.md").read_text()
    assert "naip_2009.tif" in sample and "## The pretrained model" in sample


def test_readme_is_a_landing_page_whose_links_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    for must in ("make demo", "make test", ".venv/bin/geogan", "source .venv/bin/activate",
                 "make docs"):
        assert must in readme, must
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if "://" not in link]
    assert len([x for x in local if x.startswith("docs/") and x.endswith(".md")]) >= 10
    for link in local:
        assert (ROOT / link).exists(), link


def test_every_docs_page_is_in_the_site_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")
             if p.parent.name != "reference"}
    pages |= {f"reference/{name}" for name in gen.PAGES}
    for page in pages:
        assert re.search(rf":\s+{re.escape(page)}\s*$", nav, flags=re.MULTILINE), page
