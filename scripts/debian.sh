# Sourced by test.sh and demo.sh: install_missing_debian_packages COMMAND=PACKAGE ... installs, with apt-get,
# the package of each command that is not on PATH (as root, or through sudo). A COMMAND may name
# alternatives separated by '|'. Without apt-get it only says what is missing.
# ensure_python_venv installs python3-venv when `python3 -m venv` cannot work (Debian ships ensurepip apart).

install_missing_debian_packages() {
    local need=() pair commands package found command
    for pair in "$@"; do
        commands=${pair%%=*} package=${pair#*=} found=""
        IFS='|' read -ra alternatives <<<"$commands"
        for command in "${alternatives[@]}"; do
            command -v "$command" >/dev/null && found=1
        done
        [ -n "$found" ] || need+=("$package")
    done
    ((${#need[@]})) || return 0
    apt_install "${need[@]}"
}

ensure_python_venv() {
    python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
}

apt_install() {
    if ! command -v apt-get >/dev/null; then
        echo "Not on PATH, and no apt-get to install them with: $*" >&2
        return 0
    fi
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "Installing Debian packages: $*" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >&2
}
