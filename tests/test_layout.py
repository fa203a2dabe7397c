"""Layout rules for geogan's source (issue #23), checked by reading the code with :mod:`ast`.

* no import cycle among the modules of ``geogan`` and of the QGIS plugin ``geogan_qgis``,
  counting imports made inside functions (lazy imports) as well as those at the top;
* no module over :data:`MAX_MODULE_LINES` lines;
* no function or method over :data:`MAX_FUNCTION_LINES` lines (from its ``def`` line to
  its last line, decorators left out);
* ``geogan/contract`` imports only the standard library (and itself, relatively), so the
  plugin can vendor it and QGIS starts without torch or geogan.

How imports become edges of the module graph (a module is a ``.py`` file; a package is its
``__init__.py``):

* ``import a.b.c`` is an edge to ``a.b.c``; ``from a.b import c`` is an edge to ``a.b.c``
  when ``c`` is a submodule, otherwise to the package ``a.b`` (its ``__init__``), which is
  where the name comes from. Relative imports (``from . import x``, ``from ..x import y``)
  are resolved the same way against the importing module's package.
* The parent packages Python loads on the way to a submodule are not edges: otherwise every
  submodule of a package whose ``__init__`` re-exports it would be a "cycle". So
  ``pkg/__init__.py`` importing ``pkg/mod.py`` is normal, and it becomes a cycle only when
  ``pkg/mod.py`` itself takes a name from its package (``from . import helper``,
  ``from geogan.pkg import helper``) or from a module that leads back to it.
* Imports under ``if TYPE_CHECKING:`` never run and are not edges; dynamic imports
  (``importlib.import_module``) cannot be read and are not edges.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: (package name, its folder) for every tree the rules cover.
PACKAGES: tuple[tuple[str, Path], ...] = (
    ("geogan", ROOT / "geogan"),
    ("geogan_qgis", ROOT / "qgis_plugin" / "geogan_qgis"),
)
CONTRACT = "geogan.contract"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80

#: Offenders that other branches are fixing at the time of writing (issue #23). THIS LIST
#: MUST BE EMPTY: it exists only so this test can land before those fixes; delete each entry
#: when its fix is merged (test_known_offenders_are_still_offenders says which ones to drop).
#: Keys are as :func:`offences` spells them.
KNOWN_OFFENDERS: frozenset[str] = frozenset()


@dataclass
class Module:
    """One source file: its dotted name, whether it is a package ``__init__``, and its path."""

    name: str
    path: Path
    is_package: bool
    tree: ast.Module = field(repr=False)
    lines: int = 0


def discover(packages: tuple[tuple[str, Path], ...]) -> dict[str, Module]:
    """Every ``.py`` file under each package folder, by dotted module name."""
    found: dict[str, Module] = {}
    for package, folder in packages:
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            name = ".".join([package, *parts])
            text = path.read_text(encoding="utf-8")
            tree = ast.parse(text, str(path))
            found[name] = Module(name, path, is_package, tree, len(text.splitlines()))
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in ``node``, at any depth (functions, classes, try blocks),
    except under ``if TYPE_CHECKING:`` (its ``else`` branch does run)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.orelse:
                yield from _import_nodes(ast.Module(body=[stmt], type_ignores=[]))
        else:
            yield from _import_nodes(child)


def _resolve_base(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module ``node`` imports from (``from <this> import ...``)."""
    if not node.level:
        return node.module or ""
    package = module.name.split(".")
    if not module.is_package:
        package = package[:-1]
    package = package[: len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join([*package, node.module] if node.module else package)


def imports_of(module: Module, known: dict[str, Module]) -> list[tuple[str, int]]:
    """(imported module, line) for each import in ``module``; names not in ``known`` stay as
    written (standard library, third party), so :func:`stdlib_problems` can judge them."""
    edges: list[tuple[str, int]] = []
    for node in _import_nodes(module.tree):
        if isinstance(node, ast.Import):
            edges += [(alias.name, node.lineno) for alias in node.names]
            continue
        base = _resolve_base(module, node)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            edges.append((sub if sub in known else base, node.lineno))
    return edges


def import_graph(modules: dict[str, Module]) -> dict[str, dict[str, int]]:
    """module -> {imported module of the tree: first line importing it}."""
    graph: dict[str, dict[str, int]] = {}
    for name, module in modules.items():
        targets: dict[str, int] = {}
        for target, line in imports_of(module, modules):
            if target in modules:
                targets.setdefault(target, line)
        graph[name] = targets
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's components with more than one module, or one module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph[node]:
                components.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for node in sorted(graph):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(components)


def cycle_path(graph: dict[str, dict[str, int]], component: list[str]) -> list[str]:
    """A shortest cycle through the component's first module, as the modules it passes."""
    start, members = component[0], set(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node]):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if nxt in members and nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start, start]


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.AST]]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield f"{prefix}{node.name}", node
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def stdlib_problems(modules: dict[str, Module], package: str, root: Path = ROOT) -> dict[str, str]:
    """key -> description for each import in ``package`` that is neither the standard
    library nor ``package`` itself."""
    allowed = set(sys.stdlib_module_names) | {"__future__"}
    problems: dict[str, str] = {}
    for name, module in modules.items():
        if name != package and not name.startswith(package + "."):
            continue
        for target, line in imports_of(module, modules):
            if target == package or target.startswith(package + "."):
                continue
            if target.split(".")[0] not in allowed:
                where = f"{_rel(module.path, root)}:{line}"
                problems[f"import: {where}"] = f"{where} imports {target}"
    return problems


