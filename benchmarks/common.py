"""What the benchmark modules share: the row they report, and a sandbox in a process of its own.

A benchmark module exposes ``rows(quick: bool) -> list[Row]`` and ``benchmarks/run.py``
prints every module's rows in one table. A row holds a figure, the baseline measured in
the same run, their ratio (always ``value / baseline``) and the target, with whether it
was met. ``quick`` shrinks the workload for a smoke run; its figures are not the ones
the targets are about.
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parent.parent

__all__ = ["Row", "SandboxProcess", "median", "ratio", "run_python", "scale_db", "scratch_dir", "timing_env", "REPO"]


class Row(NamedTuple):
    """One figure of the table: ``value`` in ``unit`` against ``baseline`` (same unit, same run)."""

    name: str
    value: float
    unit: str
    baseline: float | None
    ratio: float | None
    target: str
    met: bool | None = None  # None: a figure to report, with no target to meet
    note: str = ""


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def ratio(value: float, baseline: float | None) -> float | None:
    return value / baseline if baseline else None


_scratch: tempfile.TemporaryDirectory | None = None


def scratch_dir() -> Path:
    """A folder for this run's databases, removed when the run ends."""
    global _scratch
    if _scratch is None:
        _scratch = tempfile.TemporaryDirectory(prefix="mlops-nb-bench-")
        atexit.register(_scratch.cleanup)
    return Path(_scratch.name)


def timing_env() -> dict[str, str]:
    """The environment for child pythons whose start-up is timed: bytecode cached, as after an install.

    ``PYTHONDONTWRITEBYTECODE`` (set on some machines) would make every child compile the
    package from source; the cache goes to a folder of its own, not into the source tree.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "mlops-nb-bench-pycache")
    return env


_EXPORT = re.compile(r"^export (?P<name>[A-Z0-9_]+)=(?P<value>.*)$")


class SandboxProcess:
    """``mlops-nb sandbox`` in a child process, so that its work does not compete with the
    measured client for this process's interpreter lock. ``options`` are its command-line
    options (``--data scale:200``, ``--latency 50``); ``constants`` are the four of
    connection.py, for alice, once started.
    """

    def __init__(self, db: Path, *options: str, start_timeout: float = 900.0) -> None:
        self.db = db
        self.options = options
        self.start_timeout = start_timeout
        self.constants: dict[str, str] = {}
        self.started_in = 0.0  # seconds from launch to serving, seeding included
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> SandboxProcess:
        begin = time.perf_counter()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "mlops_nb.sandbox", "sandbox", "--port", "0", "--db", str(self.db),
             *self.options], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
        assert self._process.stdout is not None
        seen = []
        deadline = time.monotonic() + self.start_timeout
        for line in self._process.stdout:
            seen.append(line)
            match = _EXPORT.match(line.strip())
            if match:
                self.constants[match["name"]] = _unquote(match["value"])
            if line.startswith("Press Ctrl-C"):
                break
            if time.monotonic() > deadline:
                break
        if "H2O_MLOPS_GATEWAY" not in self.constants:
            self.__exit__()
            said = [line for line in seen[-20:] if "TOKEN" not in line and "SECRET" not in line]
            raise RuntimeError("the sandbox did not start:\n" + "".join(said))
        self.started_in = time.perf_counter() - begin
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)  # the CLI stops cleanly on SIGTERM
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    @property
    def gateway_url(self) -> str:
        return self.constants["H2O_MLOPS_GATEWAY"]

    def client(self, **options: Any) -> Any:
        import mlops_nb

        provider = mlops_nb.TokenProvider(self.constants["REFRESH_TOKEN"], self.constants["CLIENT_ID"],
                                          self.constants["TOKEN_ENDPOINT"])
        return mlops_nb.Client(self.gateway_url, provider, **options)

    def env(self) -> dict[str, str]:
        """This environment with the four constants, for a child that connects as alice."""
        return {**os.environ, **self.constants}


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == "'" else text


_scale_dbs: dict[int, tuple[Path, float]] = {}
_copies = itertools.count(1)


def scale_db(count: int) -> tuple[Path, float]:
    """A database made once per run with ``--data scale:COUNT``; (its path, seconds the making took).

    Benchmarks open copies of it, so that one's writes do not change what another measures.
    """
    if count not in _scale_dbs:
        made = scratch_dir() / f"scale-{count}.sqlite3"
        with SandboxProcess(made, "--data", f"scale:{count}") as sandbox:
            seconds = sandbox.started_in
        _scale_dbs[count] = (made, seconds)
    made, seconds = _scale_dbs[count]
    copy = scratch_dir() / f"scale-{count}-copy-{next(_copies)}.sqlite3"
    for suffix in ("", "-wal"):  # a clean stop leaves no WAL; copy one if it is there
        if Path(f"{made}{suffix}").exists():
            shutil.copyfile(f"{made}{suffix}", f"{copy}{suffix}")
    return copy, seconds


def run_python(python: str, args: Sequence[str], env: dict[str, str], timeout: float = 1800) -> str:
    """A child python's standard output; its error output too if it fails."""
    done = subprocess.run([python, *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout
