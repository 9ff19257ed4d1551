"""Validate a folder that ``mlmon init`` generated, with the real tools wherever they exist.

``promtool`` and ``amtool`` know Prometheus' and Alertmanager's configuration better than any copy of their
rules could, so they check those files. Grafana cannot run here, so its files are checked in Python:
provisioning YAML, dashboard structure (what Grafana needs to lay the panels out and switch data sources),
every PromQL query after Grafana's variables are substituted, and the metric contract: each metric a rule
or a panel selects must be one the instrument library exports or one a recording rule records, or the
panel stays empty forever without anyone noticing.

>>> report = check_output("monitoring")  # doctest: +SKIP
>>> [r.target for r in report.results if r.status == "failed"]  # doctest: +SKIP
[]
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import promql_parser
import yaml

from mlmon import contract
from mlmon.errors import MlmonError
from mlmon.render import (
    ALERT_TESTS,
    ALERTMANAGER_CONFIG,
    GRAFANA_DASHBOARD,
    PROMETHEUS_CONFIG,
    RECORDING_RULES,
)

CheckStatus = Literal["passed", "failed", "skipped"]

# Check names, as the report shows them.
PROMTOOL_CONFIG = "promtool check config"
PROMTOOL_RULES = "promtool check rules"
PROMTOOL_TESTS = "promtool test rules"
AMTOOL_CONFIG = "amtool check-config"
GRAFANA_PROVISIONING = "Grafana provisioning"
DASHBOARD_STRUCTURE = "dashboard structure"
PROMQL_PARSE = "PromQL parse"
METRIC_CONTRACT = "metric contract"

# The layout `mlmon init` writes, relative to the checked folder (render.py is the one source of the names).
RULES_DIR = Path(RECORDING_RULES).parent.as_posix()
TESTS_DIR = Path(ALERT_TESTS).parent.as_posix()
DASHBOARDS_DIR = Path(GRAFANA_DASHBOARD).parent.as_posix()
PROVISIONING_DIRS = {  # folder -> the list each provisioning file in it must hold
    "grafana/provisioning/datasources": "datasources",
    "grafana/provisioning/dashboards": "providers",
}

GRAFANA_GRID_COLUMNS = 24
GRAFANA_MAX_UID_LENGTH = 40
# Panels that hold no queries by nature.
PANELS_WITHOUT_QUERIES = frozenset({"row", "text"})
# A query is checked once per combination of its custom variables' options; this caps the combinations.
MAX_QUERY_VARIANTS = 64
# What a Grafana interval macro ($__rate_interval, $__interval, $__range, ${__range}, ...) stands for.
MACRO_DURATION = "5m"
MACRO_SECONDS = 300
MAX_DETAIL_LINES = 20


@dataclass(frozen=True)
class CheckResult:
    """One check of one file."""

    name: str  # e.g. "promtool check config", "dashboard structure", "PromQL parse", "metric contract"
    target: str  # the file checked, relative to the checked folder
    status: CheckStatus
    detail: str = ""  # failed: what is wrong; skipped: why it did not run


@dataclass(frozen=True)
class CheckReport:
    directory: str
    results: tuple[CheckResult, ...]

    @property
    def failed(self) -> bool:
        return any(result.status == "failed" for result in self.results)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(result for result in self.results if result.status == "failed")

    @property
    def skipped(self) -> tuple[CheckResult, ...]:
        return tuple(result for result in self.results if result.status == "skipped")


def check_output(directory: str | Path, require_tools: bool = False, timeout: float = 120.0) -> CheckReport:
    """Check every file of a folder ``mlmon init`` wrote; see the module docstring for what is checked.

    A missing ``promtool`` or ``amtool`` makes its checks skipped, or failed with ``require_tools`` (CI
    sets it, so that nothing real is silently left out). ``timeout`` is the seconds each tool run may take.
    Raises :class:`MlmonError` when ``directory`` does not exist or holds none of the generated files.
    """
    root = Path(directory)
    _require_generated_folder(root)
    tools = _ToolRunner(require_tools, timeout)
    known = known_metrics(root)
    results = [
        _check_prometheus_config(root, tools),
        *_check_rule_files(root, tools),
        *_check_rule_tests(root, tools),
        _check_alertmanager_config(root, tools),
        *_check_provisioning(root),
        *_check_dashboards(root),
        *_check_rule_queries(root, known),
        *_check_dashboard_queries(root, known),
    ]
    return CheckReport(str(root), tuple(results))


def _require_generated_folder(root: Path) -> None:
    hint = "run `mlmon init` to generate the files, or pass the folder it wrote them to"
    if not root.is_dir():
        raise MlmonError(f"{root} does not exist or is not a folder", hint)
    expected = [
        root / PROMETHEUS_CONFIG,
        root / ALERTMANAGER_CONFIG,
        *_yaml_files(root / RULES_DIR),
        *_yaml_files(root / TESTS_DIR),
        *(path for folder in PROVISIONING_DIRS for path in _yaml_files(root / folder)),
        *_json_files(root / DASHBOARDS_DIR),
    ]
    if not any(path.is_file() for path in expected):
        raise MlmonError(
            f"{root} holds none of the files mlmon generates ({PROMETHEUS_CONFIG}, {ALERTMANAGER_CONFIG}, "
            f"{RULES_DIR}/*.yml, {DASHBOARDS_DIR}/*.json, ...)",
            hint,
        )


def _yaml_files(folder: Path) -> list[Path]:
    return sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")]) if folder.is_dir() else []


def _json_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _missing(name: str, target: str) -> CheckResult:
    return CheckResult(name, target, "failed", f"missing: `mlmon init` writes {target}; run it again")


def _outcome(name: str, target: str, problems: Sequence[str]) -> CheckResult:
    """Passed without problems, otherwise failed with the problems one per line."""
    if not problems:
        return CheckResult(name, target, "passed")
    return CheckResult(name, target, "failed", "\n".join(_capped(problems)))


def _capped(lines: Sequence[str]) -> list[str]:
    if len(lines) <= MAX_DETAIL_LINES:
        return list(lines)
    return [*lines[:MAX_DETAIL_LINES], f"... and {len(lines) - MAX_DETAIL_LINES} more"]


# ------------------------------------------------------------------------------------------------------------
# promtool and amtool


@dataclass(frozen=True)
class _Tool:
    name: str
    install_hint: str


PROMTOOL = _Tool("promtool", "on Debian: apt-get install prometheus")
AMTOOL = _Tool("amtool", "on Debian: apt-get install prometheus-alertmanager")


@dataclass(frozen=True)
class _ToolRunner:
    require_tools: bool
    timeout: float

    def run(self, name: str, target: str, tool: _Tool, args: Sequence[str], cwd: Path) -> CheckResult:
        """Run ``tool`` without a shell; its exit code decides, its output (trimmed) explains."""
        executable = shutil.which(tool.name)
        if executable is None:
            status: CheckStatus = "failed" if self.require_tools else "skipped"
            return CheckResult(name, target, status, f"{tool.name} not found on PATH; {tool.install_hint}")
        try:
            completed = subprocess.run(
                [executable, *args],
                cwd=cwd,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return CheckResult(
                name, target, "failed", f"{tool.name} did not finish within {self.timeout:g} s"
            )
        except OSError as exc:
            return CheckResult(name, target, "failed", f"cannot run {executable}: {exc}")
        if completed.returncode == 0:
            return CheckResult(name, target, "passed")
        detail = _tool_output(completed.stdout + "\n" + completed.stderr)
        return CheckResult(
            name, target, "failed", detail or f"{tool.name} exited with {completed.returncode}"
        )


def _tool_output(text: str) -> str:
    """What a tool said about the problem, without its progress lines ("Checking ...", "SUCCESS") and
    without the repetitions of ``promtool test rules``, which reports a broken rule file once per test."""
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if "FAILED:" in line:  # "Checking 'x'  FAILED: undefined receiver" -> the reason
            line = line.split("FAILED:", 1)[1].strip()
        noise = line.startswith(
            ("Checking ", "SUCCESS", "Unit Testing:", "amtool: error: failed to validate")
        )
        if line and not noise and line not in lines:
            lines.append(line)
    return "\n".join(_capped(lines))


def _check_prometheus_config(root: Path, tools: _ToolRunner) -> CheckResult:
    if not (root / PROMETHEUS_CONFIG).is_file():
        return _missing(PROMTOOL_CONFIG, PROMETHEUS_CONFIG)
    # Run from the folder, so that promtool names files as the report does.
    return tools.run(
        PROMTOOL_CONFIG, PROMETHEUS_CONFIG, PROMTOOL, ["check", "config", PROMETHEUS_CONFIG], root
    )


def _check_rule_files(root: Path, tools: _ToolRunner) -> list[CheckResult]:
    files = _yaml_files(root / RULES_DIR)
    if not files:
        return [_missing(PROMTOOL_RULES, f"{RULES_DIR}/*.yml")]
    # Without --lint-fatal, promtool reports duplicate rules but exits 0.
    return [
        tools.run(
            PROMTOOL_RULES,
            _relative(root, path),
            PROMTOOL,
            ["check", "rules", "--lint-fatal", path.name],
            path.parent,
        )
        for path in files
    ]


def _check_rule_tests(root: Path, tools: _ToolRunner) -> list[CheckResult]:
    files = _yaml_files(root / TESTS_DIR)
    if not files:
        return [_missing(PROMTOOL_TESTS, f"{TESTS_DIR}/*.yml")]
    # The test files name their rule files relative to their own folder (../rules/...).
    return [
        tools.run(PROMTOOL_TESTS, _relative(root, path), PROMTOOL, ["test", "rules", path.name], path.parent)
        for path in files
    ]


def _check_alertmanager_config(root: Path, tools: _ToolRunner) -> CheckResult:
    if not (root / ALERTMANAGER_CONFIG).is_file():
        return _missing(AMTOOL_CONFIG, ALERTMANAGER_CONFIG)
    return tools.run(AMTOOL_CONFIG, ALERTMANAGER_CONFIG, AMTOOL, ["check-config", ALERTMANAGER_CONFIG], root)


# ------------------------------------------------------------------------------------------------------------
# Grafana provisioning and dashboard structure


class _Unreadable(Exception):
    """A file that does not parse; its message says why."""


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _Unreadable(f"cannot read as YAML: {exc}") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _Unreadable(f"cannot read as JSON: {exc}") from None


def _check_provisioning(root: Path) -> list[CheckResult]:
    results = []
    for folder, list_key in PROVISIONING_DIRS.items():
        files = _yaml_files(root / folder)
        if not files:
            results.append(_missing(GRAFANA_PROVISIONING, f"{folder}/*.yml"))
        for path in files:
            try:
                problems = _provisioning_problems(_read_yaml(path), list_key)
            except _Unreadable as exc:
                problems = [str(exc)]
            results.append(_outcome(GRAFANA_PROVISIONING, _relative(root, path), problems))
    return results


def _provisioning_problems(document: Any, list_key: str) -> list[str]:
    if not isinstance(document, dict):
        return ["is not a YAML mapping"]
    problems = []
    if document.get("apiVersion") != 1:
        problems.append(
            f"apiVersion is {document.get('apiVersion')!r}; Grafana reads provisioning apiVersion 1"
        )
    if not isinstance(document.get(list_key), list):
        problems.append(f"has no {list_key} list")
    return problems


def _check_dashboards(root: Path) -> list[CheckResult]:
    files = _json_files(root / DASHBOARDS_DIR)
    if not files:
        return [_missing(DASHBOARD_STRUCTURE, f"{DASHBOARDS_DIR}/*.json")]
    results = []
    for path in files:
        try:
            problems = dashboard_problems(_read_json(path))
        except _Unreadable as exc:
            problems = [str(exc)]
        results.append(_outcome(DASHBOARD_STRUCTURE, _relative(root, path), problems))
    return results


def dashboard_problems(dashboard: Any) -> list[str]:
    """What keeps a dashboard (parsed JSON) from loading in Grafana as generated, one sentence each; empty
    when it is fine: identity (uid, title, schemaVersion), panel ids, the panel grid, a query in every
    panel, and the data source variable that every query must follow."""
    if not isinstance(dashboard, dict):
        return ["is not a JSON object"]
    problems = _identity_problems(dashboard)
    top_level = [p for p in dashboard.get("panels") or [] if isinstance(p, dict)]
    if not top_level:
        problems.append("has no panels")
    panels = _all_panels(dashboard)
    problems += _panel_id_problems(panels)
    problems += _grid_problems(top_level)
    problems += [problem for panel in panels for problem in _target_problems(panel)]
    problems += _datasource_problems(dashboard, panels)
    return problems


def _identity_problems(dashboard: Mapping[str, Any]) -> list[str]:
    problems = []
    uid = dashboard.get("uid")
    if not isinstance(uid, str) or not uid:
        problems.append("has no uid")
    elif len(uid) > GRAFANA_MAX_UID_LENGTH:
        problems.append(f"uid {uid!r} is {len(uid)} characters long; Grafana allows {GRAFANA_MAX_UID_LENGTH}")
    title = dashboard.get("title")
    if not isinstance(title, str) or not title.strip():
        problems.append("has no title")
    if not _is_int(dashboard.get("schemaVersion")):
        problems.append(f"schemaVersion is {dashboard.get('schemaVersion')!r}, not an integer")
    return problems


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _template_variables(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    templating = dashboard.get("templating")
    variables = templating.get("list") if isinstance(templating, dict) else None
    return [v for v in variables if isinstance(v, dict)] if isinstance(variables, list) else []


def _all_panels(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Top-level panels and the panels folded inside collapsed rows."""
    found = []
    for panel in dashboard.get("panels") or []:
        if isinstance(panel, dict):
            found.append(panel)
            found += [p for p in panel.get("panels") or [] if isinstance(p, dict)]
    return found