def offences(
    packages: tuple[tuple[str, Path], ...] = PACKAGES,
    contract: str = CONTRACT,
    root: Path = ROOT,
) -> dict[str, str]:
    """key -> one line saying what is wrong, for every broken rule."""
    modules = discover(packages)
    graph = import_graph(modules)
    found: dict[str, str] = {}
    for component in strongly_connected(graph):
        path = cycle_path(graph, component)
        steps = " -> ".join(
            f"{a} ({_rel(modules[a].path, root)}:{graph[a][b]})"
            for a, b in zip(path, path[1:], strict=False)
        )
        found[f"cycle: {', '.join(component)}"] = f"import cycle: {steps} -> {path[-1]}"
    for module in modules.values():
        rel = _rel(module.path, root)
        if module.lines > MAX_MODULE_LINES:
            found[f"module: {rel}"] = f"{rel}: {module.lines} lines (max {MAX_MODULE_LINES})"
        for qualname, node in _functions(module.tree):
            length = node.end_lineno - node.lineno + 1  # type: ignore[attr-defined, operator]
            if length > MAX_FUNCTION_LINES:
                found[f"function: {rel}:{qualname}"] = (
                    f"{rel}:{node.lineno}: {qualname}: {length} lines (max {MAX_FUNCTION_LINES})"  # type: ignore[attr-defined]
                )
    for key, problem in stdlib_problems(modules, contract, root).items():
        found[key] = f"{problem}: {contract} may import only the standard library"
    return found


# -- the rules over the real tree ------------------------------------------------------------


def test_layout_rules_hold() -> None:
    found = offences()
    new = sorted(line for key, line in found.items() if key not in KNOWN_OFFENDERS)
    assert not new, "layout rules broken (issue #23):\n" + "\n".join(new)


def test_known_offenders_are_still_offenders() -> None:
    stale = sorted(KNOWN_OFFENDERS - set(offences()))
    assert not stale, (
        "fixed: remove from KNOWN_OFFENDERS in tests/test_layout.py:\n" + "\n".join(stale)
    )


def test_every_package_is_read() -> None:
    modules = discover(PACKAGES)
    for must in ("geogan.mosaic", "geogan.contract.options", "geogan.fileio",
                 "geogan_qgis.backend"):
        assert must in modules
    graph = import_graph(modules)
    # Lazy (function-level) imports are edges: jobs.py imports geogan.translate inside a method.
    assert "geogan.translate" in graph["geogan_qgis.jobs"]


