"""The ``mlops-nb`` command: ``mlops-nb sandbox`` runs a local MLOps; ``mlops-nb lab`` opens the notebooks.

Each subcommand's module is imported only when the command line is built, so that
``mlops_nb`` itself stays free of the sandbox and of JupyterLab.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import webbrowser
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser", "find_notebooks"]

# How long mlops-nb lab waits for JupyterLab to say where it serves before giving up on saying it.
_SERVER_INFO_TIMEOUT = 120.0


def find_notebooks(start: Path | None = None) -> Path | None:
    """The ``notebooks/`` folder with ``quickstart.ipynb``: below the working directory, else beside
    the package (an editable install of the repository)."""
    candidates = [(start or Path.cwd()) / "notebooks", Path(__file__).resolve().parent.parent / "notebooks"]
    return next((c for c in candidates if (c / "quickstart.ipynb").is_file()), None)


def _run_lab(args: argparse.Namespace) -> int:
    notebooks = Path(args.notebooks) if args.notebooks else find_notebooks()
    if notebooks is None or not (notebooks / "quickstart.ipynb").is_file():
        print("mlops-nb lab: no notebooks/quickstart.ipynb here; run it from the mlops_nb repository "
              "or pass --notebooks DIR", file=sys.stderr)
        return 2
    extra = args.lab_args[1:] if args.lab_args[:1] == ["--"] else args.lab_args
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        extra = ["--allow-root", *extra]  # containers and CI machines often run as root
    # JupyterLab's start-up log says little a person needs; warnings and errors still show, and
    # the URL to open is said plainly below. Log levels among the extra arguments win.
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={notebooks}", "--ServerApp.log_level=WARN",
               "--LabApp.log_level=WARN", *extra, "quickstart.ipynb"]
    env = {**os.environ, "MLOPS_NB_NOTEBOOKS": str(notebooks)}
    lab = subprocess.Popen(command, cwd=notebooks, env=env)
    opens_browser = not any(a in ("--no-browser", "--ServerApp.open_browser=False") for a in extra) and _has_browser()
    threading.Thread(target=_say_where, args=(lab, _runtime_dir(env), opens_browser), daemon=True).start()
    while True:
        try:
            return lab.wait()
        except KeyboardInterrupt:
            # JupyterLab has the Ctrl-C too: it asks whether to stop, and a second one stops it.
            continue


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


def _server_info(lab: subprocess.Popen[bytes], runtime_dir: Path) -> dict[str, Any] | None:
    """What the JupyterLab server ``lab`` writes about itself once it listens (URL, token), or None."""
    path = runtime_dir / f"jpserver-{lab.pid}.json"
    deadline = time.monotonic() + _SERVER_INFO_TIMEOUT
    while lab.poll() is None and time.monotonic() < deadline:
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            time.sleep(0.25)  # not written yet (or half written): the server has no other signal
    return None


def _say_where(lab: subprocess.Popen[bytes], runtime_dir: Path, opens_browser: bool) -> None:
    info = _server_info(lab, runtime_dir)
    if info is None:
        return
    url = f"{str(info['url']).rstrip('/')}/lab/tree/quickstart.ipynb"
    if info.get("token"):
        url += f"?token={info['token']}"
    if opens_browser:
        message = f"JupyterLab is opening the quickstart in your browser; if it does not, open\n\n    {url}"
    else:
        message = (f"No web browser was found here. Open this URL in a browser (on this machine, or one that "
                   f"can reach it):\n\n    {url}")
    print(f"\nmlops-nb lab: {message}\n\nCtrl-C stops JupyterLab.\n", flush=True)


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
