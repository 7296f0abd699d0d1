"""Queue and extraction figures read from the ledger (shared by health, alerts, metrics)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from ingestion import selectors
from ingestion.models import Extraction, Job, JobStatus
from ingestion.services import job_accept
from tests.conftest import transcript

pytestmark = pytest.mark.django_db(transaction=True)


def make_job(session_id, status, revised_ago_s=0.0):
    job_id = job_accept(
        session_id=session_id, fingerprint="", messages=transcript(session_id), metadata={}
    ).job_id
    Job.objects.filter(id=job_id).update(
        status=status, revised_at=timezone.now() - timedelta(seconds=revised_ago_s)
    )
    return job_id


def test_queue_counts_by_status_and_pending_ages():
    make_job("a", JobStatus.PENDING, revised_ago_s=30)
    make_job("b", JobStatus.PENDING, revised_ago_s=5)
    make_job("c", JobStatus.PROCESSING)
    make_job("d", JobStatus.FAILED)
    make_job("e", JobStatus.COMPLETED)

    counts = selectors.queue_counts()

    assert (counts["pending"], counts["processing"], counts["failed"]) == (2, 1, 1)
    assert 29 <= counts["oldest_pending_age_s"] < 60
    assert 4 <= counts["newest_pending_age_s"] < 30


def test_extraction_window_error_rate_and_nearest_rank_p95():
    job_id = make_job("a", JobStatus.COMPLETED)
    for ms in range(100, 2100, 100):  # 20 ok calls: 100 ms .. 2000 ms
        Extraction.objects.create(
            job_id=job_id, revision=ms, outcome="ok", extractor="offline", pipeline_latency_ms=ms
        )
    for n in range(5):
        Extraction.objects.create(job_id=job_id, revision=n, outcome="failed", extractor="offline")

    window = selectors.extraction_window()

    assert (window["calls"], window["ok"], window["failed"]) == (25, 20, 5)
    assert window["error_rate"] == 0.2
    assert window["p95_latency_s"] == 1.9  # rank ceil(0.95 * 20) = 19 -> 1900 ms


def test_extraction_window_p95_leaves_out_re_extractions():
    job_id = make_job("a", JobStatus.COMPLETED)
    for revision in range(1, 11):  # ten live calls, fast
        Extraction.objects.create(
            job_id=job_id, revision=revision, outcome="ok", extractor="offline", pipeline_latency_ms=100
        )
    for n in range(10):  # ten re-extractions of an old POST, as rows written before the fix
        Extraction.objects.create(
            job_id=job_id, revision=1, trigger=f"reprocess:{n}", outcome="ok", extractor="offline",
            pipeline_latency_ms=86_400_000,
        )  # fmt: skip

    window = selectors.extraction_window()

    assert (window["ok"], window["p95_latency_s"]) == (20, 0.1)


def test_extraction_window_is_empty_without_calls():
    assert selectors.extraction_window() == {
        "calls": 0, "ok": 0, "failed": 0, "error_rate": 0.0, "p95_latency_s": 0.0,
    }  # fmt: skip
