"""Each failure class of the Claude path, end to end through a real worker (SPEC §4, §10).

The real anthropic SDK talks to FakeClaude, a real HTTP server on 127.0.0.1 scripted per test.
Timers are shortened (``fast_pipeline``); the mechanisms are the production ones.
"""

from __future__ import annotations

import logging

import pytest

from ingestion.extraction.base import Usage
from ingestion.extraction.claude import cost_usd
from ingestion.extraction.prompt import PROMPT_VERSION
from ingestion.models import Extraction, Job, JobStatus
from ingestion.worker import breaker
from prospects.models import Prospect
from tests.conftest import SEED_MESSAGES, producer_body, transcript, wait_for

pytestmark = [pytest.mark.redis]


@pytest.fixture
def claude(fast_pipeline, claude_settings, fake_claude):
    """Settings for the Claude path against the fake, with short pipeline timers."""
    return fake_claude


def post(api, messages=SEED_MESSAGES, session_id="s-1"):
    # One visitor per session: the same transcript from the same visitor under another
    # sessionId would be the same chat continued (one job), not a second session.
    body = producer_body(messages, session_id=session_id, fingerprint=f"fp-{session_id}")
    response = api.post("/api/nexus/producer", body, format="json")
    assert response.status_code == 202
    return response.json()["queueId"]


def job_in(job_id, *statuses):
    return Job.objects.filter(id=job_id, status__in=statuses).first()


def retry_countdowns(caplog, job_id):
    """The countdowns the pipeline chose for this job's retries, in order (its WARNING lines)."""
    return [
        r.retry_in_s
        for r in caplog.records
        if r.name == "ingestion.worker.pipeline"
        and getattr(r, "job_id", None) == str(job_id)
        and hasattr(r, "retry_in_s")
    ]


def test_429_529_500_then_success_completes_with_four_calls_and_the_right_backoff(
    api, claude, celery_worker, settings, caplog
):
    caplog.set_level(logging.WARNING, logger="ingestion.worker.pipeline")
    base, cap = settings.NEXUS["BACKOFF_BASE_SECONDS"], settings.NEXUS["BACKOFF_CAP_SECONDS"]
    claude.script([["429", 0.6], "529", "500", "ok"])

    job_id = post(api)

    job = wait_for(lambda: job_in(job_id, JobStatus.COMPLETED))
    calls = list(Extraction.objects.filter(job_id=job_id).order_by("created_at"))
    assert [(c.outcome, c.error_category) for c in calls] == [
        ("failed", "rate_limited"),
        ("failed", "overloaded"),
        ("failed", "server_error"),
        ("ok", ""),
    ]
    assert job.attempts == 3  # failed calls for this revision; the fourth call succeeded
    assert claude.calls == 4
    assert (job.last_error, job.error_category, job.next_attempt_at) == ("", "", None)
    # retry-after: 0.6 s was asked for; the next call came no sooner.
    assert (calls[1].created_at - calls[0].created_at).total_seconds() >= 0.6
    # Full jitter: attempt n waits uniform(0, min(cap, base * 2**(n-1))), at least retry-after.
    first, second, third = retry_countdowns(caplog, job_id)
    assert 0.6 <= first <= cap
    assert 0 <= second <= min(cap, base * 2) and 0 <= third <= min(cap, base * 4)
    assert Prospect.objects.get(jobs=job).nombre == "Juan Pérez"


def test_a_backing_off_job_shows_attempts_next_attempt_and_last_error(api, claude, celery_worker):
    claude.script([["429", 1.5], "ok"])

    job_id = post(api)

    job = wait_for(lambda: Job.objects.filter(id=job_id, attempts=1).first())
    assert job.status == JobStatus.PENDING
    assert job.error_category == "rate_limited" and "429" in job.last_error
    wait = (job.next_attempt_at - job.updated_at).total_seconds()
    # The retry-after the API asked for (jitter alone would be under 0.1 s here); the row is saved a
    # moment after the countdown was computed, hence the slack below 1.5.
    assert 1.0 <= wait <= 1.5
    public = api.get(f"/api/nexus/jobs/{job_id}").json()
    assert (public["status"], public["attempts"], public["errorCategory"]) == ("pending", 1, "rate_limited")
    assert "last_error" not in public and "per-minute" not in str(public)  # no raw API text
    wait_for(lambda: job_in(job_id, JobStatus.COMPLETED))


