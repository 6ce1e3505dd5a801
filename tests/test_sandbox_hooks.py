"""The sandbox's cross-area hooks are wired in one place, whatever order its modules are imported in."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HOOKS = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
from mlops_nb.sandbox import services
services.migrations()  # what Sandbox.start does
from mlops_nb.sandbox.services import deployments, projects
print(json.dumps({"project_delete": [f"{h.__module__}.{h.__name__}" for h in projects.PROJECT_DELETE_HOOKS],
                  "deployment_remove": [f"{h.__module__}.{h.__name__}" for h in deployments.DEPLOYMENT_REMOVE_HOOKS]}))
"""


def _hooks_after_importing(*modules: str) -> dict[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", HOOKS, *modules], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("first", ["mlops_nb.sandbox.services.datasets", "mlops_nb.sandbox.services.monitoring"])
def test_hooks_do_not_depend_on_import_order(first: str) -> None:
    wired = _hooks_after_importing(first)
    services = "mlops_nb.sandbox.services"
    assert wired["project_delete"] == [f"{services}.{area}.leave_deleted_project"
                                       for area in ("deployments", "experiments", "models", "datasets", "batch")]
    assert wired["deployment_remove"] == [f"{services}.monitoring.forget_deployment",
                                          f"{services}.deployments_v2.forget_pause"]
