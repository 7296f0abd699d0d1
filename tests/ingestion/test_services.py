"""Ledger semantics of job_accept, job_requeue and the sweeper, against the real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from ingestion.dispatch import jobs_due_for_dispatch
from ingestion.models import Job, JobStatus
from ingestion.services import FingerprintConflict, Outcome, job_accept, job_requeue, transcript_hash
from tests.conftest import transcript

pytestmark = pytest.mark.django_db(transaction=True)

ONE = transcript("Hola")
TWO = transcript("Hola", "¿Cómo te llamas?", "Me llamo Ana")


def accept(messages, session_id="s-1", fingerprint="fp-1"):
    return job_accept(session_id=session_id, fingerprint=fingerprint, messages=messages, metadata={})


@pytest.mark.redis  # the dispatch mark stays only if the broker took the task
def test_new_session_creates_revision_one_pending_and_dispatched():
    result = accept(ONE)

    job = Job.objects.get(id=result.job_id)
    assert result.outcome is Outcome.CREATED
    assert (job.revision, job.status, job.message_count) == (1, JobStatus.PENDING, 1)
    assert job.transcript_hash == transcript_hash(ONE)
    assert job.dispatched_at is not None


def test_same_transcript_is_a_duplicate_and_changes_nothing():
    first = accept(ONE)
    before = Job.objects.get(id=first.job_id)

    again = accept(ONE)

    after = Job.objects.get(id=first.job_id)
    assert again.outcome is Outcome.DUPLICATE
    assert again.job_id == first.job_id
    assert (after.revision, after.updated_at) == (before.revision, before.updated_at)


def test_strict_prefix_of_stored_transcript_is_stale_and_ignored():
    accept(TWO)

    result = accept(ONE)

    job = Job.objects.get(session_id="s-1")
    assert result.outcome is Outcome.STALE
    assert job.revision == 1
    assert job.messages == TWO


def test_shorter_divergent_transcript_is_a_new_revision():
    accept(TWO)

    result = accept(transcript("Buenas"))

    assert result.outcome is Outcome.REVISED
    assert Job.objects.get(session_id="s-1").revision == 2


def test_longer_transcript_bumps_revision_and_resets_counters():
    accept(ONE)
    Job.objects.filter(session_id="s-1").update(
        status=JobStatus.FAILED, attempts=5, claims=3, last_error="boom", dispatched_at=None
    )

    result = accept(TWO)

    job = Job.objects.get(session_id="s-1")
    assert result.outcome is Outcome.REVISED and result.dispatched
    assert (job.revision, job.status, job.attempts, job.claims, job.last_error) == (
        2, JobStatus.PENDING, 0, 0, "",
    )  # fmt: skip


@pytest.mark.redis  # the dispatch mark stays only if the broker took the task
def test_new_revision_while_dispatch_outstanding_does_not_publish_again():
    accept(ONE)

    result = accept(TWO)

    assert result.outcome is Outcome.REVISED
    assert result.dispatched is False  # coalesced into the task already on its way


def test_new_revision_while_processing_keeps_the_row_processing():
    accept(ONE)
    Job.objects.filter(session_id="s-1").update(status=JobStatus.PROCESSING, dispatched_at=None)

    result = accept(TWO)

    job = Job.objects.get(session_id="s-1")
    assert result.dispatched is False
    assert (job.status, job.revision) == (JobStatus.PROCESSING, 2)


def test_changed_fingerprint_for_existing_session_is_refused():
    accept(ONE)

    with pytest.raises(FingerprintConflict):
        accept(TWO, fingerprint="someone-else")
    assert Job.objects.get(session_id="s-1").revision == 1


def test_purged_transcript_still_detects_duplicates_and_late_retries():
    accept(TWO)
    Job.objects.filter(session_id="s-1").update(messages=[], purged_at=timezone.now())

    assert accept(TWO).outcome is Outcome.DUPLICATE
    assert accept(ONE).outcome is Outcome.STALE


@pytest.mark.redis  # the dispatch mark stays only if the broker took the task
def test_sweeper_finds_lost_pending_and_expired_leases_only():
    now = timezone.now()
    lost = Job.objects.get(id=accept(ONE, session_id="lost").job_id)
    fresh = Job.objects.get(id=accept(ONE, session_id="fresh").job_id)
    backing_off = Job.objects.get(id=accept(ONE, session_id="backoff").job_id)
    orphan = Job.objects.get(id=accept(ONE, session_id="orphan").job_id)
    running = Job.objects.get(id=accept(ONE, session_id="running").job_id)
    Job.objects.filter(id=lost.id).update(dispatched_at=now - timedelta(minutes=5))
    Job.objects.filter(id=backing_off.id).update(
        dispatched_at=None, next_attempt_at=now + timedelta(minutes=1)
    )
    Job.objects.filter(id=orphan.id).update(
        status=JobStatus.PROCESSING, dispatched_at=None, lease_until=now - timedelta(seconds=1)
    )
    Job.objects.filter(id=running.id).update(
        status=JobStatus.PROCESSING, dispatched_at=None, lease_until=now + timedelta(minutes=1)
    )

    due = set(jobs_due_for_dispatch(now=now, limit=100))

    assert due == {lost.id, orphan.id}
    assert fresh.id not in due


def test_requeue_resets_a_failed_job_and_refuses_purged_ones():
    job_id = accept(ONE).job_id
    Job.objects.filter(id=job_id).update(status=JobStatus.FAILED, attempts=8, last_error="x")

    assert job_requeue(job_id=job_id, reextract=True) is True
    job = Job.objects.get(id=job_id)
    assert (job.status, job.attempts, job.last_error) == (JobStatus.PENDING, 0, "")
    assert job.trigger.startswith("reprocess:")

    Job.objects.filter(id=job_id).update(status=JobStatus.FAILED, purged_at=timezone.now())
    assert job_requeue(job_id=job_id) is False


def test_a_new_session_is_created_and_revised_at_the_same_instant():
    """A prospect's first_seen is its sessions' created_at, its last_seen their revised_at: a
    created_at stamped a moment after revised_at put last_seen before first_seen in the CSV."""
    job = Job.objects.get(id=accept(ONE).job_id)
    assert job.created_at == job.revised_at == job.updated_at
