"""The p95 latency alert is about visitors waiting: a re-extraction an operator asked for does
not count, however old the POST it re-reads (issue 20 point 5)."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from ingestion.models import Extraction, Job, JobStatus
from ingestion.ops.alerts import alerts_check
from ingestion.worker.heartbeat import beat_once
from tests.conftest import producer_body, transcript, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

URL = "/api/nexus/producer"


def post(api, session_id: str) -> str:
    body = producer_body(
        session_id=session_id,
        fingerprint=f"fp-{session_id}",
        messages=transcript(f"Hola, me llamo Ana {session_id.upper()}, quiero empezar"),
    )
    response = api.post(URL, body, format="json")
    assert response.status_code == 202
    return response.json()["queueId"]


def completed(*job_ids: str) -> bool:
    return Job.objects.filter(id__in=job_ids, status=JobStatus.COMPLETED).count() == len(job_ids)


def health(api) -> dict:
    beat_once("latency-test-worker")  # the in-process worker sends no heartbeat of its own
    return api.get(URL).json()


def test_reprocess_of_old_jobs_stays_quiet_while_a_slow_live_extraction_fires(
    celery_worker, api, claude_settings, fake_claude
):
    claude_settings.NEXUS = {**claude_settings.NEXUS, "ALERT_P95_LATENCY_SECONDS": 0.5}
    old = [post(api, f"old-{i}") for i in range(3)]
    wait_for(lambda: completed(*old), timeout=60)
    # Yesterday's sessions: their POSTs and live extractions are out of the hour's window.
    yesterday = timezone.now() - timedelta(days=1)
    Job.objects.update(created_at=yesterday, revised_at=yesterday)
    Extraction.objects.update(created_at=yesterday)

    call_command("reprocess", "--since", "2d", stdout=io.StringIO())
    wait_for(lambda: Extraction.objects.filter(trigger__startswith="reprocess:").count() == 3, timeout=60)
    wait_for(lambda: completed(*old), timeout=60)

    # Measured from their POST these would read as a day of latency each.
    assert set(Extraction.objects.filter(trigger__startswith="reprocess:").values_list(
        "pipeline_latency_ms", flat=True
    )) == {None}  # fmt: skip
    assert "p95_latency" not in alerts_check()
    body = health(api)
    assert (body["status"], body["alerts"]) == ("healthy", [])

    fake_claude.set_latency(1.0)  # Claude answers slowly: a visitor waits over the threshold
    live = post(api, "live-slow")
    wait_for(lambda: completed(live), timeout=60)

    assert "p95_latency" in alerts_check()
    body = wait_for(lambda: (b := health(api))["status"] == "degraded" and b, timeout=30)
    assert body["alerts"] == ["p95_latency"]
