"""The worker side called directly: claims, fencing, coalescing, poison jobs, idempotent effect."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from ingestion.extraction import get_extractor
from ingestion.models import Extraction, Job, JobStatus
from ingestion.services import job_accept
from ingestion.worker import pipeline
from prospects.models import Prospect
from tests.conftest import SEED_MESSAGES, transcript

pytestmark = pytest.mark.django_db(transaction=True)


def accept(messages, session_id="s-1", fingerprint="fp-1"):
    return job_accept(session_id=session_id, fingerprint=fingerprint, messages=messages, metadata={}).job_id


def test_second_delivery_of_a_claimed_job_is_not_claimed():
    job_id = accept(SEED_MESSAGES)

    assert pipeline.job_claim(job_id=job_id) is not None
    assert pipeline.job_claim(job_id=job_id) is None


def test_expired_lease_is_reclaimed_and_the_old_run_is_fenced_off():
    job_id = accept(SEED_MESSAGES)
    old_run = pipeline.job_claim(job_id=job_id)
    Job.objects.filter(id=job_id).update(lease_until=timezone.now() - timedelta(seconds=1))
    new_run = pipeline.job_claim(job_id=job_id)
    assert new_run is not None and new_run.token != old_run.token

    result = get_extractor().extract(old_run.messages)
    assert pipeline.job_record_success(claim=old_run, result=result) == "fenced"
    assert Job.objects.get(id=job_id).status == JobStatus.PROCESSING
    assert Extraction.objects.count() == 0

    assert pipeline.job_record_success(claim=new_run, result=result) == "completed"
    assert Extraction.objects.filter(job_id=job_id).count() == 1


def test_new_revision_during_a_run_is_requeued_not_lost():
    job_id = accept(transcript("Hola"))
    run = pipeline.job_claim(job_id=job_id)
    accept(transcript("Hola", "¿Nombre?", "Me llamo Ana López"))  # arrives mid-run

    outcome = pipeline.job_record_success(claim=run, result=get_extractor().extract(run.messages))

    job = Job.objects.get(id=job_id)
    assert outcome == "requeued"
    assert (job.status, job.processed_revision, job.revision) == (JobStatus.PENDING, 1, 2)
    assert pipeline.job_process(job_id=job_id) == "completed"
    assert Prospect.objects.get(key="fp:fp-1").nombre == "Ana López"


def test_many_posts_during_a_run_cost_one_extra_extraction():
    job_id = accept(transcript("Hola"))
    run = pipeline.job_claim(job_id=job_id)
    for n in range(2, 7):
        accept(transcript(*["Hola"] * n))

    pipeline.job_record_success(claim=run, result=get_extractor().extract(run.messages))
    pipeline.job_process(job_id=job_id)
    pipeline.job_process(job_id=job_id)  # a redundant delivery finds nothing to do

    assert Extraction.objects.filter(job_id=job_id, outcome="ok").count() == 2
    assert Job.objects.get(id=job_id).processed_revision == 6


def test_a_post_between_the_requeue_and_the_next_claim_costs_no_third_call():
    # Issue 18, figure 5: the requeue at the end of run 1 and a POST's dispatch. The POST that
    # lands after run 1 requeued but before run 2 claims publishes nothing more and is seen by
    # run 2; only a revision committed after run 2's claim needs a third run (the bound).
    job_id = accept(transcript("Hola"))
    run1 = pipeline.job_claim(job_id=job_id)
    accept(transcript("Hola", "Hola"))  # mid-run 1
    assert (
        pipeline.job_record_success(claim=run1, result=get_extractor().extract(run1.messages)) == "requeued"
    )
    between = job_accept(
        session_id="s-1", fingerprint="fp-1", messages=transcript(*["Hola"] * 3), metadata={}
    )
    assert between.dispatched is False  # run 1's requeue already published the task

    run2 = pipeline.job_claim(job_id=job_id)
    assert run2.revision == 3
    assert (
        pipeline.job_record_success(claim=run2, result=get_extractor().extract(run2.messages)) == "completed"
    )
    assert pipeline.job_process(job_id=job_id) == "not-claimed"
    assert Extraction.objects.filter(job_id=job_id, outcome="ok").count() == 2

    run3_needed = pipeline.job_claim(job_id=accept(transcript(*["Hola"] * 4)))  # after run 2
    assert run3_needed is not None and run3_needed.revision == 4


def test_replaying_a_completed_job_adds_no_extraction_and_keeps_the_prospect():
    job_id = accept(SEED_MESSAGES)
    pipeline.job_process(job_id=job_id)
    before = Prospect.objects.values().get(key="fp:fp-1")

    assert pipeline.job_process(job_id=job_id) == "not-claimed"
    Job.objects.filter(id=job_id).update(status=JobStatus.PENDING)  # a plain re-queue
    assert pipeline.job_process(job_id=job_id) == "completed"

    after = Prospect.objects.values().get(key="fp:fp-1")
    assert Extraction.objects.filter(job_id=job_id, outcome="ok").count() == 1
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }


def test_a_job_whose_workers_keep_dying_fails_as_poison(settings):
    settings.NEXUS = {**settings.NEXUS, "MAX_CLAIMS": 3}
    job_id = accept(SEED_MESSAGES)
    for _ in range(3):  # each claim's worker "dies": the lease runs out
        assert pipeline.job_claim(job_id=job_id) is not None
        Job.objects.filter(id=job_id).update(lease_until=timezone.now() - timedelta(seconds=1))

    assert pipeline.job_claim(job_id=job_id) is None

    job = Job.objects.get(id=job_id)
    assert (job.status, job.error_category) == (JobStatus.FAILED, "poison")
    assert "claimed 4 times" in job.last_error


def test_sessions_of_one_visitor_fold_into_one_prospect_in_post_order():
    first = accept(transcript("Me llamo Ana", "Hola Ana", "quiero empezar"), session_id="a")
    second = accept(transcript("Hola, me llamo Ana María"), session_id="b")
    pipeline.job_process(job_id=second)  # finishes first
    pipeline.job_process(job_id=first)

    prospect = Prospect.objects.get(key="fp:fp-1")
    assert Prospect.objects.count() == 1
    assert prospect.session_count == 2
    assert prospect.nombre == "Ana María"  # session b was POSTed last
    assert set(Job.objects.values_list("prospect_id", flat=True)) == {prospect.id}


def test_session_without_fingerprint_gets_its_own_prospect():
    job_id = accept(SEED_MESSAGES, session_id="anon", fingerprint="")

    pipeline.job_process(job_id=job_id)

    assert Prospect.objects.get(key="sid:anon").nombre == "Juan Pérez"


def test_backoff_is_exponential_with_full_jitter_at_least_retry_after_and_capped(settings):
    settings.NEXUS = {**settings.NEXUS, "BACKOFF_BASE_SECONDS": 2.0, "BACKOFF_CAP_SECONDS": 300.0}
    for attempt, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (8, 256.0), (9, 300.0), (30, 300.0)]:
        delays = [pipeline.backoff_seconds(attempt) for _ in range(300)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jitter spreads over the whole window, not a fixed step
    assert all(pipeline.backoff_seconds(1, retry_after=30.0) >= 30.0 for _ in range(50))
    assert pipeline.backoff_seconds(1, retry_after=10_000.0) == 300.0  # never past the cap
