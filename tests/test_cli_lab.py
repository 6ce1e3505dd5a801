"""``mlops-nb lab``, the README's first command: JupyterLab opens on the quickstart notebook; ``--version``."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

import pytest
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


def _lines_until(process: subprocess.Popen[str], pattern: str, timeout: float) -> tuple[str, re.Match[str]]:
    """Read ``process``'s output until a line matches ``pattern``; (all read so far, the match)."""
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()  # type: ignore[union-attr]
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            assert process.poll() is None, "mlops-nb lab exited:\n" + "".join(seen)
            continue
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return "".join(seen), found
    pytest.fail(f"no line matching {pattern!r} within {timeout} s:\n" + "".join(seen))


def test_lab_without_a_browser_says_which_url_to_open(tmp_path: Path) -> None:
    port = _free_port()
    # A machine with no browser: nothing on PATH to open, no display, no $BROWSER.
    env = {name: value for name, value in os.environ.items()
           if name not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")}
    env.update(PATH=str(tmp_path / "empty-bin"), JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    lab = subprocess.Popen(
        [sys.executable, "-m", "mlops_nb.cli", "lab", "--", "--ip=127.0.0.1", f"--port={port}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        said, found = _lines_until(lab, r"^\s+(http://\S+/lab/tree/quickstart\.ipynb\?token=(\w+))$", timeout=90)
        assert "No web browser was found here. Open this URL in a browser" in said
        url, token = found.group(1), found.group(2)
        assert f":{port}/" in url and len(token) >= 32
        # The URL is all it takes (its token logs in); without the token the server asks for one.
        opened = requests.get(url, timeout=30)
        assert opened.status_code == 200 and "JupyterLab" in opened.text
        assert requests.get(f"http://127.0.0.1:{port}/api/contents/", timeout=10).status_code == 403
        listing = requests.get(f"http://127.0.0.1:{port}/api/contents/?token={token}", timeout=10).json()
        assert "quickstart.ipynb" in {item["name"] for item in listing["content"]}
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(timeout=30)
        assert lab.stdout is not None
        lab.stdout.close()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"mlops-nb {metadata.version('mlops_nb')}\n"