def _panel_name(panel: Mapping[str, Any]) -> str:
    return f"panel {panel.get('id')!r} {str(panel.get('title', ''))!r}"


def _panel_id_problems(panels: Sequence[Mapping[str, Any]]) -> list[str]:
    problems = []
    titles_by_id: dict[int, list[str]] = {}
    for panel in panels:
        if not _is_int(panel.get("id")):
            problems.append(f"{_panel_name(panel)} has no integer id")
        else:
            titles_by_id.setdefault(panel["id"], []).append(repr(str(panel.get("title", ""))))
    for panel_id, titles in titles_by_id.items():
        if len(titles) > 1:
            problems.append(f"panel id {panel_id} is used by {len(titles)} panels: {', '.join(titles)}")
    return problems


@dataclass(frozen=True)
class _Box:
    name: str
    x: int
    y: int
    w: int
    h: int

    def overlaps(self, other: _Box) -> bool:
        return (
            self.x < other.x + other.w
            and other.x < self.x + self.w
            and self.y < other.y + other.h
            and other.y < self.y + self.h
        )

    def __str__(self) -> str:
        return f"{self.name} (x={self.x} y={self.y} w={self.w} h={self.h})"


def _grid_problems(panels: Sequence[Mapping[str, Any]]) -> list[str]:
    """Positions on Grafana's 24-column grid: Grafana moves panels that overlap or stick out, so the
    dashboard would not look as generated."""
    problems: list[str] = []
    boxes: list[_Box] = []
    for panel in panels:
        grid = panel.get("gridPos")
        if not isinstance(grid, dict) or not all(_is_int(grid.get(k)) for k in "xywh"):
            problems.append(f"{_panel_name(panel)} has no gridPos with integer x, y, w, h")
            continue
        box = _Box(_panel_name(panel), grid["x"], grid["y"], grid["w"], grid["h"])
        if box.x < 0 or box.y < 0 or box.w < 1 or box.h < 1 or box.x + box.w > GRAFANA_GRID_COLUMNS:
            problems.append(f"{box} is off the {GRAFANA_GRID_COLUMNS}-column grid")
            continue
        problems += [f"{box} overlaps {earlier}" for earlier in boxes if box.overlaps(earlier)]
        boxes.append(box)
    return problems


