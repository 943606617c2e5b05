"""The teaching layer has no import cycle, counting type-only and function-level imports (issue 13).

The scan reads every module of the package with ``ast`` and takes each import as an edge:
``import a.b`` to ``a.b``; ``from a import b`` to ``a`` and, when ``a.b`` is a module, to
``a.b`` as well (so a submodule that imports a sibling through its package depends on the
package's ``__init__``). Imports under ``if TYPE_CHECKING:`` and inside functions count too:
a cycle that only the type checker or a lazy import walks is still a cycle in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "kvmdbg"
CHECKED = "kvmdbg.teach"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_scan_sees_a_cycle_through_a_package_init():
    # the shape of the cycle this file guards against: a package's __init__ imports a submodule
    # that imports a sibling through the package
    graph = {"k.ex": {"k.ex.catalogue", "k.ex.model"}, "k.ex.catalogue": {"k.ex", "k.ex.model"}, "k.ex.model": set()}
    assert cycles(graph) == [["k.ex", "k.ex.catalogue"]]
    graph["k.ex.catalogue"] = {"k.ex.model"}
    assert cycles(graph) == []


def test_the_scan_reads_the_exercises_package():
    graph = import_graph()
    assert "kvmdbg.teach.exercises.catalogue" in graph["kvmdbg.teach.exercises"]
    assert "kvmdbg.teach.exercises.model" in graph["kvmdbg.teach.exercises.catalogue"]
    assert "kvmdbg.teach.exercises.widget" in graph["kvmdbg.teach.exercises"]  # TYPE_CHECKING and lazy


def test_no_module_of_the_teaching_layer_is_in_an_import_cycle():
    teach = [c for c in cycles(import_graph()) if any(m == CHECKED or m.startswith(CHECKED + ".") for m in c)]
    assert teach == []
