"""Spend caps: extractions per session per day and a daily token budget (SPEC §10, abuse).

sessionIds are guessable and the endpoint is public, so a script could make us pay for
endless extractions. Spend is what the Extraction rows already record (one row per extractor
call, with its tokens), counted over the current UTC day, so every worker agrees without a
second ledger. When a cap is reached the job is not dropped: it stays pending with
``next_attempt_at`` at the next UTC midnight, when the caps reset, and the sweeper publishes
it then. One ALERT log line per cap and day (deduplicated in the cache; if the cache is down
the alert is logged anyway — too many alerts beat none).

The pipeline asks before it claims::

    wait = budget.budget_defer_seconds(job_id)
    if wait is not None:
        budget.job_defer_for_budget(job_id=job_id, seconds=wait)
        return "over-budget"
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce
from redis.exceptions import RedisError

from nexus_project.db import db_now

from ..models import Extraction, Job, JobStatus

logger = logging.getLogger(__name__)

_CACHE_ERRORS = (RedisError, OSError)


def _day_bounds(now: datetime) -> tuple[datetime, datetime]:
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def session_extractions_today(*, job_id: uuid.UUID | str, now: datetime | None = None) -> int:
    """Extractor calls (successful or not) made for this session since UTC midnight."""
    start, _ = _day_bounds(now or db_now())
    return Extraction.objects.filter(job_id=job_id, created_at__gte=start).count()


def tokens_spent_today(*, now: datetime | None = None) -> int:
    """Tokens billed since UTC midnight, over all sessions (input + output + cache writes;
    cache reads are cheap and deliberately not counted)."""
    start, _ = _day_bounds(now or db_now())
    totals = Extraction.objects.filter(created_at__gte=start).aggregate(
        input=Coalesce(Sum("input_tokens"), 0),
        output=Coalesce(Sum("output_tokens"), 0),
        cache_write=Coalesce(Sum("cache_creation_tokens"), 0),
    )
    return int(totals["input"] + totals["output"] + totals["cache_write"])


# The day's token total is a SUM over every Extraction of the day: read it at most this often
# per process, not once per job (at 100 jobs/s that is 100 scans a second). The budget may be
# overshot by what the workers spend in this window.
_TOKENS_REFRESH_SECONDS = 5.0
_tokens_lock = threading.Lock()
_tokens_cached: tuple[float, str, int] = (0.0, "", 0)  # (read at, UTC day, total)


def _tokens_spent_today_cached(now: datetime) -> int:
    global _tokens_cached
    read_at, day, total = _tokens_cached
    today = now.date().isoformat()
    if day == today and time.monotonic() - read_at < _TOKENS_REFRESH_SECONDS:
        return total
    with _tokens_lock:
        total = tokens_spent_today(now=now)
        _tokens_cached = (time.monotonic(), today, total)
    return total


def forget_cached_totals() -> None:
    """Drop this process's cached day total (tests; a settings change)."""
    global _tokens_cached
    with _tokens_lock:
        _tokens_cached = (0.0, "", 0)


def budget_defer_seconds(job_id: uuid.UUID | str) -> float | None:
    """Seconds until this job may be extracted again, or None when it is within its caps.

    A cap of 0 switches that cap off. The day is the database's (the Extraction rows are
    stamped by it), so workers whose clocks disagree count the same day."""
    per_session = settings.NEXUS["MAX_EXTRACTIONS_PER_SESSION_PER_DAY"]
    token_budget = settings.NEXUS["DAILY_TOKEN_BUDGET"]
    if not per_session and not token_budget:
        return None
    now = db_now()
    _, reset_at = _day_bounds(now)
    wait = max((reset_at - now).total_seconds(), 1.0)
    if per_session and session_extractions_today(job_id=job_id, now=now) >= per_session:
        _alert_once("session_extraction_cap", now, job_id=str(job_id), limit=per_session)
        return wait
    if token_budget and _tokens_spent_today_cached(now) >= token_budget:
        _alert_once("daily_token_budget", now, job_id=str(job_id), limit=token_budget)
        return wait
    return None


def job_defer_for_budget(*, job_id: uuid.UUID | str, seconds: float) -> bool:
    """Leave the job pending until the caps reset. No task is published now: a countdown of
    hours would outlive the broker's visibility timeout, so the sweeper publishes it once
    ``next_attempt_at`` has passed. Returns whether the job was deferred."""
    now = db_now()
    # A processing row whose lease expired (its worker died) is taken back to pending too.
    waiting = Q(status=JobStatus.PENDING) | Q(status=JobStatus.PROCESSING, lease_until__lt=now)
    updated = Job.objects.filter(Q(id=job_id) & waiting).update(
        status=JobStatus.PENDING,
        claim_token=None,
        next_attempt_at=now + timedelta(seconds=seconds),
        dispatched_at=None,
        updated_at=now,
    )
    return bool(updated)


def _alert_once(kind: str, now: datetime, **extra: object) -> None:
    key = f"budget:alert:{kind}:{now.date().isoformat()}"
    if kind == "session_extraction_cap":
        key += f":{extra['job_id']}"
    try:
        first = cache.add(key, 1, timeout=86400)
    except _CACHE_ERRORS:
        first = True
    if first:
        logger.warning(
            "ALERT spend cap reached: extraction deferred to the next UTC day",
            extra={"alert": kind, **extra},
        )
