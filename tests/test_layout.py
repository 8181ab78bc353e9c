"""The package's layout rules, checked: rooms import downward only (no import circles, function-level
imports counted), and no module or function grows past the size a reader can hold."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "drgrpo_cli"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its body (importing ``a.b.c`` also runs ``a.b``)."""
    mods = _modules()

    def owner(name: str) -> str:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(p.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                names = [f"{base}.{a.name}" for a in node.names] if base.startswith(PKG.name) else []
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith(PKG.name)]
            for name in names:
                target = owner(name)
                parts = target.split(".")
                for i in range(2, len(parts) + 1):  # the target and the packages above it
                    t = ".".join(parts[:i])
                    if t != m and not m.startswith(t + "."):
                        graph[m].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_circle_through_a_package():
    g = {"p": set(), "p.a": {"p.b"}, "p.b": {"p"}, "q": {"p.a"}}
    g["p"] = {"p.a"}
    assert cycles(g) == [["p", "p.a", "p.b"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_rooms_import_downward():
    """The math depends on nothing in the package, the config on no task or model code (only on which rollout
    engine is usable); lower rooms never reach up into the commands, the sweep or the report."""
    graph = import_graph()
    assert graph["drgrpo_cli.objectives"] == set()
    assert not {t for t in graph["drgrpo_cli.config"] if t.startswith(("drgrpo_cli.tasks", "drgrpo_cli.policy",
                                                                        "drgrpo_cli.trainer"))}
    upper = ("drgrpo_cli.cli", "drgrpo_cli.sweep", "drgrpo_cli.report")
    for m, targets in graph.items():
        if m.startswith(("drgrpo_cli.tasks", "drgrpo_cli.rollout")) or m in (
                "drgrpo_cli.trainer", "drgrpo_cli.config", "drgrpo_cli.metrics", "drgrpo_cli.policy"):
            assert not {t for t in targets if t.startswith(upper)}, (m, targets)


def test_modules_and_functions_stay_small():
    big_modules, big_functions = [], []
    for name, p in _modules().items():
        text = p.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            big_modules.append((name, text.count("\n")))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    big_functions.append((f"{name}.{node.name}", n))
    assert big_modules == [] and big_functions == []
