"""The import graph of src/edgeport: no circles between modules, and none between packages but one.

Every import counts, the ones inside functions too (a lazy import is still a dependency).  Packages
are the folders under edgeport/ plus each top-level module.  The one documented upward import is
``Bundle.runner``'s lazy import of :mod:`edgeport.runtime.registry` (a bundle hands out runners).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "edgeport"
ALLOWED_UPWARD = {("edgeport.bundle", "edgeport.runtime.registry")}


def modules(root: Path) -> dict[str, Path]:
    out = {}
    for p in root.rglob("*.py"):
        parts = list(p.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _targets(name: str, node, is_pkg: bool, mods: dict, top: str) -> list[str]:
    if isinstance(node, ast.Import):
        found = [a.name for a in node.names]
    else:
        if node.level:
            base = name.split(".")[: None if is_pkg else -1]
            base = base[: len(base) - (node.level - 1)]
            mod = ".".join(base + ([node.module] if node.module else []))
        else:
            mod = node.module or ""
        found = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
    out = []
    for t in found:
        if t != top and not t.startswith(top + "."):
            continue
        while t not in mods and "." in t:
            t = t.rsplit(".", 1)[0]
        if t in mods and t != name:
            out.append(t)
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the modules of the same package it imports (anywhere in its body)."""
    mods = modules(root)
    graph = {m: set() for m in mods}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[name].update(_targets(name, node, path.name == "__init__.py", mods, root.name))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def package_of(module: str, root: Path) -> str:
    parts = module.split(".")
    if len(parts) > 1 and (root / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


def package_graph(graph: dict[str, set[str]], root: Path, allowed=frozenset()) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a, targets in graph.items():
        pa = package_of(a, root)
        out.setdefault(pa, set())
        for b in targets:
            pb = package_of(b, root)
            if pa != pb and (pa, b) not in allowed:
                out[pa].add(pb)
    return out


def test_no_module_imports_in_a_circle():
    graph = import_graph(SRC)
    assert len(graph) > 100  # the whole package was read
    assert cycles(graph) == []


def test_packages_form_floors_with_one_documented_exception():
    graph = import_graph(SRC)
    for a, b in ALLOWED_UPWARD:  # the exception is real (else drop it from the list)
        assert b in graph[a]
    assert cycles(package_graph(graph, SRC, ALLOWED_UPWARD)) == []
    # without the exception, bundle and runtime are one circle: the check sees lazy imports
    assert cycles(package_graph(graph, SRC)) == [["edgeport.bundle", "edgeport.runtime"]]


def test_the_checker_finds_a_planted_circle(tmp_path):
    pkg = tmp_path / "edgeport"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("def f():\n    from ..high import b\n")
    (pkg / "high.py").write_text("from .low.a import f\nimport edgeport.low\n")
    graph = import_graph(pkg)
    assert graph["edgeport.high"] == {"edgeport.low.a", "edgeport.low"}
    assert cycles(graph) == [["edgeport.high", "edgeport.low.a"]]
    assert cycles(package_graph(graph, pkg)) == [["edgeport.high", "edgeport.low"]]