# -- the checker itself, on small made-up trees ------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> tuple[tuple[str, Path], ...]:
    for rel, text in files.items():
        path = tmp_path / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return (("pkg", tmp_path / "pkg"),)


def _check(tmp_path: Path, files: dict[str, str]) -> dict[str, str]:
    return offences(_tree(tmp_path, files), contract="pkg.contract", root=tmp_path)


def test_lazy_relative_import_cycle_is_found(tmp_path: Path) -> None:
    found = _check(
        tmp_path,
        {
            "__init__.py": "",
            "io/__init__.py": "",
            "io/a.py": "from .b import g\n",
            "io/b.py": "def g():\n    from ..io import a\n    return a\n",
        },
    )
    assert list(found) == ["cycle: pkg.io.a, pkg.io.b"]
    line = found["cycle: pkg.io.a, pkg.io.b"]
    assert "pkg.io.a (pkg/io/a.py:1) -> pkg.io.b (pkg/io/b.py:2) -> pkg.io.a" in line


def test_package_init_importing_its_submodules_is_not_a_cycle(tmp_path: Path) -> None:
    files = {
        "__init__.py": "from .sub import thing\n",
        "sub/__init__.py": "from .mod import thing\nHELPER = 1\n",
        "sub/mod.py": "import pkg.sub.other\nthing = 1\n",
        "sub/other.py": "import os\n",
    }
    assert _check(tmp_path, files) == {}


def test_submodule_taking_a_name_from_its_package_is_a_cycle(tmp_path: Path) -> None:
    files = {
        "__init__.py": "",
        "sub/__init__.py": "from .mod import thing\nHELPER = 1\n",
        "sub/mod.py": "def thing():\n    from . import HELPER\n    return HELPER\n",
    }
    assert list(_check(tmp_path, files)) == ["cycle: pkg.sub, pkg.sub.mod"]


def test_type_checking_imports_are_not_edges(tmp_path: Path) -> None:
    files = {
        "__init__.py": "",
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n",
        "b.py": "from pkg import a\nclass B: ...\n",
    }
    assert _check(tmp_path, files) == {}


def test_long_module_and_function_are_named_with_their_length(tmp_path: Path) -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    files = {
        "__init__.py": "",
        "short.py": "class C:\n    def ok(self):\n" + body[: body.rindex("\n")] + "\n",
        "long.py": "class C:\n    def run(self):\n" + body + "\n" + "#\n" * MAX_MODULE_LINES,
    }
    found = _check(tmp_path, files)
    assert sorted(found) == ["function: pkg/long.py:C.run", "module: pkg/long.py"]
    assert found["function: pkg/long.py:C.run"] == (
        f"pkg/long.py:2: C.run: {MAX_FUNCTION_LINES + 1} lines (max 80)"
    )
    assert found["module: pkg/long.py"] == (
        f"pkg/long.py: {MAX_MODULE_LINES + MAX_FUNCTION_LINES + 2} lines (max 450)"
    )


@pytest.mark.parametrize(
    ("line", "bad"),
    [
        ("import numpy\n", True),
        ("from pkg.io import x\n", True),
        ("def f():\n    import torch\n", True),
        ("import json, re\nfrom . import names\nfrom .names import N\n", False),
    ],
)
def test_contract_imports_only_the_standard_library(tmp_path: Path, line: str, bad: bool) -> None:
    files = {
        "__init__.py": "",
        "io.py": "x = 1\n",
        "contract/__init__.py": "",
        "contract/names.py": "N = 1\n",
        "contract/options.py": line,
    }
    found = _check(tmp_path, files)
    assert bool(found) is bad
    if bad:
        (key,) = found
        assert key.startswith("import: pkg/contract/options.py:")
        assert "may import only the standard library" in found[key]
