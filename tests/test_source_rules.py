"""Rules over the package's source, each checked by reading it (ast), not by running it."""

from __future__ import annotations

import ast
import re
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
