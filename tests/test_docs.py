"""The README stays true: its list of unimplemented sandbox methods and its two commands."""

from __future__ import annotations

import re
from pathlib import Path

from mlops_nb.api import API, description
from mlops_nb.sandbox import services
from mlops_nb.sandbox.rpc import HANDLERS, STREAM_HANDLERS
from mlops_nb.sandbox.server import implemented

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_lists_exactly_the_methods_the_sandbox_does_not_implement() -> None:
    services.migrations()  # imports every handler module
    missing = {m.qualified_name for m in API.methods if m.qualified_name not in HANDLERS | STREAM_HANDLERS}
    block = README.split("<!-- unimplemented:start -->")[1].split("<!-- unimplemented:end -->")[0]
    assert set(re.findall(r"`([a-z_.]+)`", block)) == missing


def test_readme_lists_exactly_the_workspaces_methods_the_sandbox_does_not_implement() -> None:
    services.migrations()  # imports every handler module
    missing = {m.qualified_name for m in description("workspaces").methods if not implemented(m)}
    block = README.split("<!-- unimplemented-workspaces:start -->")[1].split("<!-- unimplemented-workspaces:end -->")[0]
    assert set(re.findall(r"`([a-z_0-9.]+)`", block)) == missing


def test_ci_runs_the_readme_test_command() -> None:
    assert "bash scripts/test.sh\n" in README
    assert "\nbash scripts/test.sh\n" in (ROOT / ".ci/run").read_text()


def test_readme_run_command_makes_its_venv_and_runs_the_console_script() -> None:
    # tests/test_setup.py runs it; other extras may join [lab] (the command stays the same).
    assert 'python3 -m venv .venv && .venv/bin/python -m pip install -e ".[lab]" && .venv/bin/mlops-nb lab' in README
    assert ".venv/bin/python -m pytest" in (ROOT / "scripts/test.sh").read_text()  # the same venv
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'mlops-nb = "mlops_nb.cli:main"' in pyproject
    assert re.search(r"^lab = \[", pyproject, re.M)


def test_readme_picture_exists_when_referenced() -> None:
    for path in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README):
        assert (ROOT / path).is_file(), path
