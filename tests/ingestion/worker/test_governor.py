"""The rate governor on real Redis, and through a real Celery worker against the fake enforcing
the account's limits with real 429s and rate-limit headers."""

from __future__ import annotations

import io
import logging
import socket
import time
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from ingestion.extraction.base import Limit, RateLimits
from ingestion.models import Extraction, Job, JobStatus
from ingestion.worker import governor
from ingestion.worker.governor import BULK, LIVE, Estimate
from tests.conftest import producer_body, transcript, wait_for

pytestmark = [pytest.mark.redis]

CALL = Estimate(input_tokens=100, output_tokens=50)


@pytest.fixture
def limits(settings: Any, clean_cache: None) -> Any:
    def apply(**values: Any) -> Any:
        settings.NEXUS = {**settings.NEXUS, **values}
        return settings

    governor.reset_state()
    apply(CLAUDE_RPM=60, CLAUDE_ITPM=0, CLAUDE_OTPM=0, GOVERNOR_BURST_SECONDS=5.0, GOVERNOR_REDIS_URL="")
    yield apply
    governor.reset_state()


def test_a_burst_is_granted_then_calls_wait_for_the_refill(limits):
    grants = [governor.acquire(lane=LIVE, estimate=CALL) for _ in range(5)]
    refused = governor.acquire(lane=LIVE, estimate=CALL)

    assert all(d.granted for d in grants)  # 60/min, 5 s of burst: 5 calls
    assert not refused.granted
    assert 0 < refused.wait_seconds <= 1.5  # one request frees every second
    later = governor.acquire(lane=LIVE, estimate=CALL)
    assert later.wait_seconds > refused.wait_seconds  # the second in line waits behind the first
    assert governor.status()["deferrals"] == {"live": 2, "bulk": 0}


def test_input_tokens_are_reserved_and_corrected_by_the_usage(limits):
    limits(CLAUDE_RPM=0, CLAUDE_ITPM=6000)  # 100 tokens/s, 500 of burst
    big = Estimate(input_tokens=400, output_tokens=10)
    first = governor.acquire(lane=LIVE, estimate=big)
    assert first.granted
    assert not governor.acquire(lane=LIVE, estimate=big).granted

    governor.settle(first, input_tokens=100, output_tokens=10, calls=1, report=None)  # 300 back

    assert governor.acquire(lane=LIVE, estimate=big).granted


def test_headers_adopt_the_accounts_lower_limit_until_the_reset(limits):
    limits(CLAUDE_RPM=600)
    decision = governor.acquire(lane=LIVE, estimate=CALL)
    report = RateLimits(limits={"requests": Limit(limit=60, remaining=2, reset_at=time.time() + 30)})

    assert governor.settle(decision, input_tokens=100, output_tokens=50, calls=1, report=report)

    state = governor.status()
    assert state["tightened"] is True and state["tightenings"] == 1
    assert state["effective_limits"]["requests"] == 60
    assert state["capacity_left"]["requests"] <= 2.5
    granted = [governor.acquire(lane=LIVE, estimate=CALL).granted for _ in range(4)]
    assert granted.count(True) <= 3


def test_a_429s_retry_after_pauses_every_caller(limits):
    limits(CLAUDE_RPM=0)  # no limit of our own: the API's word still counts
    decision = governor.acquire(lane=LIVE, estimate=CALL)
    governor.settle(decision, input_tokens=0, output_tokens=0, calls=1, report=RateLimits(retry_after=20.0))

    refused = governor.acquire(lane=BULK, estimate=CALL)
    assert not refused.granted and 19 <= refused.wait_seconds <= 21
    assert governor.status()["paused_for_s"] > 19


def test_bulk_gets_its_share_while_live_work_waits_and_all_of_it_otherwise(limits):
    limits(CLAUDE_RPM=600, BULK_SHARE=0.3, GOVERNOR_BURST_SECONDS=1.0)  # 10 per s, 10 of burst
    bulk = sum(governor.acquire(lane=BULK, estimate=CALL).granted for _ in range(15))
    assert bulk == 3  # bulk leaves the live reserve (70 % of the burst) alone
    live = sum(governor.acquire(lane=LIVE, estimate=CALL).granted for _ in range(15))
    assert 7 <= live < 15  # the reserve, and the grace

    assert not governor.acquire(lane=LIVE, estimate=CALL).granted  # live now waits
    assert governor.status()["live_waiting"] is True
    # Bulk is held to 3 per second while live waits: nothing left in its share now.
    refused = governor.acquire(lane=BULK, estimate=CALL)
    assert not refused.granted and refused.wait_seconds >= 0.3


