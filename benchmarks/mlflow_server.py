"""MLflow's own scoring server, for bench_scoring to compare with: full ``mlflow`` in a virtual
environment of its own, and ``mlflow models serve --env-manager local`` run from it.

The environment takes the newest mlflow up to the version of this environment's
``mlflow-skinny`` that installs (pip steps back past a release whose own dependencies are not
published yet) and pins the model's libraries (scikit-learn, skops, pandas, numpy) to ours, so
that both servers load the same model with the same code. It is made once, at ``$MLOPS_NB_MLFLOW_VENV`` or
``~/.cache/mlops_nb/mlflow-venv``; ``python benchmarks/mlflow_server.py`` makes it ahead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import venv
from importlib.metadata import version
from pathlib import Path

import requests

__all__ = ["MLflowServer", "mlflow_python"]

CACHED_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlops_nb" / "mlflow-venv"
_SAME_AS_OURS = ("scikit-learn", "skops", "pandas", "numpy", "scipy", "cloudpickle")


def requirements() -> list[str]:
    return [f"mlflow<={version('mlflow-skinny')}", *(f"{name}=={version(name)}" for name in _SAME_AS_OURS)]


def mlflow_python() -> str:
    """The MLflow environment's python, made (and brought to our versions) when needed."""
    root = Path(os.environ.get("MLOPS_NB_MLFLOW_VENV") or CACHED_ROOT)
    python = root / "bin" / "python"
    wanted = requirements()
    stamp = root / "requirements.txt"
    if not python.exists() or not stamp.exists() or stamp.read_text().split() != wanted:
        if not python.exists():
            venv.create(root, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *wanted],
                       check=True, timeout=1800)
        stamp.write_text("\n".join(wanted) + "\n")
    return str(python)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MLflowServer:
    """``mlflow models serve -m MODEL --env-manager local`` on 127.0.0.1, until the block ends."""

    def __init__(self, model_dir: Path, workers: int = 1, start_timeout: float = 300.0) -> None:
        self.model_dir = model_dir
        self.workers = workers
        self.start_timeout = start_timeout
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/invocations"

    def version(self) -> str:
        return subprocess.run([mlflow_python(), "-c", "import mlflow; print(mlflow.__version__)"],
                              capture_output=True, text=True, check=True).stdout.strip()

    def __enter__(self) -> MLflowServer:
        python = mlflow_python()
        bin_dir = str(Path(python).parent)  # it starts uvicorn by name, from its PATH
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
        self._process = subprocess.Popen(
            [str(Path(bin_dir) / "mlflow"), "models", "serve", "-m", str(self.model_dir), "--env-manager",
             "local", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                said = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise RuntimeError(f"mlflow models serve exited with {self._process.returncode}:\n{said[-3000:]}")
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/ping", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"mlflow models serve did not answer /ping within {self.start_timeout:.0f} s")

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            # Its workers are children of the uvicorn process: stop the whole session it leads.
            os.killpg(self._process.pid, 15)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, 9)
                self._process.wait()
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None


if __name__ == "__main__":
    print(mlflow_python(), file=sys.stderr)