def test_a_retry_after_beyond_the_cap_waits_the_cap_not_longer(api, claude, celery_worker, settings):
    cap = settings.NEXUS["BACKOFF_CAP_SECONDS"]  # far below the broker's visibility timeout
    claude.script([["429", 900], "ok"])

    job_id = post(api)

    job = wait_for(lambda: Job.objects.filter(id=job_id, attempts=1).first())
    assert (job.next_attempt_at - job.updated_at).total_seconds() <= cap + 0.1
    wait_for(lambda: job_in(job_id, JobStatus.COMPLETED), timeout=cap + 15)


def test_a_claude_run_records_model_prompt_version_usage_cost_and_stop_reason(api, claude, celery_worker):
    first = post(api, session_id="usage-1")
    wait_for(lambda: job_in(first, JobStatus.COMPLETED))
    second = post(api, session_id="usage-2")
    wait_for(lambda: job_in(second, JobStatus.COMPLETED))
    rows = list(Extraction.objects.filter(job_id__in=[first, second]).order_by("created_at"))
    for row in rows:
        assert (row.outcome, row.extractor, row.model) == ("ok", "claude", "claude-haiku-5-5")
        assert (row.prompt_version, row.stop_reason) == (PROMPT_VERSION, "end_turn")
        assert row.input_tokens > 0 and row.output_tokens > 0 and row.latency_ms > 0
        usage = Usage(row.input_tokens, row.output_tokens, row.cache_creation_tokens, row.cache_read_tokens)
        assert float(row.cost_usd) == pytest.approx(cost_usd("claude-haiku-5-5", usage), abs=1e-6)
    # The system prompt is written to the cache once, then read: the second call is cheaper.
    assert rows[0].cache_creation_tokens > 0 and rows[1].cache_read_tokens == rows[0].cache_creation_tokens
    assert rows[1].cost_usd < rows[0].cost_usd


def test_timeout_is_transient_and_retried(api, claude, celery_worker, settings):
    settings.ANTHROPIC_TIMEOUT_SECONDS = 0.5
    claude.script([["hang", 3], "ok"])

    job_id = post(api)

    wait_for(lambda: job_in(job_id, JobStatus.COMPLETED))
    categories = list(
        Extraction.objects.filter(job_id=job_id)
        .order_by("created_at")
        .values_list("error_category", "outcome")
    )
    assert categories == [("timeout", "failed"), ("", "ok")]


def test_attempts_exhausted_goes_to_the_dead_letter_queue(api, claude, celery_worker, settings):
    settings.NEXUS = {**settings.NEXUS, "MAX_ATTEMPTS": 3}
    claude.script(["529", "529", "529", "ok"])

    job_id = post(api)

    job = wait_for(lambda: job_in(job_id, JobStatus.FAILED))
    assert job.attempts == 3
    assert job.error_category == "overloaded"
    assert "attempts exhausted" in job.last_error
    assert claude.calls == 3


def test_failed_calls_record_what_they_cost(api, claude, celery_worker):
    claude.script(["malformed", "malformed"])

    job_id = post(api)

    wait_for(lambda: job_in(job_id, JobStatus.FAILED))
    (failed,) = Extraction.objects.filter(job_id=job_id)
    assert (failed.outcome, failed.model) == ("failed", "claude-haiku-5-5")
    assert failed.output_tokens > 0 and failed.cost_usd > 0  # two answers were billed


def test_malformed_output_twice_fails_the_revision_and_keeps_the_prospect(api, claude, celery_worker):
    first = post(api)
    wait_for(lambda: job_in(first, JobStatus.COMPLETED))
    claude.script(["malformed", "malformed"])

    post(
        api,
        [*SEED_MESSAGES, {"role": "assistant", "content": "¿Algo más?"}, {"role": "user", "content": "No"}],
    )

    job = wait_for(lambda: job_in(first, JobStatus.FAILED))
    assert job.error_category == "invalid_output"
    assert job.revision == 2 and job.processed_revision == 1
    prospect = Prospect.objects.get(jobs=job)
    assert prospect.nombre == "Juan Pérez"  # nothing already in the Prospect is lost
    public = api.get(f"/api/nexus/jobs/{first}").json()
    assert public["errorCategory"] == "invalid_output" and "last_error" not in public


