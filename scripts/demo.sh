#!/usr/bin/env bash
# Install mlmon and run `mlmon demo`: the README's first command.
#
# Debian packages prometheus and prometheus-alertmanager give the demo its live part (a Prometheus and an
# Alertmanager on 127.0.0.1, started and stopped by the demo); without them it runs the MLflow, scaffolding
# and offline drift parts and says how to get them. mlmon goes into .venv. Arguments go to `mlmon demo`.
set -euo pipefail
cd "$(dirname "$0")/.."

need_debian=()
command -v prometheus >/dev/null || need_debian+=(prometheus)
command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null \
    || need_debian+=(prometheus-alertmanager)
if ((${#need_debian[@]})) && command -v apt-get >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "Installing Debian packages: ${need_debian[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_debian[@]}" >&2
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >&2
.venv/bin/python -m pip install -q . >&2
exec .venv/bin/mlmon demo "$@"
