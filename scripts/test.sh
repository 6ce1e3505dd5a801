#!/usr/bin/env bash
# Install what the selected tests need, then run them (README: "Run the whole test suite").
# Everything Python goes into the repository's virtual environment, .venv: the one the README's first
# command makes, created here when missing, so this works with any Python 3.10+ on PATH as python3,
# including a distribution's, which refuses a bare pip install. Extra arguments go to pytest.
#
# Chromium is installed only when the selected tests include browser tests (-m browser; not with
# -m "not browser") and it is missing: with apt-get (as root, or through sudo). On a machine without
# apt-get (macOS, other distributions) nothing is installed: name a Chromium you installed in
# MLOPS_NB_CHROMIUM, or the browser tests are skipped, saying why, and everything else runs.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
.venv/bin/python -m ruff check .

needs_file="$(mktemp)"
trap 'rm -f "$needs_file"' EXIT
.venv/bin/python -m pytest --collect-only -q --needs "$needs_file" "$@" >/dev/null || true
chromium="${MLOPS_NB_CHROMIUM:-/usr/bin/chromium}"
if grep -qx chromium "$needs_file" && [ ! -x "$chromium" ]; then
    if command -v apt-get >/dev/null 2>&1; then
        sudo_cmd=""
        [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
        echo "scripts/test.sh: the selected tests include browser tests; installing Debian's chromium with apt-get"
        $sudo_cmd apt-get update -q
        DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q chromium
    else
        reason="no Chromium at $chromium and no apt-get to install it: install Chromium and name it in MLOPS_NB_CHROMIUM to run the browser tests"
        echo "scripts/test.sh: $reason; they are skipped, everything else runs"
        export MLOPS_NB_NO_CHROMIUM="$reason"
    fi
fi

.venv/bin/python -m pytest "$@"