def test_permanent_400_fails_at_once_without_retry(api, claude, celery_worker):
    claude.script(["400"])

    job_id = post(api)

    job = wait_for(lambda: job_in(job_id, JobStatus.FAILED))
    assert (job.attempts, job.error_category) == (0, "bad_request")
    assert claude.calls == 1
    assert not Prospect.objects.exists()


def test_401_opens_the_breaker_and_the_job_completes_once_the_key_works(api, claude, celery_worker):
    claude.reject_keys()

    job_id = post(api)

    wait_for(lambda: breaker.state() is not None)
    # The breaker opens inside the failure's transaction: the row turns pending at its commit.
    wait_for(lambda: job_in(job_id, JobStatus.PENDING))  # paused, not dead-lettered
    health = api.get("/api/nexus/producer").json()
    assert health["status"] == "degraded"
    assert health["checks"]["extractor"].startswith("paused")

    claude.accept_any_key()

    wait_for(lambda: job_in(job_id, JobStatus.COMPLETED), timeout=20)
    assert breaker.state() is None
    assert Extraction.objects.filter(job_id=job_id, outcome="failed", error_category="auth").exists()


def test_an_auth_outage_pauses_every_job_with_one_alert_and_all_complete_after(
    api, claude, celery_worker, caplog
):
    caplog.set_level(logging.WARNING, logger="ingestion.worker.breaker")
    claude.reject_keys()

    job_ids = [post(api, session_id=f"outage-{i}") for i in range(3)]

    wait_for(lambda: breaker.state() is not None)
    wait_for(lambda: Extraction.objects.filter(error_category="auth").count() >= 2, timeout=20)
    assert not Job.objects.filter(status=JobStatus.FAILED).exists()  # nothing dead-lettered
    claude.accept_any_key()

    wait_for(lambda: Job.objects.filter(id__in=job_ids, status=JobStatus.COMPLETED).count() == 3, timeout=30)
    opened = [
        r for r in caplog.records if r.name == "ingestion.worker.breaker" and "opened" in r.getMessage()
    ]
    assert len(opened) == 1  # one alert per outage, not one per job or per probe
    assert breaker.state() is None
    assert api.get("/api/nexus/producer").json()["checks"]["extractor"] == "up"


def test_invented_contact_data_is_dropped(api, claude, celery_worker):
    claude.script([["ok", {"email": "ceo@invented.example", "telefono": "+1 555 0100 999"}]])

    job_id = post(api, transcript("Hola, me llamo Juan Pérez", "¡Hola Juan!", "Quiero invertir"))

    job = wait_for(lambda: job_in(job_id, JobStatus.COMPLETED))
    prospect = Prospect.objects.get(jobs=job)
    assert prospect.nombre == "Juan Pérez"
    assert prospect.email is None and prospect.telefono is None


def test_a_misconfigured_extractor_pauses_jobs_instead_of_failing_them(
    api, fast_pipeline, claude_settings, fake_claude, celery_worker
):
    claude_settings.ANTHROPIC_API_KEY = ""  # EXTRACTOR=claude without a key

    job_id = post(api, session_id="no-key")

    state = wait_for(breaker.state)
    assert state["category"] == "misconfigured"
    # The breaker opens before the job's deferral commits: wait for that write, not just the trip.
    job = wait_for(
        lambda: Job.objects.filter(id=job_id, status=JobStatus.PENDING, next_attempt_at__isnull=False).first()
    )
    assert job.claims == 0
    assert api.get("/api/nexus/producer").json()["status"] == "degraded"

    claude_settings.ANTHROPIC_API_KEY = "fixed-key"  # the deploy that sets the key

    wait_for(lambda: job_in(job_id, JobStatus.COMPLETED), timeout=20)
    assert breaker.state() is None
    assert fake_claude.calls == 1