_NOT_THE_VARIABLE = "not the dashboard's datasource variable"


def _refers_to(datasource: Any, variables: Iterable[str]) -> bool:
    references = {f"${name}" for name in variables} | {f"${{{name}}}" for name in variables}
    uid = datasource.get("uid") if isinstance(datasource, dict) else datasource
    return uid in references


def _show(datasource: Any) -> str:
    return json.dumps(datasource, ensure_ascii=False)


def _datasource_problems(dashboard: Mapping[str, Any], panels: Sequence[Mapping[str, Any]]) -> list[str]:
    """Panels, their targets and query variables must use the datasource variable, so that picking another
    Prometheus at the top of the dashboard switches every query, not just some."""
    variables = {str(v.get("name")) for v in _template_variables(dashboard) if v.get("type") == "datasource"}
    if not variables:
        return [
            'has no templating variable of type "datasource", so its panels cannot follow the data source '
            "the user picks"
        ]
    problems = []
    for panel in panels:
        if panel.get("type") == "row":
            continue
        if not _refers_to(panel.get("datasource"), variables):
            problems.append(
                f"{_panel_name(panel)} uses data source {_show(panel.get('datasource'))}, {_NOT_THE_VARIABLE}"
            )
        for target in _targets(panel):
            # A target without a data source uses the panel's.
            if "datasource" in target and not _refers_to(target["datasource"], variables):
                problems.append(
                    f"{_panel_name(panel)} target {target.get('refId')} uses data source "
                    f"{_show(target['datasource'])}, {_NOT_THE_VARIABLE}"
                )
    for v in _template_variables(dashboard):
        if v.get("type") == "query" and "datasource" in v and not _refers_to(v["datasource"], variables):
            problems.append(
                f"variable ${v.get('name')} uses data source {_show(v['datasource'])}, {_NOT_THE_VARIABLE}"
            )
    return problems


