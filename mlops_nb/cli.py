"""The ``mlops-nb`` command: ``mlops-nb sandbox`` runs a local MLOps; ``mlops-nb lab`` opens the notebooks.

Each subcommand's module is imported only when the command line is built, so that
``mlops_nb`` itself stays free of the sandbox and of JupyterLab.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser", "find_notebooks"]


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
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={notebooks}", *extra, "quickstart.ipynb"]
    try:
        return subprocess.call(command, cwd=notebooks, env={**os.environ, "MLOPS_NB_NOTEBOOKS": str(notebooks)})
    except KeyboardInterrupt:
        return 0


def build_parser() -> argparse.ArgumentParser:
    from mlops_nb.sandbox import cli as sandbox_cli

    parser = argparse.ArgumentParser(prog="mlops-nb", description="Tools of mlops_nb, the Jupyter client for H2O MLOps.")
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
