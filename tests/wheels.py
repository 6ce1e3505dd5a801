"""The official client wheels the API descriptions are generated from, and running the generators.

The wheels come from the package index (``pip download``); where it cannot be reached the
test that needs them is skipped, saying why. The generators run as the maintainer runs them
(``python scripts/...``), writing to a temporary file that the test compares with the
committed description.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def download_wheel(requirement: str, into: Path) -> Path:
    """``requirement``'s wheel (no dependencies) in ``into``; skips the test when pip cannot get it."""
    into.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                           "--no-deps", "--only-binary", ":all:", "-d", str(into), requirement],
                          capture_output=True, text=True, timeout=300)
    name, _, version = requirement.partition("==")
    found = sorted(into.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    if done.returncode != 0 or not found:
        reason = (done.stderr.strip().splitlines() or ["no wheel in pip's answer"])[-1]
        pytest.skip(f"cannot download {requirement} from the package index ({reason}); "
                    "the check of the generated API description needs that wheel")
    return found[0]


def regenerate(script: str, wheels: list[Path], out: Path) -> str:
    """Run a description generator on ``wheels``; its output file's text."""
    done = subprocess.run([sys.executable, str(SCRIPTS / script), *map(str, wheels), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out.read_text(encoding="utf-8")
