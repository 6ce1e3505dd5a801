#!/usr/bin/env bash
# Install everything the test suite needs, then run all of it (README: "Run the tests").
# Debian's chromium is needed by the real-browser tests; it is installed when missing
# (as root, or through sudo). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q chromium
fi

python3 -m pip install -q --disable-pip-version-check -e ".[test]"
python3 -m ruff check .
python3 -m pytest "$@"
