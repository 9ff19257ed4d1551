"""Render the templates: a spec in, the text of every generated file out.

``render_outputs`` renders; ``plan_outputs`` renders and plans the changes in an output folder (see
:mod:`mlmon.plan` for the plan and for writing it, :mod:`mlmon.layout` for the file names). Their names are
re-exported here, so ``from mlmon.render import ...`` gives a caller everything `mlmon init` uses.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
import yaml

from mlmon import __version__, contract, escape, rules
from mlmon.errors import TemplateError
from mlmon.layout import (
    ALERT_RULES,
    ALERT_TESTS,
    ALERTMANAGER_CONFIG,
    ALL_OUTPUTS,
    GRAFANA_DASHBOARD,
    GRAFANA_DASHBOARD_PROVIDER,
    GRAFANA_DATASOURCE,
    PROMETHEUS_CONFIG,
    RECORDING_RULES,
    RULE_OUTPUTS,
    SPEC_TEMPLATE,
    builtin_templates_dir,
)
from mlmon.plan import (
    CONFLICT_SUFFIX,
    MANIFEST_NAME,
    ApplyResult,
    FileChange,
    Plan,
    apply_plan,
    inputs_fingerprint,
    plan_changes,
    unchanged_plan,
    write_atomic,
)
from mlmon.settings import DEFAULT_ALERTMANAGER_URL, DEFAULT_PROMETHEUS_URL, DEFAULT_TRACKING_URI
from mlmon.spec import Spec

__all__ = [
    "ALERTMANAGER_CONFIG",
    "ALERT_RULES",
    "ALERT_TESTS",
    "ALL_OUTPUTS",
    "CONFLICT_SUFFIX",
    "GRAFANA_DASHBOARD",
    "GRAFANA_DASHBOARD_PROVIDER",
    "GRAFANA_DATASOURCE",
    "MANIFEST_NAME",
    "PROMETHEUS_CONFIG",
    "RECORDING_RULES",
    "RULE_OUTPUTS",
    "ApplyResult",
    "FileChange",
    "NewModel",
    "Plan",
    "apply_plan",
    "builtin_templates_dir",
    "inputs_fingerprint",
    "plan_changes",
    "plan_outputs",
    "render_outputs",
    "render_spec_file",
    "template_environment",
    "unchanged_plan",
    "write_atomic",
]


def template_environment(templates_dir: str | Path | None = None) -> jinja2.Environment:
    """Jinja2 environment whose loader looks in ``templates_dir`` first, then in mlmon's own templates, so
    a user can override any single file."""
    search = [Path(templates_dir)] if templates_dir else []
    for folder in search:
        if not folder.is_dir():
            raise TemplateError(
                f"templates folder {folder} does not exist", "pass an existing folder to --templates-dir"
            )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([*map(str, search), str(builtin_templates_dir())]),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        yaml=_yaml_filter,
        promql_string=escape.promql_string,
        go_text=escape.go_template_text,
        relabel_replacement=escape.relabel_replacement,
        number=escape.number,
        block=_block_filter,
        grafana_text=lambda text: str(text).replace("$", "$$"),
        json=lambda value: json.dumps(value, ensure_ascii=False),
    )
    return env


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates cached per user: compiling them is most of the cost of a run. The cache is keyed
    by each template's source, so an edited or overriding template is compiled afresh."""
    folder = (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlmon" / f"jinja-{__version__}"
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home only makes runs slower
    return jinja2.FileSystemBytecodeCache(str(folder))


def _yaml_filter(value: Any) -> str:
    """Any scalar as YAML: text double-quoted and escaped, numbers and booleans as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return escape.number(value)
    return escape.yaml_string(str(value))


def _block_filter(text: str, indent: int) -> str:
    """Text as a YAML literal block (``|-``) indented ``indent`` spaces, so PromQL reads as written: a block
    keeps quotes, backslashes and ``#`` verbatim. Text a block cannot hold (leading or trailing blanks) is
    quoted instead."""
    if not text or text != text.strip() or any(line != line.rstrip() for line in text.split("\n")):
        return escape.yaml_string(text)
    pad = " " * indent
    return "|-\n" + "\n".join(pad + line if line else "" for line in text.split("\n"))


def _template_line(traceback: TracebackType | None) -> str | None:
    """``file:line`` of the innermost template in a rendering traceback (Jinja maps template frames to the
    template's own file and line)."""
    found = None
    while traceback is not None:
        filename = traceback.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            found = f"{filename}:{traceback.tb_lineno}"
        traceback = traceback.tb_next
    return found


def render_context(spec: Spec) -> dict[str, Any]:
    """What every template sees: the spec, the rules as data, the metric contract and the recorded names."""
    from mlmon.alert_tests import alert_test_groups

    return {
        "spec": spec,
        "mlmon_version": __version__,
        "recording_groups": rules.recording_rules(spec),
        "alert_groups": rules.alert_rules(spec),
        "alert_tests": alert_test_groups(spec),
        "contract": contract,
        "r": rules,
        "drift_windows": spec.drift_windows(),
        "feedback_windows": spec.feedback_windows(),
        "files": {
            "recording": Path(RECORDING_RULES).name,
            "alerts": Path(ALERT_RULES).name,
        },
    }


def render_outputs(
    spec: Spec, templates_dir: str | Path | None = None, only: Iterable[str] = ALL_OUTPUTS
) -> dict[str, str]:
    """Render the files mlmon generates for ``spec``, as {relative path: content}.

    Every output is parsed again (YAML or JSON) before it is returned, so a broken override template is
    reported here, with its name, rather than by Prometheus later.
    """
    env = template_environment(templates_dir)
    context = render_context(spec)
    return {path: render_template(env, f"{path}.j2", context) for path in only}


def render_template(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    try:
        text = env.get_template(name).render(**context)
    except jinja2.TemplateNotFound as exc:
        if exc.name == name:
            raise TemplateError(f"template {name} not found", "check --templates-dir") from None
        # An {% include %} or {% import %} inside the template: name the missing file and where it was asked for.
        where = _template_line(exc.__traceback__) or name
        searched = " and ".join(str(path) for path in getattr(env.loader, "searchpath", []))
        raise TemplateError(
            f"template {where} includes {exc.name}, which is not found",
            f"put {exc.name} in --templates-dir (searched {searched}), or remove the include",
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template {exc.filename or name}:{exc.lineno}: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"template {name}: {exc.message}") from None
    try:
        if name.endswith(".json.j2"):
            json.loads(text)
        else:
            yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (ValueError, yaml.YAMLError) as exc:
        raise TemplateError(
            f"template {name} rendered text that does not parse: {exc}",
            "if you override this template with --templates-dir, check its quoting; values must go "
            "through the yaml or json filters",
        ) from None
    return text


# ------------------------------------------------------------------------------------------------------
# Entry points for the commands


def plan_outputs(
    spec: Spec,
    out_dir: str | Path,
    templates_dir: str | Path | None = None,
    only: Iterable[str] = ALL_OUTPUTS,
) -> Plan:
    """Render ``spec`` and plan the changes in ``out_dir``: what `mlmon init` and `render-alerts` apply.

    >>> plan = plan_outputs(load_spec("mlmon.yaml"), "monitoring")  # doctest: +SKIP
    >>> [(c.path, c.action) for c in plan.changes][:1]  # doctest: +SKIP
    [('prometheus/prometheus.yml', 'create')]
    """
    return plan_changes(out_dir, render_outputs(spec, templates_dir, only))


@dataclass(frozen=True)
class NewModel:
    name: str
    targets: tuple[str, ...]
    task: str = "classification"
    features: tuple[tuple[str, str], ...] = ()  # (name, numerical|categorical)


def render_spec_file(
    project: str,
    models: Iterable[NewModel],
    prometheus_url: str = DEFAULT_PROMETHEUS_URL,
    alertmanager_url: str = DEFAULT_ALERTMANAGER_URL,
    mlflow_uri: str = DEFAULT_TRACKING_URI,
    templates_dir: str | Path | None = None,
    source: str = "mlmon.yaml",
) -> tuple[str, Spec]:
    """The text of a new, commented mlmon.yaml, and the spec it loads as (so a bad flag fails here, with the
    same message a hand-written file would get)."""
    from mlmon.spec import spec_from_yaml

    env = template_environment(templates_dir)
    model_data = [
        {
            "name": m.name,
            "registered_model": m.name,
            "task": m.task,
            "targets": m.targets,
            "features": [{"name": n, "type": t} for n, t in m.features],
        }
        for m in models
    ]
    text = render_template(
        env,
        SPEC_TEMPLATE,
        {
            "project": project,
            "models": model_data,
            "prometheus_url": prometheus_url,
            "alertmanager_url": alertmanager_url,
            "mlflow_uri": mlflow_uri,
        },
    )
    return text, spec_from_yaml(text, source)
