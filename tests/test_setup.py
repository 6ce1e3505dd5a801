"""The README's two commands, as a new user runs them: in a fresh copy of the repository, with a
Python that has no virtual environment active (a distribution's, which refuses a bare
``pip install``, where this machine has one).

The first command's install step makes ``.venv`` and installs the package with JupyterLab into
it (its last step, starting JupyterLab, is ``tests/test_cli_lab.py``'s); the test command then
uses that same ``.venv`` for ruff and pytest (here on one test file: the whole suite is what it
would run, and this test is part of that). Both install from the package index, as a user's
would (pip's cache makes a second run quicker); ``-m "not install"`` leaves this out.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DISTRIBUTION_PYTHON = Path("/usr/bin/python3")
# Installing JupyterLab, then the test dependencies, on a loaded 2-core machine.
INSTALL_TIMEOUT = 1200


def readme_commands() -> list[str]:
    """The two commands of the README's "Two commands" section."""
    section = README.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, re.S)


def _externally_managed(python: Path) -> bool:
    done = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
                          capture_output=True, text=True, timeout=60)
    return done.returncode == 0 and (Path(done.stdout.strip()) / "EXTERNALLY-MANAGED").exists()


def _plain_python() -> Path:
    """A Python 3.10+ outside any virtual environment: the distribution's if it refuses bare pip
    installs (and can make virtual environments), else the one this test's environment was made from."""
    if DISTRIBUTION_PYTHON.exists() and _externally_managed(DISTRIBUTION_PYTHON):
        usable = subprocess.run([str(DISTRIBUTION_PYTHON), "-c", "import sys, venv, ensurepip; "
                                 "assert sys.version_info >= (3, 10)"], capture_output=True, timeout=60)
        if usable.returncode == 0:
            return DISTRIBUTION_PYTHON
    return Path(getattr(sys, "_base_executable", sys.executable))


def _fresh_copy(destination: Path) -> Path:
    """The repository's files as a clone has them (tracked and new ones, nothing ignored)."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def _without_a_virtual_environment(python: Path, bin_dir: Path) -> dict[str, str]:
    """The environment of a shell where ``python3`` is ``python`` and no virtual environment is active."""
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(python)
    env = {name: value for name, value in os.environ.items()
           if name not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CONDA_PREFIX", "PYTHONUSERBASE")}
    env["PATH"] = os.pathsep.join([str(bin_dir), "/usr/local/bin", "/usr/bin", "/bin"])
    return env


def _run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=INSTALL_TIMEOUT)


def test_the_readme_commands_work_from_a_fresh_copy_without_an_active_virtual_environment(tmp_path: Path) -> None:
    first, test_command = readme_commands()
    *install_steps, start_lab = first.split(" && ")
    assert start_lab == ".venv/bin/mlops-nb lab"
    assert test_command == "bash scripts/test.sh"
    clone = _fresh_copy(tmp_path / "clone")
    python = _plain_python()
    env = _without_a_virtual_environment(python, tmp_path / "bin")

    if _externally_managed(python):  # why the command makes its own environment
        refused = _run('python3 -m pip install -e ".[lab]"', clone, env)
        assert refused.returncode != 0 and "externally-managed-environment" in refused.stdout + refused.stderr

    installed = _run(" && ".join(install_steps), clone, env)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    venv_python = clone / ".venv" / "bin" / "python"
    where = subprocess.run([str(venv_python), "-c", "import sys, jupyterlab, mlops_nb; "
                            "print(sys.prefix != sys.base_prefix, mlops_nb.__file__)"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert where.returncode == 0, where.stderr
    assert where.stdout.split() == ["True", str(clone / "mlops_nb" / "__init__.py")]  # this copy, editable
    version = subprocess.run([str(clone / ".venv" / "bin" / "mlops-nb"), "--version"], capture_output=True,
                             text=True, timeout=120)
    assert version.stdout.strip() == f"mlops-nb {metadata.version('mlops_nb')}"

    tested = _run(f"{test_command} -q -p no:cacheprovider tests/test_docs.py", clone, env)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
    assert re.search(r"\b\d+ passed\b", tested.stdout), tested.stdout[-2000:]
    # The same .venv: the test dependencies joined the package and JupyterLab there, and no other was made.
    assert (clone / ".venv" / "bin" / "pytest").exists() and (clone / ".venv" / "bin" / "mlops-nb").exists()
    assert sorted(p.name for p in clone.iterdir() if (p / "pyvenv.cfg").exists()) == [".venv"]


def _tools_without_apt(bin_dir: Path) -> dict[str, str]:
    """The environment of a machine without apt-get (as macOS): a PATH with only the tools test.sh uses."""
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "mktemp", "grep", "rm", "id", "git", "env", "uname"):
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    env = {name: value for name, value in os.environ.items() if name not in ("MLOPS_NB_NO_CHROMIUM",)}
    env.update(PATH=str(bin_dir), MLOPS_NB_CHROMIUM=str(bin_dir / "no-chromium-here"))
    return env


def test_the_test_command_installs_only_what_the_selected_tests_need(tmp_path: Path) -> None:
    env = _tools_without_apt(tmp_path / "bin")
    browser_test = "tests/test_notebook_display.py::test_browser_swaps_in_the_interactive_table_and_keeps_the_fallback"
    plain_test = "tests/test_docs.py::test_ci_runs_the_readme_test_command"
    # This repository's own .venv exists already: the command only checks it is complete.
    without_browser = _run(f'bash scripts/test.sh -q -p no:cacheprovider -m "not browser" {browser_test} {plain_test}',
                           ROOT, env)
    assert without_browser.returncode == 0, without_browser.stdout[-3000:] + without_browser.stderr[-3000:]
    assert "Chromium" not in without_browser.stdout and "1 passed, 1 deselected" in without_browser.stdout
    # Browser tests selected, no Chromium and no apt-get: they are skipped, saying why; the rest runs.
    with_browser = _run(f"bash scripts/test.sh -q -rs -p no:cacheprovider {browser_test} {plain_test}", ROOT, env)
    assert with_browser.returncode == 0, with_browser.stdout[-3000:] + with_browser.stderr[-3000:]
    said = "no Chromium at {} and no apt-get to install it".format(env["MLOPS_NB_CHROMIUM"])
    assert f"scripts/test.sh: {said}" in with_browser.stdout
    assert "1 passed, 1 skipped" in with_browser.stdout and "SKIPPED [1] tests/chromium.py" in with_browser.stdout
