"""The generator's modules import one way (no cycles) and only at their top: what a module
needs is visible in its first lines."""

from __future__ import annotations

import ast

from conftest import REPO

MODULES = {p.stem: ast.parse(p.read_text()) for p in (REPO / "generator").glob("*.py")}


def generator_imports(tree: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("generator"):
            if node.module == "generator":
                found |= {alias.name for alias in node.names if alias.name in MODULES}
            else:
                found.add(node.module.split(".")[1])
    return found


def test_no_import_cycles():
    graph = {name: generator_imports(tree) & set(MODULES) for name, tree in MODULES.items()}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        for dep in sorted(graph[name]):
            assert dep not in path, f"import cycle: {' -> '.join(path[path.index(dep):] + [dep])}"
            if dep not in done:
                visit(dep, path + [dep])
        done.add(name)

    for name in sorted(graph):
        visit(name, [name])


def test_every_import_is_at_the_top_of_its_module():
    late = []
    for name, tree in MODULES.items():
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                late.append(f"generator/{name}.py:{node.lineno}")
    assert not late, f"imports inside functions or blocks: {late}"
