"""The ``mlmon`` console script. A model service installs mlmon without the command line's packages (``pip
install mlmon`` brings only what ``mlmon.instrument`` needs); run there, the command says how to get them
instead of failing with an ImportError."""

from __future__ import annotations

import importlib.util
import sys

# What every command needs before it can parse its options (a command's own heavy packages come later).
CLI_PACKAGES = {"typer": "typer", "rich": "rich", "yaml": "pyyaml", "jinja2": "jinja2"}


def main() -> None:
    missing = [
        package for module, package in CLI_PACKAGES.items() if importlib.util.find_spec(module) is None
    ]
    if missing:
        sys.stderr.write(
            f"error: the mlmon command needs {', '.join(missing)}, which the light install for model services "
            "leaves out\nhint: pip install 'mlmon[cli]'\n"
        )
        raise SystemExit(1)
    from mlmon.cli import main as cli_main

    cli_main()
