"""The Grafana dashboard (deploy/grafana/nexus-ingestion.json) is importable anywhere, and every
metric it and the alert rules query exists: ours on /metrics after a real run (a POST worked by
a real Celery worker), Flower's in the Flower we pin."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import producer_body, wait_for
from tests.observability import (
    PROMETHEUS_SERIES,
    alert_rules,
    dashboard,
    dashboard_expressions,
    dashboard_panels,
    equal_matchers,
    metric_name,
    selectors,
)

# How a family of each type appears as series (prometheus_client's text exposition).
SERIES_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
}


def series_names(name: str, kind: str) -> set[str]:
    return {name + suffix for suffix in SERIES_SUFFIXES.get(kind, ("",))}


def flower_series() -> set[str]:
    """Every series name the pinned Flower's /metrics can serve (flower/events.py defines them;
    labelled series appear once Flower has seen a worker or a task)."""
    from flower.events import get_prometheus_metrics

    names: set[str] = set()
    for metric in vars(get_prometheus_metrics()).values():
        for family in metric.describe():
            names |= series_names(family.name, family.type)
    return names


def test_the_dashboard_is_importable_with_any_prometheus_datasource() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}

    assert board["id"] is None and board["uid"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = list(dashboard_panels())
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == "${datasource}", variable["name"]


def test_the_dashboard_shows_what_operations_watch() -> None:
    expressions = dashboard_expressions()
    used = {metric_name(s) for expr in expressions for s in selectors(expr)}

    assert {
        "nexus_producer_posts_total",  # intake by outcome and tenant
        "nexus_jobs",  # queue depth
        "nexus_oldest_pending_age_seconds",
        "nexus_extractions_total",  # extraction rate
        "nexus_pipeline_latency_seconds_bucket",  # p50 / p95
        "nexus_extraction_latency_seconds_bucket",
        "nexus_extraction_failures_total",  # errors by category
        "nexus_extraction_tokens_total",
        "nexus_extraction_cost_usd_total",
        "nexus_extractor_paused",  # breaker
        "nexus_workers_up",  # heartbeats
        "flower_worker_online",
    } <= used
    assert any("tenant" in expr and "nexus_producer_posts_total" in expr for expr in expressions)
    assert any("histogram_quantile(0.95" in expr for expr in expressions)
    assert any("histogram_quantile(0.5" in expr for expr in expressions)


def scrape(client: Any) -> dict[str, list[dict[str, str]]]:
    """Series name -> the label sets it has on /metrics; a family with no samples yet still
    names its series (a counter's _total, a histogram's _bucket, _sum and _count)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    found: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for name in series_names(family.name, family.type):
            found.setdefault(name, [])
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample.labels)
    return found


@pytest.mark.redis
def test_every_metric_the_dashboard_and_the_rules_query_exists_after_a_real_run(celery_worker, api, client):
    accepted = api.post("/api/nexus/producer", producer_body(), format="json")
    assert accepted.status_code == 202
    job_url = f"/api/nexus/jobs/{accepted.json()['queueId']}"
    wait_for(lambda: api.get(job_url).json()["status"] == "completed")
    # A refused POST too, so the rejection series the dashboard selects exist.
    assert api.post("/api/nexus/producer", {"messages": []}, format="json").status_code == 400
    ours = scrape(client)
    flowers = flower_series()

    for expr in dashboard_expressions() + [rule["expr"] for rule in alert_rules()]:
        assert selectors(expr), f"{expr} selects no series"
        for selector in selectors(expr):
            name = metric_name(selector)
            if name in PROMETHEUS_SERIES:
                continue
            if name.startswith("flower_"):
                assert name in flowers, f"{name} is not one of Flower's metrics ({expr})"
                continue
            assert name in ours, f"{name} is not on /metrics ({expr})"
            wanted = equal_matchers(selector)
            if wanted:
                assert any(wanted.items() <= labels.items() for labels in ours[name]), (
                    f"no {name} series with {wanted} on /metrics ({expr})"
                )
