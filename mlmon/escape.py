"""Escaping user text for each language mlmon writes: YAML, PromQL and Go templates.

A model name is data, never code: whatever it holds (quotes, backslashes, ``{{ }}``, ``#``, ``: ``, unicode),
it must reach Prometheus, Alertmanager and Grafana as the same string. The spec loader refuses control
characters, so none of these functions has to represent a newline.
"""

from __future__ import annotations

import json
import math


def yaml_string(text: str) -> str:
    """A double-quoted YAML scalar. JSON strings are valid YAML double-quoted scalars."""
    return json.dumps(text, ensure_ascii=False)


def promql_string(text: str) -> str:
    """A PromQL double-quoted string literal (Go escaping rules)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def promql_regex_literal(text: str) -> str:
    """``text`` as an RE2 pattern that matches exactly that text."""
    specials = set("\\.+*?()|[]{}^$")
    return "".join(f"\\{ch}" if ch in specials else ch for ch in text)


def promql_matchers(**labels: str) -> str:
    """``{a="x",b="y"}`` with every value escaped."""
    return "{" + ",".join(f"{name}={promql_string(value)}" for name, value in labels.items()) + "}"


def go_template_text(text: str) -> str:
    """Text that Prometheus and Alertmanager template expansion print verbatim.

    Alert labels, annotations and many receiver fields are Go templates: a literal ``{{`` would start an
    action, so it is written as the action ``{{ "{{" }}`` that prints it.
    """
    return text.replace("{{", '{{ "{{" }}')


def relabel_replacement(text: str) -> str:
    """A relabelling ``replacement`` that yields ``text``: Prometheus expands ``$1`` and ``${name}`` there, so
    a literal ``$`` is written ``$$``."""
    return text.replace("$", "$$")


def number(value: float) -> str:
    """A threshold as Prometheus and people both read it: 0.25, 30, 1e-06."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)