def _targets(panel: Mapping[str, Any]) -> list[dict[str, Any]]:
    targets = panel.get("targets")
    return [t for t in targets if isinstance(t, dict)] if isinstance(targets, list) else []


def _target_problems(panel: Mapping[str, Any]) -> list[str]:
    if panel.get("type") in PANELS_WITHOUT_QUERIES:
        return []
    if not any(isinstance(t.get("expr"), str) and t["expr"].strip() for t in _targets(panel)):
        return [f"{_panel_name(panel)} has no query (no target with an expr)"]
    return []


# ------------------------------------------------------------------------------------------------------------
# PromQL: what an expression selects


_METRIC_NAMES_REGEX = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?:\|[a-zA-Z_:][a-zA-Z0-9_:]*)*")


def selected_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression selects, from every vector and range selector in it.

    A selector that does not pin its metric down to names (``{job="x"}``, ``{__name__=~"mlmon_.*"}``) is
    returned as its own text, so that a check against a list of names reports it rather than lets it pass.
    Raises ``ValueError`` with the parser's message when ``expr`` is not valid PromQL.

    >>> sorted(selected_metrics('sum(rate(mlmon_requests_total[5m])) / on () group_left up'))
    ['mlmon_requests_total', 'up']
    """
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.update(_selector_names(node))

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return names


def _selector_names(selector: promql_parser.VectorSelector) -> set[str]:
    if selector.name:
        return {selector.name}
    for matcher in selector.matchers.matchers:
        if matcher.name != "__name__":
            continue
        if matcher.op == promql_parser.MatchOp.Equal:
            return {matcher.value}
        if matcher.op == promql_parser.MatchOp.Re and _METRIC_NAMES_REGEX.fullmatch(matcher.value):
            return set(matcher.value.split("|"))
    return {str(selector)}


def unknown_metrics(expr: str, known: Iterable[str]) -> set[str]:
    """The metrics ``expr`` selects that are not in ``known``. Raises ``ValueError`` if it does not parse.

    >>> unknown_metrics("mlmon_typo_total / up", {"up"})
    {'mlmon_typo_total'}
    """
    return selected_metrics(expr) - set(known)


def known_metrics(directory: str | Path) -> frozenset[str]:
    """The names rules and dashboards in ``directory`` may select: the metric contract, Prometheus' own
    series, and every series a recording rule in ``directory``'s rule files records."""
    recorded = set()
    for path in _yaml_files(Path(directory) / RULES_DIR):
        try:
            document = _read_yaml(path)
        except _Unreadable:
            continue  # reported by the checks of that file
        recorded |= {str(rule["record"]) for _, rule in _rules(document) if rule.get("record")}
    return contract.contract_series_names() | contract.PROMETHEUS_BUILTIN_SERIES | frozenset(recorded)


