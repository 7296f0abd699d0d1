"""Read-side queries shared by health, metrics, alerts and the admin.

Figures that span processes are computed from the ledger and Extraction rows at read time,
so the web and worker containers always agree (SPEC §10).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Avg, Count, F, Max, Min, Q
from django.utils import timezone
from redis.exceptions import RedisError

from prospects.models import Extraction, ExtractionOutcome

from .models import Job, JobStatus

HEARTBEAT_KEY = "workers:heartbeat"


def queue_counts() -> dict[str, Any]:
    now = timezone.now()
    row = Job.objects.aggregate(
        pending=Count("id", filter=Q(status=JobStatus.PENDING)),
        processing=Count("id", filter=Q(status=JobStatus.PROCESSING)),
        failed=Count("id", filter=Q(status=JobStatus.FAILED)),
        oldest_pending=Min("revised_at", filter=Q(status=JobStatus.PENDING)),
        newest_pending=Max("revised_at", filter=Q(status=JobStatus.PENDING)),
    )
    oldest, newest = row.pop("oldest_pending"), row.pop("newest_pending")
    row["oldest_pending_age_s"] = round((now - oldest).total_seconds(), 3) if oldest else 0.0
    row["newest_pending_age_s"] = round((now - newest).total_seconds(), 3) if newest else 0.0
    return row


def extraction_window(*, hours: float = 1.0) -> dict[str, Any]:
    """Claude calls in the window: counts, error rate and p95 pipeline latency."""
    since = timezone.now() - timedelta(hours=hours)
    recent = Extraction.objects.filter(created_at__gte=since)
    counts = recent.aggregate(
        ok=Count("id", filter=Q(outcome=ExtractionOutcome.OK)),
        failed=Count("id", filter=Q(outcome=ExtractionOutcome.FAILED)),
    )
    total = counts["ok"] + counts["failed"]
    latencies = list(
        recent.filter(outcome=ExtractionOutcome.OK, pipeline_latency_ms__isnull=False)
        .order_by("pipeline_latency_ms")
        .values_list("pipeline_latency_ms", flat=True)
    )
    p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))] / 1000 if latencies else 0.0
    return {
        "calls": total,
        "ok": counts["ok"],
        "failed": counts["failed"],
        "error_rate": round(counts["failed"] / total, 4) if total else 0.0,
        "p95_latency_s": round(p95, 3),
    }


def status_summary(*, hours: float = 24.0) -> dict[str, Any]:
    """Counts and average processing time by status for jobs revised in the window."""
    since = timezone.now() - timedelta(hours=hours)
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


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure to reach the database means "down"
        return False


def workers_alive() -> dict[str, Any] | None:
    """The freshest worker heartbeat, or None when no worker beat within the TTL."""
    try:
        beat = cache.get(HEARTBEAT_KEY)
    except (RedisError, OSError):
        return None
    if beat is None:
        return None
    return {"hostname": beat["hostname"], "age_s": round(time.time() - beat["at"], 1)}


def broker_ok() -> bool:
    from nexus_project.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=1)
        return True
    except Exception:  # noqa: BLE001 - kombu raises transport-specific errors; all mean "down"
        return False


def active_alerts() -> list[str]:
    """Names of the alert thresholds crossed right now."""
    limits = settings.NEXUS
    queue = queue_counts()
    window = extraction_window()
    crossed = []
    if queue["pending"] > limits["ALERT_QUEUE_LENGTH"]:
        crossed.append("queue_length")
    if queue["oldest_pending_age_s"] > limits["ALERT_OLDEST_PENDING_SECONDS"]:
        crossed.append("oldest_pending")
    if window["calls"] and window["error_rate"] > limits["ALERT_ERROR_RATE"]:
        crossed.append("error_rate")
    if window["p95_latency_s"] > limits["ALERT_P95_LATENCY_SECONDS"]:
        crossed.append("p95_latency")
    return crossed
