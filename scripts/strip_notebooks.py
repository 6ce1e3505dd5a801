#!/usr/bin/env python3
"""Strip what running a notebook leaves behind, so notebooks are committed clean.

Removes from every code cell its outputs and execution count, from every cell the
run-time metadata Jupyter tools record (``execution`` timings, ``collapsed``,
``scrolled``), and from the notebook the saved widget state (``metadata.widgets``),
which can hold whatever a widget showed, including values typed into it.

    python scripts/strip_notebooks.py              # strip notebooks/*.ipynb in place
    python scripts/strip_notebooks.py a.ipynb ...  # strip these
    python scripts/strip_notebooks.py --check      # list the notebooks that need it; exit 1 if any

``--check`` judges what is committed: a notebook git tracks is checked as git's index holds it (what
the next commit takes), so a copy a person ran and saved in place does not fail it; an untracked
notebook is checked as it is on disk.

Only the standard library: it runs before anything is installed (e.g. as a pre-commit hook).
Files are written as nbformat writes them (sorted keys, one-space indent, UTF-8, trailing
newline), so stripping a notebook Jupyter saved changes only what is stripped.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIRECTORY = ROOT / "notebooks"

# Cell metadata written by running or viewing a notebook, not by its author.
RUNTIME_CELL_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")
RUNTIME_NOTEBOOK_METADATA = ("widgets",)


def strip(notebook: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``notebook`` (nbformat 4 JSON) without outputs, execution counts and run-time metadata."""
    clean = copy.deepcopy(notebook)
    metadata = clean.get("metadata", {})
    for key in RUNTIME_NOTEBOOK_METADATA:
        metadata.pop(key, None)
    for cell in clean.get("cells", []):
        cell_metadata = cell.get("metadata", {})
        for key in RUNTIME_CELL_METADATA:
            cell_metadata.pop(key, None)
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return clean


def serialize(notebook: dict[str, Any]) -> str:
    return json.dumps(notebook, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def problems(notebook: dict[str, Any]) -> list[str]:
    """What stripping would remove, in words (empty when the notebook is clean)."""
    found = []
    cells = notebook.get("cells", [])
    outputs = sum(1 for c in cells if c.get("cell_type") == "code" and c.get("outputs"))
    counts = sum(1 for c in cells if c.get("cell_type") == "code" and c.get("execution_count") is not None)
    metadata = sum(1 for c in cells if any(k in c.get("metadata", {}) for k in RUNTIME_CELL_METADATA))
    if outputs:
        found.append(f"{outputs} cell(s) with outputs")
    if counts:
        found.append(f"{counts} cell(s) with execution counts")
    if metadata:
        found.append(f"{metadata} cell(s) with run-time metadata")
    if any(k in notebook.get("metadata", {}) for k in RUNTIME_NOTEBOOK_METADATA):
        found.append("saved widget state")
    return found


def committed_text(path: Path) -> str:
    """``path``'s text as git's index holds it, or as it is on disk when git does not track it."""
    try:
        shown = subprocess.run(["git", "-C", str(path.parent.resolve()), "show", f":./{path.name}"],
                               capture_output=True, timeout=60)
    except OSError:  # no git here
        return path.read_text(encoding="utf-8")
    return shown.stdout.decode("utf-8") if shown.returncode == 0 else path.read_text(encoding="utf-8")


def notebook_paths(arguments: Sequence[str]) -> list[Path]:
    if arguments:
        return [Path(a) for a in arguments]
    return sorted(p for p in DEFAULT_DIRECTORY.glob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to strip (default: notebooks/*.ipynb)")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; list the notebooks whose committed (staged) version needs "
                             "stripping, and exit 1 if there are any")
    args = parser.parse_args(argv)

    dirty = 0
    for path in notebook_paths(args.notebooks):
        if args.check:
            found = problems(json.loads(committed_text(path)))
            if found:
                dirty += 1
                print(f"{path}: {', '.join(found)}; run python scripts/strip_notebooks.py {path} and git add it")
            continue
        text = path.read_text(encoding="utf-8")
        notebook = json.loads(text)
        found = problems(notebook)
        stripped = serialize(strip(notebook))
        if stripped != text:
            path.write_text(stripped, encoding="utf-8")
            print(f"stripped {path}" + (f" ({', '.join(found)})" if found else " (reformatted)"))
    return 1 if dirty else 0


if __name__ == "__main__":
    sys.exit(main())