@dataclass(frozen=True)
class _Query:
    where: str  # the rule or panel it comes from, for the report
    expr: str  # PromQL as Prometheus receives it
    note: str = ""  # added to a parse error, e.g. which dashboard variables it does not define


def _query_results(target: str, queries: Sequence[_Query], known: frozenset[str]) -> list[CheckResult]:
    """A "PromQL parse" and a "metric contract" result for the queries of one file."""
    parse_errors, outside_contract = [], []
    for query in queries:
        try:
            unknown = unknown_metrics(query.expr, known)
        except ValueError as exc:
            parse_errors.append(f"{query.where}: {exc}{query.note} in: {_one_line(query.expr)}")
            continue
        if unknown:
            outside_contract.append(f"{query.where} selects {', '.join(sorted(unknown))}")
    if outside_contract:
        outside_contract.append(
            "these are neither in the metric contract (mlmon.contract) "
            f"nor recorded by a rule in {RULES_DIR}/"
        )
    return [_outcome(PROMQL_PARSE, target, parse_errors), _outcome(METRIC_CONTRACT, target, outside_contract)]


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _unreadable_results(target: str, error: _Unreadable) -> list[CheckResult]:
    return [
        CheckResult(PROMQL_PARSE, target, "failed", str(error)),
        CheckResult(
            METRIC_CONTRACT, target, "skipped", "the file does not parse, so its queries were not checked"
        ),
    ]


