"""The ``mlops-nb`` command: ``mlops-nb sandbox`` runs a local MLOps; ``mlops-nb lab`` opens the notebooks.

Each subcommand's module is imported only when the command line is built, so that
``mlops_nb`` itself stays free of the sandbox and of JupyterLab.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import webbrowser
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser", "find_notebooks", "working_copy"]

# How long mlops-nb lab waits for JupyterLab to answer before giving up on saying where it serves.
_SERVER_START_TIMEOUT = 120.0
# The folder, beside notebooks/, that mlops-nb lab opens: the user's copies of the notebooks, which
# JupyterLab saves with their outputs, so that the committed notebooks/ never change (.gitignore has it).
WORKING_COPY = "my_notebooks"


def find_notebooks(start: Path | None = None) -> Path | None:
    """The ``notebooks/`` folder with ``quickstart.ipynb``: below the working directory, else beside
    the package (an editable install of the repository)."""
    candidates = [(start or Path.cwd()) / "notebooks", Path(__file__).resolve().parent.parent / "notebooks"]
    return next((c for c in candidates if (c / "quickstart.ipynb").is_file()), None)


def working_copy(notebooks: Path) -> Path:
    """``my_notebooks/`` beside ``notebooks``, holding a copy of each notebook it does not have yet
    (a notebook already there is the user's and is left as it is)."""
    copy = notebooks.parent / WORKING_COPY
    copy.mkdir(exist_ok=True)
    for notebook in sorted(notebooks.glob("*.ipynb")):
        if not (copy / notebook.name).exists():
            shutil.copyfile(notebook, copy / notebook.name)
    return copy


def _run_lab(args: argparse.Namespace) -> int:
    found = Path(args.notebooks) if args.notebooks else find_notebooks()
    if found is None or not (found / "quickstart.ipynb").is_file():
        print("mlops-nb lab: no notebooks/quickstart.ipynb here; run it from the mlops_nb repository "
              "or pass --notebooks DIR", file=sys.stderr)
        return 2
    notebooks = found if args.notebooks else working_copy(found)
    extra = args.lab_args[1:] if args.lab_args[:1] == ["--"] else args.lab_args
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        extra = ["--allow-root", *extra]  # containers and CI machines often run as root
    # JupyterLab's start-up log says little a person needs; warnings and errors still show, and
    # the URL to open is said plainly below. Log levels among the extra arguments win.
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={notebooks}", "--ServerApp.log_level=WARN",
               "--LabApp.log_level=WARN", *extra, "quickstart.ipynb"]
    env = {**os.environ, "MLOPS_NB_NOTEBOOKS": str(notebooks)}
    runtime_dir = _runtime_dir(env)
    token_file = None
    if not _token_chosen(extra, env):
        # A token JupyterLab did not make itself is not printed in its critical-level start-up
        # banner (with two more URLs), so the line below is the one a person reads. It goes by a
        # file, not the environment, which the kernels would inherit and could show.
        token_file = _write_token_file(runtime_dir)
        env["JUPYTER_TOKEN_FILE"] = str(token_file)
    try:
        lab = subprocess.Popen(command, cwd=notebooks, env=env)
        opens_browser = (not any(a in ("--no-browser", "--ServerApp.open_browser=False") for a in extra)
                         and _has_browser())
        threading.Thread(target=_say_where, args=(lab, runtime_dir, opens_browser, notebooks, not args.notebooks,
                                                  token_file), daemon=True).start()
        while True:
            try:
                return lab.wait()
            except KeyboardInterrupt:
                # JupyterLab has the Ctrl-C too: it asks whether to stop, and a second one stops it.
                continue
    finally:
        if token_file is not None:
            token_file.unlink(missing_ok=True)


def _token_chosen(extra: Sequence[str], env: dict[str, str]) -> bool:
    """Whether the user gave JupyterLab its token (or password) themselves."""
    options = ("--IdentityProvider.token", "--ServerApp.token", "--NotebookApp.token", "--ServerApp.password",
               "--PasswordIdentityProvider.hashed_password")
    return (any(a.split("=", 1)[0] in options for a in extra)
            or any(name in env for name in ("JUPYTER_TOKEN", "JUPYTER_TOKEN_FILE")))


