"""The generated .pyi stubs parse, cover every message, and are fresh."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from mlops_nb.api import API

ROOT = Path(__file__).resolve().parent.parent


def test_stubs_are_up_to_date() -> None:
    done = subprocess.run([sys.executable, "scripts/gen_stubs.py", "--check"], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_message_stub_declares_every_class() -> None:
    tree = ast.parse((ROOT / "mlops_nb/wire/messages.pyi").read_text())
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    assert set(API.messages) | set(API.enums) <= classes


def test_workspaces_stub_declares_every_class_of_that_generation() -> None:
    from mlops_nb.api import description

    workspaces = description("workspaces")
    tree = ast.parse((ROOT / "mlops_nb/wire/workspaces.pyi").read_text())
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    assert set(workspaces.messages) | set(workspaces.enums) <= classes
    assert "from mlops_nb.wire.workspaces import *" in (ROOT / "mlops_nb/workspaces.pyi").read_text()


def test_package_stub_parses() -> None:
    ast.parse((ROOT / "mlops_nb/__init__.pyi").read_text())
