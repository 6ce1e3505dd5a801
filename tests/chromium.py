"""Where the browser tests find Chromium, and what they do without it.

Debian's ``/usr/bin/chromium`` by default (``scripts/test.sh`` installs it with apt when the selected
tests need it); ``MLOPS_NB_CHROMIUM`` names another build (e.g. on macOS, where there is no apt).
Without one the browser tests fail, saying how to get it, unless ``scripts/test.sh`` has said why it
could not install it (``MLOPS_NB_NO_CHROMIUM``): then they are skipped with that reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("MLOPS_NB_CHROMIUM") or "/usr/bin/chromium")


def require_chromium() -> str:
    """The Chromium executable to launch; skips or fails the test when there is none (see above)."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    reason = os.environ.get("MLOPS_NB_NO_CHROMIUM")
    if reason:
        pytest.skip(reason)
    pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/test.sh does), or name another "
                "Chromium in MLOPS_NB_CHROMIUM, or leave these tests out with -m 'not browser'")
