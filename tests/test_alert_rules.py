"""The Prometheus alert rules (deploy/prometheus/alerts.yml): promtool accepts them and their
unit tests pass, every rule says why it matters and what to do, and the thresholds they compare
with are the app's settings as /metrics exports them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.observability import (
    ALERTS,
    ALERTS_TEST,
    PROMETHEUS_DIR,
    SCRAPE_CONFIG,
    alert_rules,
    equal_matchers,
    load_yaml,
    metric_name,
    scrape_job_names,
    selectors,
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Debian's `prometheus` package carries promtool; .ci/run installs it."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool not installed (apt-get install prometheus; .ci/run does)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)


def test_promtool_check_rules_accepts_every_rule() -> None:
    result = promtool("check", "rules", str(ALERTS))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_check_config_accepts_the_compose_scrape_config() -> None:
    result = promtool("check", "config", str(SCRAPE_CONFIG))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = promtool("test", "rules", str(ALERTS_TEST))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("change", "before", "after"),
    [
        ("a threshold compared with >=", '> on (job, instance) nexus_alert_threshold{alert="queue_length"}',
         '>= on (job, instance) nexus_alert_threshold{alert="queue_length"}'),
        ("a shorter for:", "for: 10m", "for: 5m"),
        ("another severity", "severity: critical", "severity: warning"),
    ],
)  # fmt: skip
def test_the_unit_tests_catch_a_changed_rule(tmp_path: Path, change: str, before: str, after: str) -> None:
    rules = ALERTS.read_text()
    assert before in rules, change
    (tmp_path / ALERTS.name).write_text(rules.replace(before, after, 1))
    shutil.copy(ALERTS_TEST, tmp_path / ALERTS_TEST.name)

    result = promtool("test", "rules", str(tmp_path / ALERTS_TEST.name))

    assert result.returncode != 0, change
    assert "FAILED" in result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases = [case for test in load_yaml(ALERTS_TEST)["tests"] for case in test["alert_rule_test"]]
    for rule in alert_rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case.get("exp_alerts") for case in mine), f"{rule['alert']}: no firing case"
        assert any(not case.get("exp_alerts") for case in mine), f"{rule['alert']}: no quiet case"


def test_every_rule_has_a_severity_a_reason_and_a_runbook() -> None:
    for rule in alert_rules():
        name, annotations = rule["alert"], rule.get("annotations", {})
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        for key in ("summary", "description", "runbook"):
            assert annotations.get(key, "").strip(), f"{name}: no {key}"
        # A runbook names at least one command to run.
        assert re.search(r"`[^`]+`", annotations["runbook"]), f"{name}: runbook names no command"


def test_the_rules_cover_the_spec_thresholds_the_breaker_workers_and_scrapes() -> None:
    used = {metric_name(s) for rule in alert_rules() for s in selectors(rule["expr"])}

    assert {
        "nexus_jobs",
        "nexus_oldest_pending_age_seconds",
        "nexus_extraction_error_rate",
        "nexus_pipeline_latency_p95_seconds",
        "nexus_alert_threshold",
        "nexus_extractor_paused",
        "nexus_workers_up",
        "flower_worker_online",
        "nexus_ledger_up",
        "up",
    } <= used


def test_the_rules_select_the_jobs_that_prometheus_yml_scrapes() -> None:
    jobs = scrape_job_names()
    for rule in alert_rules():
        for selector in selectors(rule["expr"]):
            for matcher in selector.matchers.matchers:
                if matcher.name == "job":
                    assert matcher.value in jobs, rule["alert"]


def scrape(client) -> dict[tuple[str, str], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, sample.labels.get("alert", "")): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


@pytest.mark.django_db
def test_metrics_export_the_configured_alert_thresholds(client, settings) -> None:
    settings.NEXUS = {
        **settings.NEXUS,
        "ALERT_QUEUE_LENGTH": 42,
        "ALERT_OLDEST_PENDING_SECONDS": 120.0,
        "ALERT_ERROR_RATE": 0.2,
        "ALERT_P95_LATENCY_SECONDS": 7.5,
    }

    samples = scrape(client)

    assert samples[("nexus_alert_threshold", "queue_length")] == 42
    assert samples[("nexus_alert_threshold", "oldest_pending")] == 120
    assert samples[("nexus_alert_threshold", "error_rate")] == 0.2
    assert samples[("nexus_alert_threshold", "p95_latency")] == 7.5


@pytest.mark.django_db
def test_every_exported_threshold_has_a_rule_and_every_rule_threshold_is_exported(client) -> None:
    exported = {alert for name, alert in scrape(client) if name == "nexus_alert_threshold"}
    compared = {
        equal_matchers(selector)["alert"]
        for rule in alert_rules()
        for selector in selectors(rule["expr"])
        if metric_name(selector) == "nexus_alert_threshold"
    }

    assert exported == {"queue_length", "oldest_pending", "error_rate", "p95_latency"}
    assert compared == exported


def test_the_rules_file_is_the_one_prometheus_yml_loads() -> None:
    rule_files = load_yaml(SCRAPE_CONFIG)["rule_files"]

    assert [PROMETHEUS_DIR / path for path in rule_files] == [ALERTS]
