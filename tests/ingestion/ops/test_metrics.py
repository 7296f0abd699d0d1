"""/metrics and /api/nexus/metrics as a scraper and an operator see them, while jobs flow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from ingestion.dispatch import job_sweep
from ingestion.models import Job, JobStatus
from tests.conftest import producer_body, transcript, wait_for


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def posts(samples, outcome: str, reason: str = "", tenant: str = "default") -> float:
    return value(samples, "nexus_producer_posts_total", tenant=tenant, outcome=outcome, reason=reason)


@pytest.mark.redis
def test_metrics_change_as_jobs_flow_through_a_worker(celery_worker, client, api):
    before = scrape(client)

    body = producer_body(session_id="m-flow")
    assert api.post("/api/nexus/producer", body, format="json").status_code == 202
    wait_for(lambda: Job.objects.filter(session_id="m-flow", status=JobStatus.COMPLETED).exists())
    api.post("/api/nexus/producer", body, format="json")  # the same transcript again
    api.post("/api/nexus/producer", {"messages": [], "sessionId": "m-flow"}, format="json")
    after = scrape(client)

    assert posts(after, "accepted") - posts(before, "accepted") == 1
    assert posts(after, "duplicate") - posts(before, "duplicate") == 1
    assert posts(after, "rejected", "validation_error") - posts(before, "rejected", "validation_error") == 1
    assert value(after, "nexus_jobs", status="completed") == 1
    assert value(after, "nexus_jobs", status="pending") == 0
    assert value(after, "nexus_extractions_total", outcome="ok", extractor="offline") == 1
    assert value(after, "nexus_extractions_last_hour", outcome="ok") == 1
    assert value(after, "nexus_extraction_latency_seconds_count") == 1
    assert value(after, "nexus_pipeline_latency_seconds_count") == 1
    assert value(after, "nexus_pipeline_latency_seconds_bucket", le="+Inf") == 1
    assert value(after, "nexus_ledger_up") == 1


@pytest.mark.django_db(transaction=True)
def test_queue_failures_and_retries_are_counted(client):
    from ingestion.models import Extraction

    old = timezone.now() - timedelta(seconds=90)
    job = Job.objects.create(
        session_id="m-q", transcript_hash="x", revised_at=old, messages=transcript("Hola")
    )
    for category in ("rate_limited", "overloaded", "invalid_output"):
        Extraction.objects.create(
            job=job,
            revision=1,
            outcome="failed",
            error_category=category,
            extractor="claude",
            input_tokens=10,
        )

    samples = scrape(client)

    assert value(samples, "nexus_jobs", status="pending") == 1
    assert 89 <= value(samples, "nexus_oldest_pending_age_seconds") < 120
    assert value(samples, "nexus_extraction_failures_total", category="invalid_output") == 1
    assert value(samples, "nexus_extraction_retries_total") == 2
    assert value(samples, "nexus_extraction_tokens_total", kind="input") == 30
    assert value(samples, "nexus_extraction_error_rate") == 1.0
    assert value(samples, "nexus_alert_active", alert="error_rate") == 1


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_sweeper_redispatches_are_counted_across_processes(client, clean_cache):
    lost = timezone.now() - timedelta(minutes=5)
    for n in range(2):
        Job.objects.create(session_id=f"m-lost-{n}", transcript_hash="x", revised_at=lost, dispatched_at=lost)

    before = value(scrape(client), "nexus_sweeper_redispatches_total")
    assert job_sweep() == 2

    assert value(scrape(client), "nexus_sweeper_redispatches_total") - before == 2


@pytest.mark.django_db
def test_queue_metrics_json_is_for_staff_only(client, api):
    assert client.get("/api/nexus/metrics").status_code == 403
    user = get_user_model().objects.create_user("viewer", password="pw", is_staff=False)
    client.force_login(user)
    assert client.get("/api/nexus/metrics").status_code == 403


@pytest.mark.django_db
def test_queue_metrics_json_reports_the_ledger(client):
    now = timezone.now()
    Job.objects.create(session_id="j-1", transcript_hash="a", revised_at=now - timedelta(seconds=40))
    Job.objects.create(session_id="j-2", transcript_hash="b", revised_at=now - timedelta(seconds=10))
    Job.objects.create(
        session_id="j-3", transcript_hash="c", revised_at=now - timedelta(seconds=5),
        status=JobStatus.COMPLETED, processed_at=now - timedelta(seconds=3),
    )  # fmt: skip
    client.force_login(get_user_model().objects.create_superuser("ops", "o@example.test", "pw"))

    body = client.get("/api/nexus/metrics").json()

    assert body["queue_length"] == 2
    assert 39 <= body["oldest_pending_age_s"] < 60
    assert 9 <= body["newest_pending_age_s"] < 30
    assert body["totals"] == {"jobs": 3, "revisions": 3}
    assert body["by_status_24h"]["pending"] == {"count": 2, "avg_processing_s": None}
    assert body["by_status_24h"]["completed"]["count"] == 1
    assert body["by_status_24h"]["completed"]["avg_processing_s"] == pytest.approx(2.0, abs=0.1)
    assert body["error_rate"] == 0.0
    assert body["alerts"] == []


def test_request_counters_are_summed_over_processes_in_multiprocess_mode(tmp_path):
    """Two processes count into PROMETHEUS_MULTIPROC_DIR; a third process scrapes the sum."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    setup = "import django; django.setup(); from ingestion.ops import metrics; "
    for _ in range(2):
        subprocess.run(
            [sys.executable, "-c", setup + "metrics.record_post('stale')"], env=env, check=True, timeout=60
        )
    code = (
        setup + "from prometheus_client import generate_latest; "
        "print(generate_latest(metrics.request_registry()).decode())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, timeout=60, capture_output=True, text=True
    ).stdout

    assert 'nexus_producer_posts_total{outcome="stale",reason="",tenant="unknown"} 2.0' in out


def test_post_outcome_labels_never_carry_client_text():
    from ingestion.ops.metrics import post_outcome

    assert post_outcome(202, {"duplicate": True}) == ("duplicate", "")
    assert post_outcome(413, {"error": "payload_too_large"}) == ("rejected", "payload_too_large")
    assert post_outcome(400, {"error": "<script>x</script>"}) == ("rejected", "http_400")
    assert post_outcome(500, json.loads("null")) == ("rejected", "http_500")


def test_an_unwritable_metrics_directory_loses_a_count_not_the_post(tmp_path):
    """The multiprocess directory gone (a tmp cleaner, a wrong mount): the POST is still answered."""
    # Refused by the byte limit, before anything reads the database (this process has no
    # test database): the counting is what is under test.
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "gone"), "NEXUS_MAX_BODY_BYTES": "8"}
    code = (
        "import django; django.setup(); from django.test import Client; "
        "r = Client().post('/api/nexus/producer', {'messages': []}, content_type='application/json'); "
        "print(r.status_code, r.json()['error'])"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, timeout=60, capture_output=True, text=True)

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "413 payload_too_large"
    assert "producer metric not counted" in result.stderr
