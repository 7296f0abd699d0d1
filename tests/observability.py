"""The deploy/ observability files as the tests read them: the alert rules, the Grafana dashboard,
the scrape config, and the PromQL selectors their expressions contain (parsed with
promql-parser, a real PromQL parser, so a metric name is never guessed from a regex)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
SCRAPE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "nexus-ingestion.json"

# Series that Prometheus itself writes for every target, not any exporter's.
PROMETHEUS_SERIES = {"up"}
# Labels a scrape adds to every series (not on /metrics itself).
TARGET_LABELS = {"job", "instance"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def scrape_job_names() -> set[str]:
    return {job["job_name"] for job in load_yaml(SCRAPE_CONFIG)["scrape_configs"]}


def dashboard_panels() -> Iterator[dict[str, Any]]:
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


# The dashboard's variables, replaced by values that PromQL accepts: the job variables by the
# job names of prometheus.yml (the rate window is long enough for a 1 s scrape interval too).
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$flower_job": "nexus-flower",
    "$job": "nexus-web",
}


def expand_grafana_variables(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and the variables' queries."""
    expressions = [
        expand_grafana_variables(target["expr"])
        for panel in dashboard_panels()
        for target in panel.get("targets", [])
    ]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            match = _LABEL_VALUES.match(variable["definition"])
            assert match, f"variable {variable['name']}: expected label_values(selector, label)"
            expressions.append(match["selector"])
    return expressions


def selectors(expr: str) -> list[Any]:
    """The vector selectors of a PromQL expression (those inside range selectors included)."""
    found: list[Any] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def metric_name(selector: Any) -> str:
    if selector.name:
        return str(selector.name)
    (name,) = [m.value for m in selector.matchers.matchers if m.name == "__name__"]
    return str(name)


def equal_matchers(selector: Any) -> dict[str, str]:
    """label=value matchers, other than the target labels a scrape adds."""
    return {
        m.name: m.value
        for m in selector.matchers.matchers
        if m.op == promql_parser.MatchOp.Equal and m.name not in TARGET_LABELS | {"__name__"}
    }
