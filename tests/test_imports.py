"""The package's layers depend only downward, with no import cycle.

Every ``import`` in every module counts, wherever it is: at the top, inside a function
(a lazy import), or under ``if TYPE_CHECKING:`` (a type-only import). A cycle of any of
these is a design smell the type checker and the reader both pay for, so none is allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "kvmdbg"

# The layers, lowest first (STYLE.md): a module may import only from its own layer or below.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("kvmdbg.errors", "kvmdbg.versioned", "kvmdbg.arch"),
    ("kvmdbg.cpu",),
    ("kvmdbg.kvm",),
    ("kvmdbg.patches",),
    ("kvmdbg.trace", "kvmdbg.run", "kvmdbg.machine", "kvmdbg.frames", "kvmdbg.recorder", "kvmdbg.userspace",
     "kvmdbg.stepper", "kvmdbg.guest", "kvmdbg.core"),
    ("kvmdbg.teach", "kvmdbg.cli", "kvmdbg.servers", "kvmdbg.__main__", "kvmdbg"),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """The kvmdbg modules ``name`` imports, anywhere in its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # "from kvmdbg.patches import p1" imports the module kvmdbg.patches.p1.
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in MODULES and t != name}
    return found


GRAPH: dict[str, set[str]] = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> int:
    best = -1, -1
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[1]:
                best = rank, len(prefix)
    return best[0]


def _cycles() -> list[list[str]]:
    """Every elementary cycle's strongly connected component (Tarjan), as sorted lists."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    return out


def test_the_scan_sees_the_package() -> None:
    assert "kvmdbg.kvm.runtime" in MODULES and "kvmdbg.patches.p2" in MODULES
    assert "kvmdbg.kvm.definition" in GRAPH["kvmdbg.patches.p2"]  # a plain top-level import
    assert "kvmdbg.patches.p1" in GRAPH["kvmdbg.patches.p2"]  # "from kvmdbg.patches.p1 import ..."


def test_the_scan_counts_type_only_and_lazy_imports(tmp_path: Path) -> None:
    src = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from kvmdbg.machine import Machine\n"
           "def f():\n    import kvmdbg.trace\n")
    fake = ROOT / "kvm" / "_scan_probe.py"
    MODULES["kvmdbg.kvm._scan_probe"] = fake
    try:
        tmp = tmp_path / "probe.py"
        tmp.write_text(src, encoding="utf-8")
        assert _imports("kvmdbg.kvm._scan_probe", tmp) == {"kvmdbg.machine", "kvmdbg.trace"}
    finally:
        del MODULES["kvmdbg.kvm._scan_probe"]


def test_no_import_cycle() -> None:
    cycles = _cycles()
    assert not cycles, "import cycles (counting lazy and TYPE_CHECKING imports):\n  " + "\n  ".join(
        " <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports_only_its_layer_or_below(module: str) -> None:
    rank = _layer(module)
    assert rank >= 0, f"{module} is in no layer of LAYERS: add it where it belongs"
    upward = sorted(t for t in GRAPH[module] if _layer(t) > rank)
    assert not upward, f"{module} (layer {rank}) imports from a higher layer: {', '.join(upward)}"
