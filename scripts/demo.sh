#!/usr/bin/env bash
# Install mlmon and run `mlmon demo`: the README's first command.
#
# Debian packages prometheus and prometheus-alertmanager give the demo its live part (a Prometheus and an
# Alertmanager on 127.0.0.1, started and stopped by the demo); without them it runs the MLflow, scaffolding
# and offline drift parts and says how to get them. mlmon goes into .venv. Arguments go to `mlmon demo`.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/debian.sh
install_missing_debian_packages prometheus=prometheus "prometheus-alertmanager|alertmanager=prometheus-alertmanager"
ensure_python_venv

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >&2
.venv/bin/python -m pip install -q '.[cli]' >&2
exec .venv/bin/mlmon demo "$@"