def _write_token_file(runtime_dir: Path) -> Path:
    runtime_dir.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix="mlops-nb-lab-", suffix=".token", dir=runtime_dir)  # mode 0600
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(secrets.token_hex(24))
    return Path(name)


def _has_browser() -> bool:
    """Whether Python (and so JupyterLab) finds a web browser to open here."""
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


def _runtime_dir(env: dict[str, str]) -> Path:
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(env.get("JUPYTER_RUNTIME_DIR") or jupyter_runtime_dir())


def _server_info(lab: subprocess.Popen[bytes], runtime_dir: Path, deadline: float) -> dict[str, Any] | None:
    """What the JupyterLab server ``lab`` writes about itself as it starts (URL, token), or None."""
    path = runtime_dir / f"jpserver-{lab.pid}.json"
    while lab.poll() is None and time.monotonic() < deadline:
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            time.sleep(0.25)  # not written yet (or half written): the server has no other signal
    return None


def _answers(lab: subprocess.Popen[bytes], url: str, token: str, deadline: float) -> bool:
    """Wait until the server at ``url`` answers HTTP: it writes its runtime file before it listens
    (jupyter_server binds its socket later, on its event loop), so the file alone is not enough."""
    status = urllib.request.Request(f"{url.rstrip('/')}/api/status",
                                    headers={"Authorization": f"token {token}"} if token else {})
    while lab.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(status, timeout=5):
                return True
        except urllib.error.HTTPError:
            return True  # an answer, if not a welcome one: the server listens
        except OSError:
            time.sleep(0.25)  # not listening yet
    return False


def _say_where(lab: subprocess.Popen[bytes], runtime_dir: Path, opens_browser: bool, notebooks: Path,
               is_working_copy: bool, token_file: Path | None) -> None:
    deadline = time.monotonic() + _SERVER_START_TIMEOUT
    info = _server_info(lab, runtime_dir, deadline)
    if info is None or not _answers(lab, str(info["url"]), str(info.get("token") or ""), deadline):
        return
    if token_file is not None:
        token_file.unlink(missing_ok=True)  # read once the server answers; it keeps the token itself
    url = f"{str(info['url']).rstrip('/')}/lab/tree/quickstart.ipynb"
    if info.get("token"):
        url += f"?token={info['token']}"
    if opens_browser:
        message = f"JupyterLab is opening the quickstart in your browser; if it does not, open\n\n    {url}"
    else:
        message = (f"No web browser was found here. Open this URL in a browser (on this machine, or one that "
                   f"can reach it):\n\n    {url}")
    folder = (f"It serves {notebooks}: your copies of the notebooks, to run, change and save; notebooks/ stays "
              "as committed (delete a copy to get the committed one again)." if is_working_copy
              else f"It serves {notebooks}.")
    print(f"\nmlops-nb lab: {message}\n\n{folder} Ctrl-C stops JupyterLab.\n", flush=True)


def _version() -> str:
    try:
        return metadata.version("mlops_nb")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        from mlops_nb import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    from mlops_nb.sandbox import cli as sandbox_cli

    parser = argparse.ArgumentParser(prog="mlops-nb", description="Tools of mlops_nb, the Jupyter client for H2O MLOps.")
    parser.add_argument("--version", action="version", version=f"mlops-nb {_version()}")
    commands: Any = parser.add_subparsers(dest="command", metavar="COMMAND")
    sandbox_cli.add_command(commands)
    lab = commands.add_parser(
        "lab", help="open JupyterLab on the quickstart notebook (it starts the embedded sandbox itself)",
        description="Open JupyterLab on notebooks/quickstart.ipynb. Arguments after -- go to JupyterLab.")
    lab.add_argument("--notebooks", metavar="DIR", help="folder with the notebooks (default: ./notebooks)")
    lab.add_argument("lab_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    lab.set_defaults(run=_run_lab)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``mlops-nb`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return 2
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
