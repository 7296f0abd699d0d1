"""The producer's health report (SPEC §3, §10): cheap enough to poll.

database down -> unhealthy (503); broker or workers down, breaker open, or an alert
threshold crossed -> degraded (200). Workers are judged by their heartbeat, not by a ping.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection
from kombu.utils.url import maybe_sanitize_url

from nexus_project.celery import app

from .. import selectors
from ..worker import breaker, governor, heartbeat


def database_ok() -> bool:
    """One ``SELECT 1``: whether the database answers now."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure to reach the database means "down"
        return False


def broker_ok() -> bool:
    """Whether the broker accepts a connection (one try, one second)."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=1)
        return True
    except Exception:  # noqa: BLE001 - kombu raises transport-specific errors; all mean "down"
        return False


def transport() -> str:
    """The broker URL for display, credentials removed."""
    return "celery+" + maybe_sanitize_url(settings.CELERY_BROKER_URL).replace(":**@", "@")


def report() -> dict[str, Any]:
    body: dict[str, Any] = {"version": settings.VERSION, "transport": transport()}
    if not database_ok():
        body.update(
            status="unhealthy",
            checks={"database": "down", "broker": "unknown", "workers": "unknown"},
        )
        return body
    broker_up = broker_ok()
    workers = heartbeat.workers_alive()
    queue = selectors.queue_counts()
    alerts = selectors.active_alerts(queue)  # the queue counts just read, not read again
    paused = breaker.state()
    body["checks"] = {
        "database": "up",
        "broker": "up" if broker_up else "down",
        "workers": "up" if workers else "down",
        "extractor": f"paused ({paused['category']})" if paused else "up",
    }
    body["queue"] = {
        "pending": queue["pending"],
        "processing": queue["processing"],
        "failed": queue["failed"],
        "oldest_pending_age_s": queue["oldest_pending_age_s"],
    }
    body["alerts"] = alerts
    body["governor"] = _governor_summary()
    body["worker_heartbeat_age_s"] = workers["age_s"] if workers else None
    degraded = not broker_up or not workers or bool(alerts) or paused is not None
    body["status"] = "degraded" if degraded else "healthy"
    return body


def _governor_summary() -> dict[str, Any]:
    """The rate governor's state: capacity left, deferrals, tightening by the API's headers."""
    state = governor.status()
    keys = ("redis", "effective_limits", "capacity_left", "tightened", "paused_for_s", "live_waiting")
    summary = {key: state[key] for key in keys if key in state}
    summary.update(
        deferrals=state.get("deferrals"), tightenings=state.get("tightenings"), fail_open=state["fail_open"]
    )
    return summary
