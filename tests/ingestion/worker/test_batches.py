"""Bulk re-extraction through the Message Batches API, against the fake's batch endpoints."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from ingestion.extraction.base import Usage
from ingestion.extraction.claude import cost_usd
from ingestion.models import BatchStatus, Extraction, ExtractionBatch, Job, JobStatus
from ingestion.worker.batches import batches_poll
from tests.conftest import transcript, wait_for

pytestmark = [pytest.mark.redis]


NAMES = ("Ana Ruiz", "Luis Mora", "Eva Sol")


def make_jobs(count: int, prefix: str) -> list[Job]:
    return [
        Job.objects.create(
            session_id=f"{prefix}-{n}",
            fingerprint=f"{prefix}-fp-{n}",
            transcript_hash=f"{prefix}-{n}",
            messages=transcript(f"Hola, me llamo {NAMES[n]}", "¿En qué le ayudo?", "Quiero invertir"),
            message_count=3,
            status=JobStatus.COMPLETED,
            revision=1,
            processed_revision=1,
            revised_at=timezone.now(),
        )
        for n in range(count)
    ]


def reprocess_batch() -> str:
    out = io.StringIO()
    call_command("reprocess", "--status", "completed", "--batch", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_a_batch_reprocess_folds_in_like_a_live_extraction_at_half_the_cost(claude_settings, fake_claude):
    jobs = make_jobs(3, "bt")

    assert "submitted 3 job(s) in 1 batch(es)" in reprocess_batch()
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.PROCESSING}
    assert batches_poll() == 1

    for job in jobs:
        job.refresh_from_db()
        assert job.status == JobStatus.COMPLETED
    rows = list(Extraction.objects.filter(trigger="batch", outcome="ok"))
    assert len(rows) == 3 and {(r.result or {}).get("nombre") for r in rows} == set(NAMES)
    for row in rows:
        usage = Usage(row.input_tokens, row.output_tokens, row.cache_creation_tokens, row.cache_read_tokens)
        live = Decimal(str(cost_usd(row.model, usage)))
        assert row.cost_usd == pytest.approx(live / 2, abs=Decimal("0.000002"))
    batch = ExtractionBatch.objects.get()
    assert (batch.status, batch.requests, batch.succeeded) == (BatchStatus.FOLDED, 3, 3)
    assert batch.cost_usd == sum(r.cost_usd for r in rows)


@pytest.mark.django_db
def test_failed_batch_items_are_classified_as_they_would_be_live(claude_settings, fake_claude):
    bad, busy = make_jobs(2, "bf")
    fake_claude.script(["400", "529"])  # in request order: the first job, then the second

    reprocess_batch()
    batches_poll()

    bad.refresh_from_db()
    busy.refresh_from_db()
    assert (bad.status, bad.error_category) == (JobStatus.FAILED, "bad_request")  # permanent
    assert (busy.status, busy.error_category, busy.attempts) == (
        JobStatus.PENDING,
        "overloaded",
        1,
    )  # retried
    assert ExtractionBatch.objects.get().errored == 2


def test_an_expired_batch_leaves_its_jobs_retried_never_lost(claude_settings, fake_claude, celery_worker):
    jobs = make_jobs(3, "be")
    fake_claude.set_batches(expire=True)

    reprocess_batch()
    batches_poll()

    assert ExtractionBatch.objects.get().expired == 3
    wait_for(
        lambda: Job.objects.filter(status=JobStatus.COMPLETED, lane="bulk").count() == len(jobs), timeout=60
    )
    assert Extraction.objects.filter(trigger__startswith="reprocess:", outcome="ok").count() == 3
    assert set(Job.objects.values_list("attempts", flat=True)) == {0}


def test_a_batch_is_cancelled_from_the_admin_and_its_jobs_requeued(
    claude_settings, fake_claude, celery_worker, admin_client
):
    make_jobs(2, "bc")
    fake_claude.set_batches(seconds=600)
    reprocess_batch()
    batch = ExtractionBatch.objects.get()
    listing = admin_client.get("/admin/ingestion/extractionbatch/")
    assert listing.status_code == 200 and batch.provider_id in listing.content.decode()

    admin_client.post(
        "/admin/ingestion/extractionbatch/", {"action": "cancel", "_selected_action": [str(batch.id)]}
    )
    batches_poll()

    batch.refresh_from_db()
    assert batch.cancel_requested_at is not None and (batch.status, batch.canceled) == (BatchStatus.FOLDED, 2)
    wait_for(lambda: Job.objects.filter(status=JobStatus.COMPLETED).count() == 2, timeout=60)


@pytest.mark.django_db
def test_batch_reprocess_without_a_key_is_refused(settings):
    settings.ANTHROPIC_API_KEY = ""
    settings.EXTRACTOR = ""
    make_jobs(1, "bk")

    with pytest.raises(CommandError, match="batch not submitted"):
        reprocess_batch()
    assert Job.objects.get().status == JobStatus.COMPLETED