# ------------------------------------------------------------------------------------------------------------
# Queries in rule files


def _rules(document: Any) -> list[tuple[str, dict[str, Any]]]:
    """(group name, rule) for every rule of a rule file; malformed parts are promtool's to report."""
    groups = document.get("groups") if isinstance(document, dict) else None
    found = []
    for group in groups if isinstance(groups, list) else []:
        if isinstance(group, dict) and isinstance(group.get("rules"), list):
            found += [(str(group.get("name")), rule) for rule in group["rules"] if isinstance(rule, dict)]
    return found


def _rule_queries(document: Any) -> list[_Query]:
    queries = []
    for group, rule in _rules(document):
        kind = "alert" if "alert" in rule else "record"
        if rule.get("expr") is not None:
            queries.append(_Query(f"group {group!r} {kind} {str(rule.get(kind))!r}", str(rule["expr"])))
    return queries


def _check_rule_queries(root: Path, known: frozenset[str]) -> list[CheckResult]:
    results = []
    for path in _yaml_files(root / RULES_DIR):
        try:
            queries = _rule_queries(_read_yaml(path))
        except _Unreadable as exc:
            results += _unreadable_results(_relative(root, path), exc)
            continue
        results += _query_results(_relative(root, path), queries, known)
    return results


# ------------------------------------------------------------------------------------------------------------
# Queries in dashboards, with Grafana's variables substituted

# Grafana's own pattern for variable references: $name, [[name]] and ${name}, ${name:format}, ${name.field}.
_GRAFANA_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::\w+)?\]\]|\$\{(\w+)(?:\.[^:^}]+)?(?::[^}]+)?\}")
_LABEL_VALUES = re.compile(r"\s*label_values\s*\((?P<args>.*)\)\s*", re.DOTALL)
_QUERY_RESULT = re.compile(r"\s*query_result\s*\((?P<expr>.*)\)\s*", re.DOTALL)
_LABEL_NAME = re.compile(r"\s*[a-zA-Z_][a-zA-Z0-9_]*\s*")


@dataclass(frozen=True)
class _Variable:
    name: str
    values: tuple[str, ...]  # the first stands in for the variable; all are tried when `every_value`
    every_value: bool  # custom and interval variables can pick another series or range with each option


def _dashboard_variables(dashboard: Mapping[str, Any]) -> dict[str, _Variable]:
    variables = {}
    for v in _template_variables(dashboard):
        kind, name = v.get("type"), str(v.get("name"))
        if kind in ("custom", "interval"):
            variables[name] = _Variable(name, _options(v), every_value=True)
        elif kind == "query":  # the options come from Prometheus at load time; `.*` matches them all
            variables[name] = _Variable(name, (".*",), every_value=False)
        elif kind in ("constant", "textbox"):
            current = v.get("current")
            value = current.get("value") if isinstance(current, dict) else None
            variables[name] = _Variable(
                name, (str(value if value is not None else v.get("query", "")),), False
            )
        elif kind == "datasource":
            variables[name] = _Variable(name, (str(v.get("query", "prometheus")),), every_value=False)
    return variables


def _options(variable: Mapping[str, Any]) -> tuple[str, ...]:
    """The values of a custom variable: its options, or else its comma-separated query ("text : value")."""
    options = variable.get("options")
    values = [
        str(o["value"]) for o in options or [] if isinstance(o, dict) and o.get("value") not in (None, "")
    ]
    query = variable.get("query")
    if not values and isinstance(query, str):
        values = [part.split(" : ", 1)[-1].strip() for part in re.split(r"(?<!\\),", query) if part.strip()]
    # "$__all" and "auto" are Grafana's own choices, not values; a variable without values expands to "".
    return tuple(v for v in values if v not in ("$__all", "auto")) or ("",)


