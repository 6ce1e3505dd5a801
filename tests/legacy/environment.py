"""The isolated virtual environments with the official clients.

``h2o-mlops==1.0.1`` holds the legacy clients (``h2o_mlops_client`` and the first ``h2o_mlops``);
``h2o-mlops==1.6.5`` is the newest client, for MLOps servers of the workspaces generation. Their
hard pins must not touch ours, so each lives apart and its scripts run with its own python. The
official-client tests and the benchmarks that compare with them all make them here.
"""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

LEGACY_REQUIREMENT = "h2o-mlops==1.0.1"
WORKSPACES_REQUIREMENT = "h2o-mlops==1.6.5"
# Where the benchmarks keep it between runs (tests make theirs in a temporary folder).
CACHED_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlops_nb" / "legacy-venv"


def legacy_python(default_root: Path = CACHED_ROOT) -> str:
    """The legacy venv's python: ``$MLOPS_NB_LEGACY_VENV`` if set, else ``default_root``; made when missing."""
    return _venv_python(LEGACY_REQUIREMENT, os.environ.get("MLOPS_NB_LEGACY_VENV"), default_root)


def workspaces_python(default_root: Path) -> str:
    """The newest client's venv's python: ``$MLOPS_NB_WORKSPACES_VENV`` if set, else ``default_root``."""
    return _venv_python(WORKSPACES_REQUIREMENT, os.environ.get("MLOPS_NB_WORKSPACES_VENV"), default_root)


def _venv_python(requirement: str, where: str | None, default_root: Path) -> str:
    root = Path(where) if where else default_root
    python = root / "bin" / "python"
    if not python.exists():
        venv.create(root, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        requirement], check=True, timeout=600)
    return str(python)
