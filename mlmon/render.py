"""Render the templates, plan the file changes, apply them.

``render_outputs`` turns a spec into file contents. ``plan_changes`` compares them with what is on disk and
with the manifest of what mlmon wrote last time, and classifies every file: create, identical, update (mlmon
wrote it and nobody touched it since), or conflict (someone edited it). ``apply_plan`` writes atomically and
never overwrites a conflict unless forced: it writes ``FILE.mlmon-new`` beside it instead. ``--dry-run`` is
just a plan that is printed and not applied.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jinja2
import yaml

from mlmon import __version__, contract, escape, rules
from mlmon.errors import MlmonError, OutputConflict, TemplateError, UnsafePath
from mlmon.spec import Spec

MANIFEST_NAME = ".mlmon-manifest.json"
CONFLICT_SUFFIX = ".mlmon-new"

# Output file -> template. The order is the order of the printed plan.
PROMETHEUS_CONFIG = "prometheus/prometheus.yml"
RECORDING_RULES = "prometheus/rules/mlmon-recording.yml"
ALERT_RULES = "prometheus/rules/mlmon-alerts.yml"
ALERT_TESTS = "prometheus/tests/mlmon-alerts-test.yml"
ALERTMANAGER_CONFIG = "alertmanager/alertmanager.yml"
GRAFANA_DATASOURCE = "grafana/provisioning/datasources/mlmon.yml"
GRAFANA_DASHBOARD_PROVIDER = "grafana/provisioning/dashboards/mlmon.yml"
GRAFANA_DASHBOARD = "grafana/dashboards/mlmon-overview.json"
ALL_OUTPUTS = (
    PROMETHEUS_CONFIG,
    RECORDING_RULES,
    ALERT_RULES,
    ALERT_TESTS,
    ALERTMANAGER_CONFIG,
    GRAFANA_DATASOURCE,
    GRAFANA_DASHBOARD_PROVIDER,
    GRAFANA_DASHBOARD,
)
RULE_OUTPUTS = (RECORDING_RULES, ALERT_RULES, ALERT_TESTS)
SPEC_TEMPLATE = "mlmon.yaml.j2"


def builtin_templates_dir() -> Path:
    """The templates shipped with mlmon: the live top-level templates/ folder in a checkout or editable
    install, package data inside a wheel."""
    from importlib.resources import files

    return Path(str(files("mlmon.templates")))


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
        "windows": spec.windows(),
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
    except jinja2.TemplateNotFound:
        raise TemplateError(f"template {name} not found", "check --templates-dir") from None
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
# Plan

Action = Literal["create", "identical", "update", "conflict"]


@dataclass(frozen=True)
class FileChange:
    """One file mlmon wants to write: where, what, and how it relates to what is there now."""

    path: str  # relative to the plan's root
    action: Action
    content: str
    old_content: str | None = None

    def diff(self) -> str:
        if self.action == "identical":
            return ""
        old = (self.old_content or "").splitlines(keepends=True)
        new = self.content.splitlines(keepends=True)
        fromfile = f"a/{self.path}" if self.old_content is not None else "/dev/null"
        return "".join(difflib.unified_diff(old, new, fromfile, f"b/{self.path}"))


@dataclass
class Plan:
    root: Path
    changes: list[FileChange]
    manifest: dict[str, str] = field(default_factory=dict)  # path -> sha256 of what mlmon last wrote

    @property
    def conflicts(self) -> list[FileChange]:
        return [c for c in self.changes if c.action == "conflict"]

    @property
    def has_changes(self) -> bool:
        return any(c.action != "identical" for c in self.changes)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def safe_target(root: Path, relative: str) -> Path:
    """``root/relative``, refusing anything that would land outside ``root`` (``..``, absolute paths,
    symlinks pointing elsewhere)."""
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise UnsafePath(f"{relative} is outside the output folder {root}")
    root_resolved = root.resolve()
    target = (root / relative).resolve()
    if target != root_resolved and root_resolved not in target.parents:
        raise UnsafePath(
            f"{root / relative} resolves to {target}, outside the output folder {root_resolved}",
            "remove the symlink, or choose another --out folder",
        )
    return root / relative


def read_manifest(root: Path) -> dict[str, str]:
    path = root / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"]
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise ValueError("files must map paths to hashes")
        return dict(files)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MlmonError(
            f"the manifest {path} is unreadable: {exc}",
            "delete it and run again; files you edited will then show as conflicts rather than be overwritten",
        ) from None


def plan_changes(root: str | Path, rendered: Mapping[str, str]) -> Plan:
    """Classify each rendered file against the disk and the manifest. Reads only; writes nothing."""
    root = Path(root)
    manifest = read_manifest(root)
    changes = []
    for relative, content in rendered.items():
        target = safe_target(root, relative)
        try:
            old = target.read_text(encoding="utf-8")
        except FileNotFoundError:
            changes.append(FileChange(relative, "create", content))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise MlmonError(f"cannot read {target}: {exc}") from None
        if old == content:
            action: Action = "identical"
        elif manifest.get(relative) == sha256(old):
            action = "update"
        else:  # edited since mlmon wrote it, or written by someone else
            action = "conflict"
        changes.append(FileChange(relative, action, content, old))
    return Plan(root, changes, manifest)


# ------------------------------------------------------------------------------------------------------
# Apply


def write_atomic(path: Path, content: str) -> None:
    """Write via a temporary file in the same folder and rename, so readers see the old file or the new one,
    never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class ApplyResult:
    written: list[str]
    conflict_copies: list[str]


def apply_plan(plan: Plan, force: bool = False) -> ApplyResult:
    """Write the plan. A conflict is overwritten only with ``force``; otherwise its new content goes to
    ``FILE.mlmon-new`` and :class:`OutputConflict` is raised after everything else was written."""
    written, copies = [], []
    manifest = dict(plan.manifest)
    for change in plan.changes:
        target = safe_target(plan.root, change.path)
        if change.action == "conflict" and not force:
            copy = safe_target(plan.root, change.path + CONFLICT_SUFFIX)
            write_atomic(copy, change.content)
            copies.append(change.path + CONFLICT_SUFFIX)
            continue
        if change.action != "identical":
            write_atomic(target, change.content)
            written.append(change.path)
        manifest[change.path] = sha256(change.content)
    manifest_doc = {"generator": f"mlmon {__version__}", "files": dict(sorted(manifest.items()))}
    write_atomic(plan.root / MANIFEST_NAME, json.dumps(manifest_doc, indent=2) + "\n")
    if copies:
        raise OutputConflict(
            f"{len(copies)} file(s) were edited since mlmon wrote them and were left alone: "
            + ", ".join(c.removesuffix(CONFLICT_SUFFIX) for c in copies),
            f"the new versions are beside them as *{CONFLICT_SUFFIX}; merge by hand, or run again with --force "
            "to overwrite",
        )
    return ApplyResult(written, copies)


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
    prometheus_url: str = "http://127.0.0.1:9090",
    alertmanager_url: str = "http://127.0.0.1:9093",
    mlflow_uri: str = "sqlite:///mlflow.db",
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