def test_unreachable_redis_fails_open_to_the_process_share(limits, caplog):
    limits(CLAUDE_RPM=120, GOVERNOR_PROCESSES=2, GOVERNOR_REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0")
    with caplog.at_level(logging.WARNING, logger="ingestion.worker.governor"):
        decisions = [governor.acquire(lane=LIVE, estimate=CALL) for _ in range(6)]

    assert [d.granted for d in decisions] == [True] * 5 + [False]  # 60/min each, 5 s of burst
    assert all(d.local for d in decisions)
    assert [r.message for r in caplog.records].count(
        "rate governor's Redis unreachable; using this process's share of the limits (fail open)"
    ) == 1
    assert governor.status()["redis"] == "down" and governor.status()["fail_open"] == 6


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- through a real worker against the fake enforcing the limit --------------------------------


def _post_sessions(api: Any, count: int, prefix: str) -> list[str]:
    ids = []
    for n in range(count):
        body = producer_body(
            transcript(f"Hola, me llamo Persona {n}"),
            session_id=f"{prefix}-{n}",
            fingerprint=f"{prefix}-fp-{n}",
        )
        response = api.post("/api/nexus/producer", body, format="json")
        assert response.status_code == 202
        ids.append(response.json()["queueId"])
    return ids


def _all_completed(ids: list[str]) -> bool:
    return Job.objects.filter(id__in=ids, status=JobStatus.COMPLETED).count() == len(ids)


def test_under_a_tight_rpm_jobs_are_deferred_not_failed_and_all_complete(
    api, limits, claude_settings, fake_claude, fast_pipeline, celery_worker
):
    fake_claude.set_rate_limits(rpm=120)
    limits(CLAUDE_RPM=120, GOVERNOR_BURST_SECONDS=2.0)  # 2 per second, 4 at once

    ids = _post_sessions(api, 14, "tight")

    wait_for(lambda: _all_completed(ids), timeout=90)
    assert fake_claude.stats()["rate_limited"] == 0
    assert not Extraction.objects.filter(job_id__in=ids, outcome="failed").exists()
    assert set(Job.objects.filter(id__in=ids).values_list("attempts", flat=True)) == {0}
    assert governor.status()["deferrals"]["live"] > 0
    metrics = api.get("/metrics").content.decode()
    assert 'nexus_governor_deferrals_total{lane="live"}' in metrics
    assert "governor" in api.get("/api/nexus/producer").json()


def test_the_apis_headers_tighten_the_governor_for_every_worker(
    api, limits, claude_settings, fake_claude, fast_pipeline, celery_worker
):
    fake_claude.set_rate_limits(rpm=60)
    limits(CLAUDE_RPM=0, GOVERNOR_BURST_SECONDS=3.0)  # no limit of our own

    ids = _post_sessions(api, 10, "hdr")

    wait_for(lambda: _all_completed(ids), timeout=90)
    state = governor.status()
    assert state["tightenings"] >= 1
    assert state["effective_limits"]["requests"] == 60  # the account's, learnt from the headers
    assert state["deferrals"]["live"] > 0  # the learnt limit deferred jobs
    assert fake_claude.stats()["rate_limited"] == 0
    assert "nexus_governor_tightened 1.0" in api.get("/metrics").content.decode()


def test_with_its_redis_down_the_governor_fails_open_and_jobs_complete(
    api, limits, claude_settings, fake_claude, fast_pipeline, celery_worker, caplog
):
    limits(CLAUDE_RPM=600, GOVERNOR_PROCESSES=1, GOVERNOR_REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0")

    with caplog.at_level(logging.WARNING, logger="ingestion.worker.governor"):
        ids = _post_sessions(api, 4, "down")
        wait_for(lambda: _all_completed(ids), timeout=60)

    assert any("fail open" in r.message for r in caplog.records)
    metrics = api.get("/metrics").content.decode()
    assert "nexus_governor_redis_up 0.0" in metrics
    fail_open = next(
        line for line in metrics.splitlines() if line.startswith("nexus_governor_fail_open_total")
    )
    assert float(fail_open.split()[-1]) >= 4


def test_a_live_post_is_extracted_before_a_bulk_reprocess_backlog_finishes(
    api, limits, claude_settings, fake_claude, fast_pipeline, celery_worker
):
    fake_claude.set_rate_limits(rpm=120)
    limits(CLAUDE_RPM=120, GOVERNOR_BURST_SECONDS=2.0, BULK_SHARE=0.3)  # 2 per second
    backlog = [
        Job.objects.create(
            session_id=f"bulk-{n}",
            fingerprint=f"bulk-fp-{n}",
            transcript_hash=f"bulk-{n}",
            messages=transcript(f"Hola, me llamo Cliente {n}"),
            message_count=1,
            status=JobStatus.COMPLETED,
            revision=1,
            processed_revision=1,
            revised_at=timezone.now(),
        )
        for n in range(30)
    ]
    call_command("reprocess", "--status", "completed", stdout=io.StringIO())
    assert set(Job.objects.filter(id__in=[j.id for j in backlog]).values_list("lane", flat=True)) == {"bulk"}
    wait_for(lambda: Extraction.objects.filter(job__lane="bulk", outcome="ok").count() >= 3, timeout=60)

    live = _post_sessions(api, 1, "live")

    wait_for(lambda: _all_completed(live), timeout=60)
    bulk_done = Extraction.objects.filter(job__lane="bulk", outcome="ok").count()
    assert bulk_done < len(backlog)  # the visitor did not wait for the backlog
    assert Job.objects.get(id=live[0]).lane == "live"
    wait_for(lambda: _all_completed([str(j.id) for j in backlog]), timeout=120)
    assert fake_claude.stats()["rate_limited"] == 0
    assert governor.status()["granted"]["bulk"] >= len(backlog)


def test_a_report_that_can_tighten_nothing_costs_no_second_round_trip(limits, redis_client):
    decision = governor.acquire(lane=LIVE, estimate=CALL)
    state_key = cache.make_key("governor:state")
    state_before = redis_client.hgetall(state_key)
    roomy = RateLimits(limits={"requests": Limit(limit=600, remaining=500, reset_at=time.time() + 5)})

    assert not governor.settle(decision, input_tokens=80, output_tokens=20, calls=1, report=roomy)

    assert redis_client.hgetall(state_key) == state_before
    assert governor.status()["tightenings"] == 0
