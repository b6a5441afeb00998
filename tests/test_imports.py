"""The dependency graph stays readable: no import cycles between helpdesk's modules, and an import
inside a function says why it is there."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "helpdesk"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.relative_to(PACKAGE).parts:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def top_level_imports(name: str, path: Path, known: set[str]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found.update(m for m in [base, *(f"{base}.{a.name}" for a in node.names)]
                         if m in known)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
    # The package itself only loads attributes lazily (PEP 562): importing it costs nothing.
    return found - {name, "helpdesk"}


def test_no_import_cycles():
    found = modules()
    graph = {name: top_level_imports(name, path, set(found)) for name, path in found.items()}
    cycles, state, path = [], {}, []

    def visit(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                cycles.append(" -> ".join(path[path.index(imported):] + [imported]))
            elif imported not in state:
                visit(imported)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == []


def test_every_import_inside_a_function_says_why():
    unexplained = []
    for name, path in modules().items():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if not isinstance(inner, (ast.Import, ast.ImportFrom)):
                    continue
                # Above it, past blank lines and the imports of the same block: a comment.
                above = inner.lineno - 2
                while above >= 0 and (not lines[above].strip()
                                      or lines[above].strip().startswith(("from ", "import "))):
                    above -= 1
                if not lines[above].strip().startswith("#"):
                    unexplained.append(f"{name}:{inner.lineno}: {lines[inner.lineno - 1].strip()}")
    assert unexplained == []
