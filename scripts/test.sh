#!/usr/bin/env bash
# Install what the tests need and run them: the README's second command, and what CI runs.
#
# Debian packages: prometheus (prometheus, promtool) and prometheus-alertmanager (alertmanager, amtool), so
# that the tests run against the real tools, and chromium, which opens the HTML drift report headless.
# Python packages go into .venv.
# Set MLMON_REQUIRE_TOOLS=1 to make a missing tool a failure instead of a skip (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."

need_debian=()
command -v promtool >/dev/null || need_debian+=(prometheus)
command -v amtool >/dev/null || need_debian+=(prometheus-alertmanager)
command -v chromium >/dev/null || need_debian+=(chromium)
if ((${#need_debian[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "Installing Debian packages: ${need_debian[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_debian[@]}" >&2
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >&2
.venv/bin/python -m pip install -q -e '.[test]' >&2

.venv/bin/ruff check mlmon tests bench
.venv/bin/ruff format --check mlmon tests bench
.venv/bin/mypy
.venv/bin/pytest "$@"
