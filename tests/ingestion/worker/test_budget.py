"""Spend caps: a session's extractions per day and the daily token budget defer jobs to the
next UTC day (pending, nothing dropped), with one alert per cap and day."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from ingestion.dispatch import jobs_due_for_dispatch
from ingestion.models import Extraction, Job, JobStatus
from ingestion.services import job_accept
from ingestion.worker import budget, pipeline
from tests.conftest import SEED_MESSAGES, producer_body, transcript, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


@pytest.fixture
def caps(settings, redis_client):
    def apply(per_session: int = 0, tokens: int = 0) -> None:
        budget.forget_cached_totals()  # each test spends from zero
        settings.NEXUS = {
            **settings.NEXUS,
            "MAX_EXTRACTIONS_PER_SESSION_PER_DAY": per_session,
            "DAILY_TOKEN_BUDGET": tokens,
        }

    return apply


def new_job(session_id: str) -> Job:
    # Its own visitor: the same transcript without fingerprints under another sessionId would
    # continue the first job (one chat), not start a second session.
    accepted = job_accept(
        session_id=session_id, fingerprint=f"fp-{session_id}", messages=SEED_MESSAGES, metadata={}
    )
    return Job.objects.get(id=accepted.job_id)


def spend(job: Job, n: int = 1, tokens: int = 0, days_ago: int = 0) -> None:
    for i in range(n):
        extraction = Extraction.objects.create(
            job=job, revision=1, trigger=f"t{i}", outcome="ok", extractor="claude", input_tokens=tokens
        )
        if days_ago:
            Extraction.objects.filter(id=extraction.id).update(
                created_at=timezone.now() - timedelta(days=days_ago)
            )


def seconds_to_midnight() -> float:
    now = timezone.now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return (midnight - now).total_seconds()


def test_within_caps_the_job_goes_ahead(caps):
    caps(per_session=3, tokens=1000)
    job = new_job("b-ok")
    spend(job, n=2, tokens=100)

    assert budget.budget_defer_seconds(job.id) is None


def test_session_over_its_daily_extractions_waits_for_midnight(caps, caplog):
    caps(per_session=3)
    busy, calm = new_job("b-busy"), new_job("b-calm")
    spend(busy, n=3)

    with caplog.at_level(logging.WARNING, logger="ingestion.worker.budget"):
        wait = budget.budget_defer_seconds(busy.id)
        budget.budget_defer_seconds(busy.id)

    assert wait == pytest.approx(seconds_to_midnight(), abs=5)
    assert budget.budget_defer_seconds(calm.id) is None
    alerts = [r for r in caplog.records if r.getMessage().startswith("ALERT")]
    assert len(alerts) == 1 and alerts[0].alert == "session_extraction_cap"


def test_yesterdays_extractions_do_not_count(caps):
    caps(per_session=1)
    job = new_job("b-old")
    spend(job, n=5, days_ago=1)

    assert budget.budget_defer_seconds(job.id) is None


def test_daily_token_budget_defers_every_session(caps):
    caps(tokens=1000)
    spend(new_job("b-heavy"), n=1, tokens=1000)

    assert budget.budget_defer_seconds(new_job("b-light").id) is not None


def test_zero_switches_the_caps_off(caps):
    caps(per_session=0, tokens=0)
    job = new_job("b-free")
    spend(job, n=5, tokens=10**6)

    assert budget.budget_defer_seconds(job.id) is None


def test_deferred_job_stays_pending_and_the_sweeper_takes_it_after_the_reset(caps):
    job = new_job("b-wait")

    assert budget.job_defer_for_budget(job_id=job.id, seconds=3600)

    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    assert job.dispatched_at is None
    assert job.next_attempt_at == pytest.approx(timezone.now() + timedelta(hours=1), abs=timedelta(seconds=5))
    assert job.id not in jobs_due_for_dispatch(now=timezone.now(), limit=10)
    assert job.id in jobs_due_for_dispatch(now=job.next_attempt_at + timedelta(seconds=1), limit=10)


def test_a_completed_job_is_not_reopened_by_a_deferral(caps):
    job = new_job("b-done")
    Job.objects.filter(id=job.id).update(status=JobStatus.COMPLETED)

    assert not budget.job_defer_for_budget(job_id=job.id, seconds=60)
    assert Job.objects.get(id=job.id).status == JobStatus.COMPLETED


PIPELINE_HOOKED = "budget_defer_seconds" in Path(pipeline.__file__).read_text()


@pytest.mark.skipif(not PIPELINE_HOOKED, reason="pipeline.job_process does not call ingestion.budget yet")
def test_worker_leaves_a_session_over_its_cap_pending_until_midnight(api, celery_worker, caps):
    caps(per_session=1)
    api.post("/api/nexus/producer", producer_body(transcript("Hola"), session_id="cap-1"), format="json")
    job = wait_for(lambda: Job.objects.filter(session_id="cap-1", status=JobStatus.COMPLETED).first())

    longer = transcript("Hola", "¿Cómo te llamas?", "Me llamo Ana")
    api.post("/api/nexus/producer", producer_body(longer, session_id="cap-1"), format="json")

    deferred = wait_for(
        lambda: Job.objects.filter(id=job.id, status=JobStatus.PENDING, next_attempt_at__isnull=False).first()
    )
    assert deferred.next_attempt_at == pytest.approx(
        timezone.now() + timedelta(seconds=seconds_to_midnight()), abs=timedelta(seconds=10)
    )
    assert deferred.processed_revision == 1 and deferred.revision == 2
    assert Extraction.objects.filter(job=job).count() == 1  # no second Claude call
