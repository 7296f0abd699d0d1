"""Alert thresholds: each crossing is one structured WARNING, each recovery one INFO line."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from ingestion.models import Extraction, Job
from ingestion.ops.alerts import alerts_check

pytestmark = [pytest.mark.redis, pytest.mark.django_db]


@pytest.fixture
def low_thresholds(settings):
    settings.NEXUS = {**settings.NEXUS, "ALERT_QUEUE_LENGTH": 1, "ALERT_OLDEST_PENDING_SECONDS": 60.0}


def pending(n: int, age_s: float = 0) -> list[Job]:
    at = timezone.now() - timedelta(seconds=age_s)
    return [Job.objects.create(session_id=f"al-{i}", transcript_hash=str(i), revised_at=at) for i in range(n)]


def alert_lines(caplog) -> list[logging.LogRecord]:
    lines = [r for r in caplog.records if r.name == "ingestion.ops.alerts" and hasattr(r, "alert")]
    caplog.clear()
    return lines


def test_crossing_is_logged_once_with_figure_and_threshold_then_cleared(clean_cache, low_thresholds, caplog):
    caplog.set_level(logging.INFO, logger="ingestion.ops.alerts")
    jobs = pending(3)

    assert alerts_check() == ["queue_length"]
    (crossed,) = alert_lines(caplog)
    assert (crossed.levelno, crossed.alert, crossed.value, crossed.threshold) == (
        logging.WARNING,
        "queue_length",
        3,
        1,
    )

    assert alerts_check() == ["queue_length"]
    assert alert_lines(caplog) == []  # still crossed: not repeated

    Job.objects.filter(id__in=[j.id for j in jobs]).delete()
    assert alerts_check() == []
    (cleared,) = alert_lines(caplog)
    assert (cleared.levelno, cleared.alert, cleared.value) == (logging.INFO, "queue_length", 0)
    assert "cleared" in cleared.getMessage()

    assert alerts_check() == []
    assert alert_lines(caplog) == []


def test_each_threshold_is_reported_on_its_own(clean_cache, low_thresholds, caplog):
    caplog.set_level(logging.INFO, logger="ingestion.ops.alerts")
    (job,) = pending(1, age_s=120)
    Extraction.objects.create(
        job=job, revision=1, outcome="failed", error_category="timeout", extractor="claude"
    )

    crossed = alerts_check()

    assert crossed == ["oldest_pending", "error_rate"]
    lines = {r.alert: r for r in alert_lines(caplog)}
    assert lines.keys() == {"oldest_pending", "error_rate"}
    assert lines["oldest_pending"].threshold == 60.0 and lines["oldest_pending"].value >= 120
    assert (lines["error_rate"].value, lines["error_rate"].threshold) == (1.0, 0.05)


def test_crossed_alert_makes_health_degraded(clean_cache, low_thresholds, api):
    pending(2)

    body = api.get("/api/nexus/producer").json()

    assert body["status"] == "degraded"
    assert "queue_length" in body["alerts"]


def test_p95_latency_alert_follows_the_slowest_twentieth_of_the_last_hour(clean_cache, caplog):
    caplog.set_level(logging.INFO, logger="ingestion.ops.alerts")
    job = Job.objects.create(session_id="al-p95", transcript_hash="p", revised_at=timezone.now())

    def extracted(n: int, latency_ms: int) -> None:
        start = Extraction.objects.count()
        for i in range(n):
            Extraction.objects.create(
                job=job, revision=start + i + 1, outcome="ok", extractor="offline",
                pipeline_latency_ms=latency_ms,
            )  # fmt: skip

    extracted(19, 200)
    extracted(1, 9000)  # one slow POST in twenty: under the p95
    assert "p95_latency" not in alerts_check()

    extracted(2, 9000)  # now three in twenty-two: the p95 is a slow one
    assert "p95_latency" in alerts_check()
    lines = {r.alert: r for r in alert_lines(caplog)}
    assert (lines["p95_latency"].levelno, lines["p95_latency"].value, lines["p95_latency"].threshold) == (
        logging.WARNING,
        9.0,
        5.0,
    )

    Extraction.objects.update(created_at=timezone.now() - timedelta(hours=2))  # out of the window
    assert alerts_check() == []
    (cleared,) = alert_lines(caplog)
    assert (cleared.levelno, cleared.alert) == (logging.INFO, "p95_latency")
