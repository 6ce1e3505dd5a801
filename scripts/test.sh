#!/usr/bin/env bash
# Install everything the test suite needs, then run all of it (README: "Run the whole test suite").
# Everything goes into the repository's virtual environment, .venv: the one the README's first
# command makes, created here when missing, so this works with any Python 3.10+ on PATH as python3,
# including a distribution's, which refuses a bare pip install. Debian's chromium is needed by the
# real-browser tests and Java by the H2O-3 MOJO tests (marker mojo); each is installed when missing
# (as root, or through sudo). The h2o extra brings H2O-3 and JPype1 for those tests. Extra
# arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
if [ ${#missing[@]} -gt 0 ]; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q "${missing[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,h2o]"
.venv/bin/python -m ruff check .
.venv/bin/python -m pytest "$@"
