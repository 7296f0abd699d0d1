"""A real Prometheus (Debian's `prometheus` package, which .ci/run installs with promtool) scrapes
a live server while a real worker completes a job, evaluates alerts.yml, and answers every
dashboard query: what promtool's static check cannot see (a vector match that fails on the real
label sets, a function applied to the wrong type) shows here as an evaluation error."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chaos.services import free_port
from tests.conftest import producer_body, wait_for
from tests.observability import (
    ALERTS,
    SCRAPE_CONFIG,
    alert_rules,
    dashboard_panels,
    expand_grafana_variables,
    load_yaml,
)

pytestmark = pytest.mark.redis


def api_get(base: str, path: str, **params: str) -> dict[str, Any]:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)  # type: ignore[no-any-return]
    except urllib.error.HTTPError as error:  # a bad query answers 400 with a JSON error
        return json.load(error)  # type: ignore[no-any-return]


@pytest.fixture
def prometheus(live_server: Any, tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed (apt-get install prometheus; .ci/run does)")
    config = load_yaml(SCRAPE_CONFIG)
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(ALERTS)]
    targets = {
        "nexus-web": live_server.url.removeprefix("http://"),
        "nexus-flower": f"127.0.0.1:{free_port()}",  # nothing listens: a failing scrape
    }
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("Prometheus did not start:\n" + (tmp_path / "prometheus.log").read_text()[-3000:])
        time.sleep(0.2)
    try:
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def series(base: str, expr: str) -> list[dict[str, Any]]:
    answer = api_get(base, "query", query=expr)
    assert answer["status"] == "success", f"{expr}: {answer.get('error')}"
    return answer["data"]["result"]  # type: ignore[no-any-return]


def instant(timestamp: str) -> datetime:
    """An RFC 3339 time from Prometheus (nanoseconds, Z) as a datetime."""
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", timestamp).replace("Z", "+00:00"))


def rules_by_name(base: str) -> dict[str, dict[str, Any]]:
    groups = api_get(base, "rules")["data"]["groups"]
    return {rule["name"]: rule for group in groups for rule in group["rules"]}


def test_prometheus_evaluates_the_rules_and_the_dashboard_on_a_real_scrape(celery_worker, api, prometheus):
    accepted = api.post("/api/nexus/producer", producer_body(), format="json")
    job_url = f"/api/nexus/jobs/{accepted.json()['queueId']}"
    wait_for(lambda: api.get(job_url).json()["status"] == "completed")
    assert api.post("/api/nexus/producer", {"messages": []}, format="json").status_code == 400
    # Two scrapes after the run, so a rate() over it has two samples.
    scraped = 'count_over_time(nexus_extractions_total{outcome="ok"}[1m]) >= 2'
    wait_for(lambda: series(prometheus, scraped), timeout=30)

    # Every rule evaluated again after that (same clock: Prometheus runs on this machine).
    since = datetime.now(UTC)

    def evaluated() -> dict[str, dict[str, Any]] | None:
        rules = rules_by_name(prometheus)
        done = all(instant(rule["lastEvaluation"]) > since for rule in rules.values())
        return rules if done and set(rules) == {r["alert"] for r in alert_rules()} else None

    rules = wait_for(evaluated, timeout=30)
    for name, rule in rules.items():
        assert rule["health"] == "ok", f"{name}: {rule.get('lastError')}"
    # The Flower target that nobody serves is a failing scrape; the in-process test worker runs
    # no heartbeat (celery's test controller sends no worker_ready), so NexusWorkersDown may be
    # on its way too. Nothing else: the queue drained, no call failed, the breaker is closed.
    active = {name for name, rule in rules.items() if rule["state"] != "inactive"}
    assert "NexusFlowerScrapeFailing" in active
    assert active <= {"NexusFlowerScrapeFailing", "NexusWorkersDown"}

    answered = {}
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            expr = expand_grafana_variables(target["expr"])
            answered[(panel["title"], target["legendFormat"])] = series(prometheus, expr)
    # A few that must have data after the run: the intake, the queue, the latency from the
    # histogram, the breaker, the heartbeat.
    for key in [
        ("Intake by outcome", "{{outcome}}"),
        ("Intake by tenant", "{{tenant}} {{outcome}}"),
        ("Queue depth", "threshold"),
        ("Latency p50 / p95", "pipeline p95"),
        ("Circuit breaker", "breaker"),
        ("Worker heartbeat", ""),
    ]:
        assert answered[key], f"{key}: no series"
