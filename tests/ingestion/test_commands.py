"""``manage.py reprocess`` and ``queue_stats`` as an engineer runs them."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from ingestion.models import Extraction, Job, JobStatus
from tests.conftest import transcript, wait_for

pytestmark = pytest.mark.django_db


def make_job(session_id: str, status: str = JobStatus.FAILED, age: timedelta = timedelta(0), **fields) -> Job:
    return Job.objects.create(
        session_id=session_id,
        fingerprint=fields.pop("fingerprint", ""),
        transcript_hash=session_id,
        messages=fields.pop("messages", transcript("Hola, me llamo Ana López")),
        message_count=1,
        revised_at=timezone.now() - age,
        status=status,
        last_error="boom" if status == JobStatus.FAILED else "",
        **fields,
    )


def extracted(job: Job, prompt_version: str) -> Job:
    Extraction.objects.create(
        job=job, revision=1, outcome="ok", extractor="claude", prompt_version=prompt_version
    )
    return job


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("reprocess", *args, stdout=out)
    return out.getvalue()


def requeued() -> set[str]:
    return set(Job.objects.filter(trigger__startswith="reprocess:").values_list("session_id", flat=True))


def test_status_and_since_select_exactly_the_matching_jobs():
    make_job("old-failed", age=timedelta(hours=5))
    make_job("new-failed", age=timedelta(minutes=10))
    make_job("new-done", status=JobStatus.COMPLETED, age=timedelta(minutes=10))

    out = run("--status", "failed", "--since", "2h")

    assert requeued() == {"new-failed"}
    job = Job.objects.get(session_id="new-failed")
    assert (job.status, job.last_error, job.attempts) == (JobStatus.PENDING, "", 0)
    assert f"queued  {job.id}  default  new-failed  failed" in out
    assert "queued 1 job(s)" in out
    assert Job.objects.get(session_id="old-failed").status == JobStatus.FAILED


def test_dry_run_prints_the_selection_and_queues_nothing():
    first = make_job("f-1", error_category="bad_request")
    make_job("f-2")

    out = run("--status", "failed", "--dry-run")

    assert out.count("would queue  ") == 2
    assert f"would queue  {first.id}  default  f-1  failed  bad_request\n" in out
    assert "would queue 2 job(s)" in out and "dry run" in out
    assert requeued() == set()
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.FAILED}


def test_session_and_fingerprint_filters():
    make_job("s-a", fingerprint="fp-1")
    make_job("s-b", fingerprint="fp-1", status=JobStatus.COMPLETED)
    make_job("s-c", fingerprint="fp-2")

    run("--session", "s-c")
    assert requeued() == {"s-c"}

    run("--fingerprint", "fp-1")
    assert requeued() == {"s-a", "s-b", "s-c"}


def test_prompt_version_not_selects_jobs_whose_latest_success_used_another_version():
    stale = extracted(make_job("stale", status=JobStatus.COMPLETED), "v1")
    current = extracted(make_job("current", status=JobStatus.COMPLETED), "v1")
    extracted(current, "v2")  # later re-extraction with the current prompt
    make_job("never-extracted")
    Extraction.objects.create(
        job=stale, revision=1, outcome="failed", extractor="claude", prompt_version="v2"
    )

    run("--prompt-version-not", "v2")

    assert requeued() == {"stale"}


def test_purged_and_processing_jobs_are_reported_as_skipped():
    make_job("purged", purged_at=timezone.now(), messages=[])
    make_job("busy", status=JobStatus.PROCESSING)
    make_job("ok")

    out = run("--since", "1h")

    assert requeued() == {"ok"}
    assert "(transcript purged)" in out and "(being processed)" in out
    assert "queued 1 job(s); skipped 2 (purged: 1, processing: 1)" in out


def test_all_is_refused_without_yes_and_a_filter_is_required():
    make_job("x")

    with pytest.raises(CommandError, match="--yes"):
        run("--all")
    with pytest.raises(CommandError, match="choose jobs"):
        run()
    assert requeued() == set()
    # A dry run queues nothing, so it may look at everything without the confirmation.
    assert "would queue 1 job(s)" in run("--all", "--dry-run")
    assert requeued() == set()

    run("--all", "--yes")
    assert requeued() == {"x"}


def test_bad_duration_is_refused():
    with pytest.raises(CommandError, match="duration"):
        run("--since", "2 weeks")


@pytest.mark.redis
def test_reprocess_runs_a_new_extraction_through_the_worker(celery_worker, api):
    from tests.conftest import producer_body

    job_id = api.post("/api/nexus/producer", producer_body(session_id="rp-1"), format="json").json()[
        "queueId"
    ]
    wait_for(lambda: Job.objects.filter(id=job_id, status=JobStatus.COMPLETED).exists())

    run("--session", "rp-1")

    wait_for(lambda: Extraction.objects.filter(job_id=job_id, outcome="ok").count() == 2)
    assert Job.objects.get(id=job_id).status == JobStatus.COMPLETED


def test_queue_stats_prints_the_json_metrics():
    make_job("p-1", status=JobStatus.PENDING, age=timedelta(seconds=30))
    make_job("f-1")
    out = io.StringIO()

    call_command("queue_stats", stdout=out)

    stats = json.loads(out.getvalue())
    assert stats["queue_length"] == 1 and stats["failed"] == 1
    assert stats["oldest_pending_age_s"] >= 30
    assert stats["by_status_24h"]["failed"]["count"] == 1
