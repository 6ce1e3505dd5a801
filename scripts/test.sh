#!/usr/bin/env bash
# Install everything the test suite needs, then run all of it (README: "Run the whole test suite").
# Everything goes into the repository's virtual environment, .venv: the one the README's first
# command makes, created here when missing, so this works with any Python 3.10+ on PATH as python3,
# including a distribution's, which refuses a bare pip install. Debian's chromium is needed by the
# real-browser tests; it is installed when missing (as root, or through sudo). Extra arguments go
# to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q chromium
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
.venv/bin/python -m ruff check .
.venv/bin/python -m pytest "$@"
