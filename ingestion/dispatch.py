"""Dispatch: publish a job's task after its row commits, and the sweeper that publishes again
whatever lost its task.

The row, not the broker message, is the promise (SPEC §10): ``dispatched_at`` on the row says
a task is outstanding. A publish the broker refuses clears that mark, and the sweeper (beat,
every 30 s) publishes every pending job whose dispatch is missing or older than the grace, and
every processing job whose lease expired. The task is sent by name, so this module needs
nothing from ``tasks`` (which imports the pipeline, which publishes through here).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from nexus_project.celery import app
from nexus_project.db import db_now
from prospects import webhooks

from .logcontext import request_id_var
from .models import Job, JobStatus, Lane

logger = logging.getLogger(__name__)

PROCESS_SESSION = "ingestion.process_session"
# Broker failures a publish may meet; anything else is a bug and should surface.
PUBLISH_ERRORS: tuple[type[BaseException], ...] = (KombuOperationalError, RedisError, OSError)
# The sweeper's re-dispatch total, in the shared cache so every process reads one figure.
SWEEPER_KEY = "metrics:sweeper_redispatches"
_CACHE_ERRORS = (RedisError, OSError)


def _grace() -> timedelta:
    return timedelta(seconds=settings.NEXUS["DISPATCH_GRACE_SECONDS"])


def dispatch_outstanding(dispatched_at: datetime | None, now: datetime) -> bool:
    """A published task not yet claimed and not yet presumed lost."""
    return dispatched_at is not None and dispatched_at >= now - _grace()


def queue_for(lane: str) -> str:
    """The Celery queue of a lane: live work (a POST's revision) on the default queue, bulk work
    (reprocess, admin re-queue) on its own, so a backlog of bulk never sits in front of a
    visitor's message in one queue. Every worker consumes both."""
    return settings.NEXUS_BULK_QUEUE if lane == Lane.BULK else settings.CELERY_TASK_DEFAULT_QUEUE


def publish_on_commit(job_id: uuid.UUID, countdown: float | None = None, lane: str = Lane.LIVE) -> None:
    """Publish the job's task once the current transaction commits (never inside it)."""
    request_id = request_id_var.get()
    transaction.on_commit(
        lambda: job_publish(job_id=job_id, countdown=countdown, request_id=request_id, lane=lane)
    )


def job_publish(
    *, job_id: uuid.UUID, countdown: float | None = None, request_id: str = "", lane: str = Lane.LIVE
) -> bool:
    """Publish ``process_session`` for a job; never raises for a broker failure.

    The row already says a dispatch is outstanding. If the broker refuses, that mark is
    cleared so the next sweep publishes again (the row, not the message, is the promise).
    """
    try:
        app.send_task(
            PROCESS_SESSION,
            args=[str(job_id)],
            countdown=countdown,
            headers={"nexus_request_id": request_id},
            queue=queue_for(lane),
        )
    except PUBLISH_ERRORS as exc:
        logger.warning(
            "publish failed; the sweeper will publish later",
            extra={"job_id": str(job_id), "error": type(exc).__name__},
        )
        Job.objects.filter(id=job_id, status=JobStatus.PENDING).update(dispatched_at=None)
        return False
    return True


def _due(now: datetime) -> Q:
    lost = Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=now - _grace())
    ready = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    pending = Q(status=JobStatus.PENDING) & lost & ready
    orphaned = Q(status=JobStatus.PROCESSING, lease_until__lt=now) & lost
    return pending | orphaned


def jobs_due_for_dispatch(*, now: datetime, limit: int) -> list[uuid.UUID]:
    """Pending jobs with no outstanding dispatch whose backoff has passed, and processing
    jobs whose lease expired (their worker died): what the sweeper publishes again."""
    return list(Job.objects.filter(_due(now)).order_by("revised_at").values_list("id", flat=True)[:limit])