def _reference_name(match: re.Match[str]) -> str:
    return next(group for group in match.groups() if group is not None)


def _macro_value(name: str) -> str:
    """What Grafana's built-in ``$__...`` variables stand for: a duration, or seconds and milliseconds."""
    if name.endswith("_ms"):
        return str(MACRO_SECONDS * 1000)
    if name.endswith("_s"):
        return str(MACRO_SECONDS)
    return MACRO_DURATION


def _expand(text: str, variables: Mapping[str, _Variable]) -> list[tuple[str, str]]:
    """``text`` with the dashboard's variables substituted, as (which options were used, text); once per
    combination of the options of the custom variables it uses, since each option may select another
    recorded series (``$window``) that must exist too."""
    used = dict.fromkeys(_reference_name(m) for m in _GRAFANA_VARIABLE.finditer(text))
    varying = [variables[n] for n in used if n in variables and variables[n].every_value]
    choices = [[(v.name, value) for value in v.values] for v in varying]
    variants = []
    for combination in itertools.islice(itertools.product(*choices), MAX_QUERY_VARIANTS):
        chosen = dict(combination)

        def substitute(match: re.Match[str], chosen: Mapping[str, str] = chosen) -> str:
            name = _reference_name(match)
            if name.startswith("__"):
                return _macro_value(name)
            if name in chosen:
                return chosen[name]
            if name in variables:
                return variables[name].values[0]
            return match.group(0)  # Grafana leaves what it does not know, like $1 in label_replace

        label = ", ".join(f"${name}={value}" for name, value in chosen.items())
        variants.append((label, _GRAFANA_VARIABLE.sub(substitute, text)))
    return variants


def _undefined_note(text: str, variables: Mapping[str, _Variable]) -> str:
    undefined = sorted(
        {
            f"${name}"
            for name in map(_reference_name, _GRAFANA_VARIABLE.finditer(text))
            if name not in variables and not name.startswith("__") and not name.isdigit()
        }
    )
    return f" (the dashboard defines no variable {', '.join(undefined)})" if undefined else ""


def _variant_queries(where: str, text: str, variables: Mapping[str, _Variable]) -> list[_Query]:
    note = _undefined_note(text, variables)
    return [
        _Query(f"{where} with {label}" if label else where, expr, note)
        for label, expr in _expand(text, variables)
    ]


def _panel_queries(dashboard: Mapping[str, Any], variables: Mapping[str, _Variable]) -> list[_Query]:
    queries = []
    for panel in _all_panels(dashboard):
        for target in _targets(panel):
            expr = target.get("expr")
            if isinstance(expr, str) and expr.strip():
                where = f"panel {str(panel.get('title', ''))!r} target {target.get('refId')}"
                queries += _variant_queries(where, expr, variables)
    return queries


def _variable_queries(dashboard: Mapping[str, Any], variables: Mapping[str, _Variable]) -> list[_Query]:
    """The PromQL inside query variables: label_values(SELECTOR, label) selects a metric, which must exist;
    query_result(EXPR) runs a query. Grafana's other functions (label_names, metrics) name no series."""
    queries = []
    for v in _template_variables(dashboard):
        query = v.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        if v.get("type") != "query" or not isinstance(text, str):
            continue
        where = f"variable ${v.get('name')}"
        if match := _LABEL_VALUES.fullmatch(text):
            selector, _, label = match["args"].rpartition(",")
            if selector and _LABEL_NAME.fullmatch(label):
                queries += _variant_queries(where, selector, variables)
        elif match := _QUERY_RESULT.fullmatch(text):
            queries += _variant_queries(where, match["expr"], variables)
    return queries


def _check_dashboard_queries(root: Path, known: frozenset[str]) -> list[CheckResult]:
    results = []
    for path in _json_files(root / DASHBOARDS_DIR):
        try:
            dashboard = _read_json(path)
        except _Unreadable as exc:
            results += _unreadable_results(_relative(root, path), exc)
            continue
        if not isinstance(dashboard, dict):
            results += _unreadable_results(_relative(root, path), _Unreadable("is not a JSON object"))
            continue
        variables = _dashboard_variables(dashboard)
        queries = _variable_queries(dashboard, variables) + _panel_queries(dashboard, variables)
        results += _query_results(_relative(root, path), queries, known)
    return results
