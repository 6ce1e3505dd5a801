"""Rules over the package's source, each checked by reading it (ast), not by running it."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from mlops_nb.api import API
from mlops_nb.notebook.frames import _Paging

PACKAGE = Path(__file__).resolve().parent.parent / "mlops_nb"
PAGING_CODE = {"notebook/frames.py"}  # list_all and list_all_json: the one place that follows page tokens
# A first page is all these need: whether there is any project at all (seeding an empty sandbox).
ONE_PAGE_IS_ENOUGH = {("sandbox/demo.py", "list_projects"), ("sandbox/scale.py", "list_projects")}


def _modules() -> dict[str, ast.Module]:
    return {path.relative_to(PACKAGE).as_posix(): ast.parse(path.read_text(), str(path))
            for path in sorted(PACKAGE.rglob("*.py"))}


def test_paged_lists_are_read_through_the_paging_code() -> None:
    """Calling a paged list method returns one page; code that reads it as the whole list misses the rest
    (with 101 projects, a name in the 101st was "not found"). Outside the paging code, such methods are
    handed to list_all / list_all_json, never called."""
    paged = {m.python for m in API.methods if m.is_list and _Paging.of(m).style != "none"}
    assert {"list_projects", "list_log_entries", "list_project_deployments"} <= paged
    calls = [f"{module}:{node.lineno} {node.func.attr}"
             for module, tree in _modules().items() if module not in PAGING_CODE
             for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in paged
             and (module, node.func.attr) not in ONE_PAGE_IS_ENOUGH]
    assert calls == [], "read these through mlops_nb.list_all (every page) instead"


def test_private_module_level_names_are_used() -> None:
    """A module-level ``_name`` nothing refers to is dead code (such as a table copied from elsewhere)."""
    modules = _modules()
    text = "\n".join(path.read_text() for path in PACKAGE.rglob("*.py"))
    unused = []
    for module, tree in modules.items():
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names = [node.target.id]
            else:
                names = []
            unused += [f"{module}: {n}" for n in names if n.startswith("_") and not n.startswith("__")
                       and len(re.findall(rf"\b{re.escape(n)}\b", text)) < 2]
    assert unused == []


def _run_time_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:`` (imports for type checkers only)."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
            yield from (n for orelse in child.orelse for n in [orelse, *_run_time_nodes(orelse)])
            continue
        yield child
        yield from _run_time_nodes(child)


def _imports(module: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The package's modules ``module`` imports when it runs, at its top or inside functions alike."""
    package = module.rsplit(".", 1)[0]
    found = set()
    for node in _run_time_nodes(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if not node.level else f"{package.rsplit('.', node.level - 1)[0]}.{node.module}"
            # "from package import module" imports the module; "from module import name", the module.
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names}
    return {name for name in found if name in known and name != module}


def test_no_circle_of_imports() -> None:
    """Arrows point one way (ARCHITECTURE.md): no module reaches itself through the package's imports."""
    names = {f"mlops_nb.{path.removesuffix('.py').replace('/', '.')}".removesuffix(".__init__"): tree
             for path, tree in _modules().items()}
    graph = {name: _imports(name, tree, set(names)) for name, tree in names.items()}
    circles = []
    for start in sorted(graph):
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    circles.append(" -> ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert circles == [], "\n".join(circles)
