"""Read-side queries shared by health, metrics, alerts and the admin.

Figures that span processes are computed from the ledger and Extraction rows at read time,
so the web and worker containers always agree (SPEC §10).
"""

from __future__ import annotations

import contextlib
import functools
import math
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Avg, Count, F, Max, Min, Q, Sum
from django.utils import timezone
from redis.exceptions import RedisError

from nexus_project.db import db_now, fetchone_prepared
from prospects.services import SessionData
from tenants.models import Tenant

from .models import LIVE_TRIGGER, Extraction, ExtractionOutcome, Job, JobStatus, SessionAlias


def job_for_post(
    *, tenant_id: int, session_id: str, fingerprint: str, hashes: list[str], now: datetime
) -> tuple[uuid.UUID, str] | None:
    """(id, session_id) of this session's own job in its tenant, else of the tenant's most
    recent job whose current
    transcript is one of ``hashes`` (the POST's prefixes it may continue, chosen by the
    caller): one indexed query, the unique (tenant, session) key OR the alias OR (tenant,
    transcript_hash, fingerprint).

    Raw SQL: the ORM spent ~1.4 ms of the web worker's CPU building this query, more than the
    rest of a POST's ledger work; prepared, because planning it cost PostgreSQL ~0.9 ms."""
    since = now - timedelta(hours=settings.NEXUS["CONTINUATION_WINDOW_HOURS"])
    params: dict[str, Any] = {
        "tenant": tenant_id, "session_id": session_id, "since": since, "fingerprint": fingerprint,
    }  # fmt: skip
    params.update((f"h{i}", digest) for i, digest in enumerate(hashes))
    row = fetchone_prepared(_job_for_post_sql(len(hashes), bool(fingerprint)), params)
    return (uuid.UUID(str(row[0])), row[1]) if row is not None else None


@functools.lru_cache(maxsize=64)
def _job_for_post_sql(n_hashes: int, with_fingerprint: bool) -> str:
    table = Job._meta.db_table
    digests = ", ".join(f"%(h{i})s" for i in range(n_hashes))
    # The same fingerprint when both have one: a job without one matches any POST, and a POST
    # without one matches any job.
    same_visitor = "AND fingerprint IN (%(fingerprint)s, '')" if with_fingerprint else ""
    aliases = SessionAlias._meta.db_table
    # The session's own job, or the job an earlier POST of this sessionId continued (a late
    # retry of it), first; then the longest transcript extended, the latest among equals.
    return f"""
        SELECT id, session_id FROM {table}
        WHERE (tenant_id = %(tenant)s AND session_id = %(session_id)s)
           OR id = (SELECT job_id FROM {aliases}
                    WHERE tenant_id = %(tenant)s AND session_id = %(session_id)s)
           OR (tenant_id = %(tenant)s AND transcript_hash IN ({digests}) {same_visitor}
               AND revised_at >= %(since)s AND purged_at IS NULL)
        ORDER BY session_id = %(session_id)s DESC,
                 id = (SELECT job_id FROM {aliases}
                       WHERE tenant_id = %(tenant)s AND session_id = %(session_id)s) DESC,
                 message_count DESC, revised_at DESC
        LIMIT 1
    """  # noqa: S608 - the models' table names and placeholders only


