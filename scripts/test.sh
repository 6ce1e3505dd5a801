#!/usr/bin/env bash
# Install what the selected tests need, then run them (README: "Run the whole test suite").
# Everything Python goes into the repository's virtual environment, .venv: the one the README's first
# command makes, created here when missing, so this works with any Python 3.10+ on PATH as python3,
# including a distribution's, which refuses a bare pip install. The h2o extra brings H2O-3 and JPype1
# for the H2O-3 MOJO tests. Extra arguments go to pytest.
#
# System packages are installed only when the selected tests need them and they are missing, with
# apt-get (as root, or through sudo): Debian's chromium for browser tests (-m browser; none with
# -m "not browser"), Java (openjdk-17-jre-headless) for the H2O-3 MOJO tests (-m mojo). On a machine
# without apt-get (macOS, other distributions) nothing is installed: name a Chromium you installed in
# MLOPS_NB_CHROMIUM, or the browser tests are skipped, saying why; install Java yourself for the
# MOJO tests (or leave them out with -m "not mojo"); everything else runs.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,h2o]"
.venv/bin/python -m ruff check .

needs_file="$(mktemp)"
trap 'rm -f "$needs_file"' EXIT
.venv/bin/python -m pytest --collect-only -q --needs "$needs_file" "$@" >/dev/null || true
chromium="${MLOPS_NB_CHROMIUM:-/usr/bin/chromium}"
missing=()
if grep -qx chromium "$needs_file" && [ ! -x "$chromium" ]; then missing+=(chromium); fi
if grep -qx java "$needs_file" && ! command -v java >/dev/null 2>&1; then missing+=(openjdk-17-jre-headless); fi
if [ ${#missing[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1; then
        sudo_cmd=""
        [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
        echo "scripts/test.sh: the selected tests need ${missing[*]}; installing with apt-get"
        $sudo_cmd apt-get update -q
        DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q "${missing[@]}"
    else
        if [[ " ${missing[*]} " == *" chromium "* ]]; then
            reason="no Chromium at $chromium and no apt-get to install it: install Chromium and name it in MLOPS_NB_CHROMIUM to run the browser tests"
            echo "scripts/test.sh: $reason; they are skipped, everything else runs"
            export MLOPS_NB_NO_CHROMIUM="$reason"
        fi
        if [[ " ${missing[*]} " == *" openjdk-17-jre-headless "* ]]; then
            echo "scripts/test.sh: no java and no apt-get to install it: install Java 17 for the H2O-3 MOJO tests, or leave them out with -m \"not mojo\""
        fi
    fi
fi

.venv/bin/python -m pytest "$@"
