"""The isolated virtual environment with the official legacy client (h2o-mlops==1.0.1).

Its hard pins must not touch ours, so it lives apart and its scripts run with its own
python. The legacy-client tests and the benchmarks that compare with it all make it here.
"""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

LEGACY_REQUIREMENT = "h2o-mlops==1.0.1"
# Where the benchmarks keep it between runs (tests make theirs in a temporary folder).
CACHED_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlops_nb" / "legacy-venv"


def legacy_python(default_root: Path = CACHED_ROOT) -> str:
    """The legacy venv's python: ``$MLOPS_NB_LEGACY_VENV`` if set, else ``default_root``; made when missing."""
    where = os.environ.get("MLOPS_NB_LEGACY_VENV")
    root = Path(where) if where else default_root
    python = root / "bin" / "python"
    if not python.exists():
        venv.create(root, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        LEGACY_REQUIREMENT], check=True, timeout=600)
    return str(python)