def queue_counts() -> dict[str, Any]:
    """Open jobs by status and the pending ages; index-backed (status, revised_at), so cheap
    however many completed jobs the ledger holds. Ages are on the database's clock."""
    now = db_now()
    open_statuses = [JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.FAILED]
    counts = dict(
        Job.objects.filter(status__in=open_statuses)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    ages = Job.objects.filter(status=JobStatus.PENDING).aggregate(
        oldest=Min("revised_at"), newest=Max("revised_at")
    )
    row: dict[str, Any] = {str(status): counts.get(status, 0) for status in open_statuses}
    for name in ("oldest", "newest"):
        when = ages[name]
        row[f"{name}_pending_age_s"] = round((now - when).total_seconds(), 3) if when else 0.0
    return row


def open_jobs_by_tenant() -> dict[str, dict[str, int]]:
    """Pending, processing and failed jobs per tenant slug (every tenant listed, zeros too)."""
    open_statuses = [JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.FAILED]
    table = {
        slug: dict.fromkeys(map(str, open_statuses), 0)
        for slug in Tenant.objects.values_list("slug", flat=True)
    }
    rows = (
        Job.objects.filter(status__in=open_statuses)
        .values_list("tenant__slug", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for slug, status, n in rows:
        table.setdefault(slug, dict.fromkeys(map(str, open_statuses), 0))[status] = n
    return table


def job_status_counts() -> dict[str, int]:
    """Jobs in the ledger by status (every status, completed ones included)."""
    rows = Job.objects.values("status").annotate(n=Count("id")).order_by()
    return {row["status"]: row["n"] for row in rows}


def extraction_window(*, hours: float = 1.0) -> dict[str, Any]:
    """Claude calls in the window (by the database's clock): counts, error rate and p95 pipeline latency.

    The p95 is of visitor-triggered extractions only, from their POST: a re-extraction an
    operator asked for (``reprocess``, the admin's re-extract) is not what the alert is about."""
    since = db_now() - timedelta(hours=hours)
    recent = Extraction.objects.filter(created_at__gte=since)
    counts = recent.aggregate(
        ok=Count("id", filter=Q(outcome=ExtractionOutcome.OK)),
        failed=Count("id", filter=Q(outcome=ExtractionOutcome.FAILED)),
    )
    total = counts["ok"] + counts["failed"]
    # The p95 row is fetched alone (ORDER BY … OFFSET n): the database sorts, Python gets one value.
    timed = recent.filter(
        outcome=ExtractionOutcome.OK, trigger=LIVE_TRIGGER, pipeline_latency_ms__isnull=False
    )
    p95 = 0.0
    n = timed.count() if counts["ok"] else 0
    if n:
        index = max(0, math.ceil(0.95 * n) - 1)  # nearest-rank percentile
        ranked = timed.order_by("pipeline_latency_ms").values_list("pipeline_latency_ms", flat=True)
        value = ranked[index]
        p95 = value / 1000 if value is not None else 0.0
    return {
        "calls": total,
        "ok": counts["ok"],
        "failed": counts["failed"],
        "error_rate": round(counts["failed"] / total, 4) if total else 0.0,
        "p95_latency_s": round(p95, 3),
    }


def status_summary(*, hours: float = 24.0) -> dict[str, Any]:
    """Counts and average processing time by status for jobs revised in the window."""
    since = db_now() - timedelta(hours=hours)
    rows = (
        Job.objects.filter(revised_at__gte=since)
        .values("status")
        .annotate(count=Count("id"), avg_processing=Avg(F("processed_at") - F("revised_at")))
    )
    return {
        r["status"]: {
            "count": r["count"],
            "avg_processing_s": round(r["avg_processing"].total_seconds(), 3)
            if r["avg_processing"]
            else None,
        }
        for r in rows
    }


def alert_figures(
    queue: dict[str, Any] | None = None, window: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Each alert threshold of SPEC §4 with its current figure and whether it is crossed;
    pass figures already read to save the queries."""
    limits = settings.NEXUS
    queue = queue or queue_counts()
    window = window or extraction_window()
    figures = {
        "queue_length": (queue["pending"], limits["ALERT_QUEUE_LENGTH"]),
        "oldest_pending": (queue["oldest_pending_age_s"], limits["ALERT_OLDEST_PENDING_SECONDS"]),
        "error_rate": (window["error_rate"], limits["ALERT_ERROR_RATE"]),
        "p95_latency": (window["p95_latency_s"], limits["ALERT_P95_LATENCY_SECONDS"]),
    }
    return {
        name: {"value": value, "threshold": threshold, "crossed": value > threshold}
        for name, (value, threshold) in figures.items()
    }


# The hour's figures sort every extraction of the last hour (the p95): ~150 ms at 50
# extractions/s. The public health GET reuses one computed at most this many seconds ago,
# shared by every web process, so polling it cannot load the database; the alerts task, the
# metrics scrape and the staff view compute their own.
WINDOW_SHARE_SECONDS = 10
_WINDOW_KEY = "health:extraction_window"


def extraction_window_shared() -> dict[str, Any]:
    """``extraction_window()`` as computed by any process within the last few seconds."""
    try:
        window: dict[str, Any] | None = cache.get(_WINDOW_KEY)
    except (RedisError, OSError):
        return extraction_window()
    if window is None:
        window = extraction_window()
        with contextlib.suppress(RedisError, OSError):  # unshared, still correct
            cache.set(_WINDOW_KEY, window, timeout=WINDOW_SHARE_SECONDS)
    return window


def active_alerts(queue: dict[str, Any] | None = None) -> list[str]:
    """Names of the alert thresholds crossed (queue counts as read, the hour's figures from
    ``extraction_window_shared``): the health GET's view of the alerts."""
    figures = alert_figures(queue, extraction_window_shared())
    return [name for name, figure in figures.items() if figure["crossed"]]


def queue_metrics() -> dict[str, Any]:
    """The queue's figures from the ledger, for the staff JSON view and ``queue_stats``."""
    queue = queue_counts()
    window = extraction_window()
    totals = Job.objects.aggregate(jobs=Count("id"), revisions=Sum("revision"))
    return {
        "queue_name": settings.CELERY_TASK_DEFAULT_QUEUE,
        # Work not yet done: waiting for a worker or being worked on.
        "queue_length": queue["pending"] + queue["processing"],
        "pending": queue["pending"],
        "processing": queue["processing"],
        "failed": queue["failed"],
        "oldest_pending_age_s": queue["oldest_pending_age_s"],
        "newest_pending_age_s": queue["newest_pending_age_s"],
        "totals": {"jobs": totals["jobs"], "revisions": totals["revisions"] or 0},
        "by_status_24h": status_summary(hours=24),
        "by_tenant": open_jobs_by_tenant(),
        "last_hour": window,
        "error_rate": window["error_rate"],
        "alerts": [name for name, figure in alert_figures(queue, window).items() if figure["crossed"]],
        "generated_at": timezone.now().isoformat(),
    }


def prospect_sessions(*, prospect_id: int) -> list[SessionData]:
    """What the fold reads of a prospect's sessions, in order of their latest revision."""
    rows = (
        Job.objects.filter(prospect_id=prospect_id).order_by("revised_at", "id").values_list(*_SESSION_FIELDS)
    )
    return [SessionData(*row) for row in rows]


# SessionData's fields, in its order, as Job columns.
_SESSION_FIELDS = (
    "extracted", "created_at", "revised_at", "channel", "constructor_id", "constructor_at",
    "page_context", "is_returning", "consent_given", "consent_at",
)  # fmt: skip
