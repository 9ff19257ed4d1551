#!/usr/bin/env bash
# Install what the tests need and run them: the README's second command, and what CI runs.
#
# Debian packages: prometheus (prometheus, promtool) and prometheus-alertmanager (alertmanager, amtool), so
# that the tests run against the real tools, and chromium, which opens the HTML drift report headless.
# Python packages go into .venv.
# Set MLMON_REQUIRE_TOOLS=1 to make a missing tool a failure instead of a skip (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/debian.sh
install_missing_debian_packages promtool=prometheus amtool=prometheus-alertmanager chromium=chromium
ensure_python_venv

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >&2
.venv/bin/python -m pip install -q -e '.[test]' >&2

.venv/bin/ruff check mlmon tests bench
.venv/bin/ruff format --check mlmon tests bench
.venv/bin/mypy
.venv/bin/pytest "$@"
