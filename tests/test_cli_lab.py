"""``mlops-nb lab``, the README's first command: JupyterLab opens on the quickstart notebook."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from mlops_nb.cli import main

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lab_serves_the_notebooks_folder(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    lab = subprocess.Popen(
        [sys.executable, "-m", "mlops_nb.cli", "lab", "--", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--IdentityProvider.token=", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/status", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert lab.poll() is None, "JupyterLab exited"
            assert time.monotonic() < deadline, "JupyterLab did not start within 60 s"
            time.sleep(0.5)
        listing = requests.get(f"http://127.0.0.1:{port}/api/contents/", timeout=10).json()
        names = {item["name"] for item in listing["content"]}
        assert {"quickstart.ipynb", "explore_projects.ipynb", "magics.ipynb"} <= names
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(timeout=30)


def test_lab_without_notebooks_says_what_to_do(tmp_path: Path, capsys, monkeypatch) -> None:
    assert main(["lab", "--notebooks", str(tmp_path)]) == 2
    assert "no notebooks/quickstart.ipynb here" in capsys.readouterr().err
