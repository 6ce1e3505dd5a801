"""``mlops-nb lab``, the README's first command: JupyterLab opens on the quickstart notebook; ``--version``."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
import requests

from mlops_nb.cli import WORKING_COPY, main, working_copy
from tests.test_setup import _fresh_copy

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lab_serves_the_notebooks_folder(tmp_path: Path) -> None:
    copy = _fresh_copy(tmp_path / "copy")
    port = _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    lab = subprocess.Popen(
        [sys.executable, "-m", "mlops_nb.cli", "lab", "--", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--IdentityProvider.token=", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=copy, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
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


@contextlib.contextmanager
def _cpu_load(processes: int = 2) -> Iterator[None]:
    """Busy processes (as many as this machine's cores), so that JupyterLab starts slowly, as on a
    loaded machine; stopped on leaving."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for process in busy:
            process.kill()
            process.wait(timeout=10)


def _fresh_clone(destination: Path) -> Path:
    """The repository as a fresh clone has it: its files (``test_setup``'s copy) committed to a new git repository."""
    destination.mkdir()
    _fresh_copy(destination)
    git = ["git", "-C", str(destination), "-c", "user.name=test", "-c", "user.email=test@example.com"]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "fresh clone"]):
        subprocess.run([*git, *step], check=True, capture_output=True, timeout=120)
    return destination


def test_lab_without_a_browser_says_which_url_to_open_and_leaves_the_clone_clean(tmp_path: Path) -> None:
    clone = _fresh_clone(tmp_path / "clone")
    port = _free_port()
    # A machine with no browser: nothing on PATH to open, no display, no $BROWSER.
    env = {name: value for name, value in os.environ.items()
           if name not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER", "JUPYTER_TOKEN", "JUPYTER_TOKEN_FILE")}
    env.update(PATH=str(tmp_path / "empty-bin"), JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    lab: subprocess.Popen[str] | None = None
    try:
        with _cpu_load():
            lab = subprocess.Popen(
                [sys.executable, "-m", "mlops_nb.cli", "lab", "--", "--ip=127.0.0.1", f"--port={port}",
                 "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                start_new_session=True)
            said, found = _lines_until(lab, r"^\s+(http://\S+/lab/tree/quickstart\.ipynb\?token=(\w+))$",
                                       timeout=120)
            # Opened at once, still under load: the URL is printed once the server answers, not when it
            # writes its runtime file (it listens only later).
            url, token = found.group(1), found.group(2)
            opened = requests.get(url, timeout=30)
        assert "No web browser was found here. Open this URL in a browser" in said
        # Ours is the one URL said (no critical-level banner with two more before it).
        assert re.findall(r"https?://", said) == ["http://"], said
        assert f":{port}/" in url and len(token) >= 32
        # The URL is all it takes (its token logs in); without the token the server asks for one.
        assert opened.status_code == 200 and "JupyterLab" in opened.text
        api = f"http://127.0.0.1:{port}/api"
        assert requests.get(f"{api}/contents/", timeout=10).status_code == 403
        auth = {"Authorization": f"token {token}"}
        listing = requests.get(f"{api}/contents/", headers=auth, timeout=10).json()
        assert {"quickstart.ipynb", "magics.ipynb"} <= {item["name"] for item in listing["content"]}

        # Open the quickstart (a kernel starts beside it) and save it with an output, as JupyterLab's
        # autosave does after a run: the user's copy changes, the clone's tracked files do not.
        session = requests.post(f"{api}/sessions", headers=auth, timeout=60, json={
            "path": "quickstart.ipynb", "type": "notebook", "name": "quickstart.ipynb",
            "kernel": {"name": "python3"}}).json()
        notebook = requests.get(f"{api}/contents/quickstart.ipynb", headers=auth, timeout=10).json()["content"]
        first = next(c for c in notebook["cells"] if c["cell_type"] == "code")
        first["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ran\n"}]
        first["execution_count"] = 1
        requests.post(f"{api}/contents/quickstart.ipynb/checkpoints", headers=auth, timeout=10).raise_for_status()
        requests.put(f"{api}/contents/quickstart.ipynb", headers=auth, timeout=30,
                     json={"type": "notebook", "format": "json", "content": notebook}).raise_for_status()
        requests.delete(f"{api}/sessions/{session['id']}", headers=auth, timeout=60).raise_for_status()
        saved = json.loads((clone / WORKING_COPY / "quickstart.ipynb").read_text(encoding="utf-8"))
        assert any(c.get("outputs") for c in saved["cells"])
        status = subprocess.run(["git", "-C", str(clone), "status", "--porcelain"], capture_output=True, text=True,
                                check=True, timeout=60)
        assert status.stdout == "", status.stdout
    finally:
        if lab is not None:
            os.killpg(lab.pid, signal.SIGTERM)
            lab.wait(timeout=30)
            assert lab.stdout is not None
            lab.stdout.close()
    assert not list((tmp_path / "runtime").glob("mlops-nb-lab-*.token")), "the token file outlived JupyterLab"


def test_the_working_copy_keeps_the_users_notebooks(tmp_path: Path) -> None:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for name in ("quickstart.ipynb", "magics.ipynb"):
        (notebooks / name).write_text(f"committed {name}", encoding="utf-8")
    copy = working_copy(notebooks)
    assert copy == tmp_path / WORKING_COPY
    (copy / "quickstart.ipynb").write_text("the user's own", encoding="utf-8")
    (copy / "magics.ipynb").unlink()  # deleted to get the committed one again
    (notebooks / "new.ipynb").write_text("committed new.ipynb", encoding="utf-8")
    working_copy(notebooks)
    assert {p.name: p.read_text(encoding="utf-8") for p in copy.iterdir()} == {
        "quickstart.ipynb": "the user's own", "magics.ipynb": "committed magics.ipynb",
        "new.ipynb": "committed new.ipynb"}


def test_the_repository_ignores_the_working_copy() -> None:
    ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", f"{WORKING_COPY}/quickstart.ipynb"],
                             timeout=60)
    assert ignored.returncode == 0


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"mlops-nb {metadata.version('mlops_nb')}\n"