def job_sweep(*, limit: int = 1000) -> int:
    """Publish again every job whose task was lost; returns how many were published.

    Lost and due are judged on the database's clock: a beat or worker host whose clock is
    off neither holds a lost job back nor publishes an outstanding one early."""
    now = db_now()
    # Each on its lane's queue.
    due = list(Job.objects.filter(_due(now)).order_by("revised_at").values_list("id", "lane")[:limit])
    if not due:
        return 0
    ids = [job_id for job_id, _ in due]
    # Mark first so a concurrent POST does not publish the same jobs a second time.
    Job.objects.filter(id__in=ids).update(dispatched_at=now)
    published = sum(job_publish(job_id=job_id, lane=lane) for job_id, lane in due)
    _count_redispatches(published)
    logger.info("sweeper re-dispatched jobs", extra={"count": published, "found": len(ids)})
    return published


def _count_redispatches(count: int) -> None:
    if count <= 0:
        return
    try:
        cache.add(SWEEPER_KEY, 0, timeout=None)
        cache.incr(SWEEPER_KEY, count)
    except (*_CACHE_ERRORS, ValueError) as exc:  # ValueError: the key vanished in between
        logger.warning("sweeper metric not stored", extra={"error": type(exc).__name__, "count": count})


def sweeper_redispatch_total() -> int | None:
    """Jobs the sweeper has published again, over every process; None when unreadable."""
    try:
        return int(cache.get(SWEEPER_KEY) or 0)
    except _CACHE_ERRORS:
        return None


EVENT_DELIVER = "ingestion.event_deliver"
DELIVERY_ATTEMPT = "ingestion.delivery_attempt"


def events_publish(event_ids: list[int]) -> None:
    """Publish the delivery of freshly committed events (prospects.events calls it on
    commit); a broker failure is left to the sweeper, which finds undelivered events."""
    for event_id in event_ids:
        try:
            app.send_task(EVENT_DELIVER, args=[event_id])
        except PUBLISH_ERRORS as exc:
            logger.warning(
                "event publish failed; the sweeper will publish later", extra={"error": type(exc).__name__}
            )
            return


# RabbitMQ's default consumer_timeout (30 min): it closes a channel that holds a delivered
# message unacked for longer, which an ETA message does until its ETA.
RABBITMQ_CONSUMER_TIMEOUT_SECONDS = 1800.0


def eta_limit_seconds() -> float:
    """The longest countdown a delivery retry is published with. Redis hands an ETA message to
    a worker at once, unacked until it runs, and hands out another copy after each visibility
    timeout; all the copies run at the ETA (the delivery's row lets one through, the others
    cost a worker slot each). Half the shorter of the two timeouts leaves the other half for
    a busy pool."""
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    return min(visibility, RABBITMQ_CONSUMER_TIMEOUT_SECONDS) / 2


def delivery_publish(delivery_id: int, countdown: float | None = None) -> None:
    """Publish an attempt at a delivery, now or after ``countdown``. A longer wait than
    ``eta_limit_seconds()`` publishes nothing: the row's ``next_attempt_at`` holds the due
    time and the sweeper publishes the attempt once it has passed (at most a sweep late), as
    ``budget.job_defer_for_budget`` does for jobs."""
    if countdown is not None and countdown > eta_limit_seconds():
        return
    try:
        app.send_task(DELIVERY_ATTEMPT, args=[delivery_id], countdown=countdown)
    except PUBLISH_ERRORS as exc:
        logger.warning(
            "delivery publish failed; the sweeper will publish later", extra={"error": type(exc).__name__}
        )


def events_sweep() -> int:
    """Publish again the events and deliveries whose task was lost (a flushed broker, a
    killed worker): undelivered events never prepared and deliveries past due."""
    events, deliveries = webhooks.deliveries_due()
    if not events and not deliveries:
        return 0
    events_publish(events)
    for delivery_id in deliveries:
        delivery_publish(delivery_id)
    logger.info(
        "sweeper re-dispatched webhook deliveries",
        extra={"events": len(events), "deliveries": len(deliveries)},
    )
    return len(events) + len(deliveries)
