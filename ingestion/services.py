"""Ledger writes on the request side: accept a POSTed transcript, publish, re-queue.

Every decision about a session is taken under its row lock, and a task is published only
after the transaction commits and only when the job turns pending with no dispatch already
outstanding, so N POSTs while a session is busy cost at most one extra extraction.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from . import metrics
from .errors import FingerprintConflict
from .logcontext import request_id_var
from .models import Job, JobStatus

logger = logging.getLogger(__name__)

# Broker failures the publisher may meet; anything else is a bug and should surface.
try:  # pragma: no cover - import shapes differ only by installed transports
    from kombu.exceptions import OperationalError as _KombuOperationalError
    from redis.exceptions import RedisError as _RedisError

    PUBLISH_ERRORS: tuple[type[BaseException], ...] = (_KombuOperationalError, _RedisError, OSError)
except ImportError:  # pragma: no cover
    PUBLISH_ERRORS = (OSError,)


class Outcome(enum.StrEnum):
    CREATED = "created"
    REVISED = "revised"
    DUPLICATE = "duplicate"
    STALE = "stale"


@dataclass(frozen=True)
class Acceptance:
    job_id: uuid.UUID
    outcome: Outcome
    revision: int
    dispatched: bool


def transcript_hash(messages: list[dict[str, str]]) -> str:
    canonical = json.dumps(
        [[m["role"], m["content"]] for m in messages], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _grace() -> timedelta:
    return timedelta(seconds=settings.NEXUS["DISPATCH_GRACE_SECONDS"])


def dispatch_outstanding(dispatched_at: datetime | None, now: datetime) -> bool:
    """A published task not yet claimed and not yet presumed lost."""
    return dispatched_at is not None and dispatched_at >= now - _grace()


def job_accept(
    *,
    session_id: str,
    fingerprint: str,
    messages: list[dict[str, str]],
    metadata: dict[str, Any],
) -> Acceptance:
    """Record a POSTed transcript in the session's ledger row (SPEC §4 POST semantics)."""
    now = timezone.now()
    digest = transcript_hash(messages)
    # A new session is one statement (INSERT … ON CONFLICT DO NOTHING RETURNING), committed on
    # its own: no BEGIN/SELECT/COMMIT round trips on the path every conversation starts with.
    job = _insert_job(session_id, fingerprint, messages, digest, metadata, now)
    if job is not None:
        _publish_on_commit(job.id)
        return Acceptance(job.id, Outcome.CREATED, 1, dispatched=True)
    with transaction.atomic():
        job = _lock_job(session_id)
        if job is None:  # the row was deleted since our INSERT met it: this POST starts it again
            job = _insert_job(session_id, fingerprint, messages, digest, metadata, now)
            if job is None:
                job = _lock_job(session_id)
                assert job is not None
            else:
                _publish_on_commit(job.id)
                return Acceptance(job.id, Outcome.CREATED, 1, dispatched=True)

        if job.fingerprint != fingerprint:
            raise FingerprintConflict()
        if digest == job.transcript_hash:
            return Acceptance(job.id, Outcome.DUPLICATE, job.revision, dispatched=False)
        if len(messages) < job.message_count and _is_stale_prefix(job, messages):
            return Acceptance(job.id, Outcome.STALE, job.revision, dispatched=False)

        job.messages = messages
        job.transcript_hash = digest
        job.message_count = len(messages)
        job.metadata = metadata
        job.purged_at = None
        job.revision += 1
        job.revised_at = now
        job.attempts = 0
        job.claims = 0
        job.next_attempt_at = None
        job.last_error = ""
        job.error_category = ""
        job.trigger = "auto"
        fields = [
            "messages", "transcript_hash", "message_count", "metadata", "purged_at", "revision",
            "revised_at", "attempts", "claims", "next_attempt_at", "last_error", "error_category",
            "trigger", "updated_at",
        ]  # fmt: skip
        dispatch = False
        # A worker mid-run keeps the row processing; it sees the newer revision when it
        # finishes and re-queues the job itself.
        if job.status != JobStatus.PROCESSING:
            job.status = JobStatus.PENDING
            fields.append("status")
            if not dispatch_outstanding(job.dispatched_at, now):
                job.dispatched_at = now
                job.enqueued_at = now
                fields += ["dispatched_at", "enqueued_at"]
                dispatch = True
        job.save(update_fields=fields)
        if dispatch:
            _publish_on_commit(job.id)
        return Acceptance(job.id, Outcome.REVISED, job.revision, dispatched=dispatch)


def _lock_job(session_id: str) -> Job | None:
    # The transcript and result are only read when needed: most POSTs never look at them.
    return (
        Job.objects.select_for_update()
        .defer("messages", "extracted", "metadata")
        .filter(session_id=session_id)
        .first()
    )


def _insert_job(
    session_id: str,
    fingerprint: str,
    messages: list[dict[str, str]],
    digest: str,
    metadata: dict[str, Any],
    now: datetime,
) -> Job | None:
    """INSERT … ON CONFLICT DO NOTHING RETURNING: the new row, or None when the session exists.

    One round trip; the column list comes from the model, so it follows migrations."""
    job = Job(
        session_id=session_id,
        fingerprint=fingerprint,
        messages=messages,
        transcript_hash=digest,
        message_count=len(messages),
        metadata=metadata,
        revised_at=now,
        dispatched_at=now,
        enqueued_at=now,
        created_at=now,
        updated_at=now,
    )
    fields = Job._meta.concrete_fields
    values = [f.get_db_prep_save(f.pre_save(job, True), connection) for f in fields]
    with connection.wrap_database_errors:  # psycopg errors surface as Django's, as elsewhere
        if connection.vendor == "postgresql":
            connection.ensure_connection()
            # Server-side binding for this one statement (Django's cursors bind client-side):
            # the 1-2 KB transcript travels as a parameter instead of being quoted into the SQL
            # text, and after a few runs psycopg prepares the statement, so PostgreSQL skips
            # parsing and planning it. About 90 µs of the web worker's CPU per new session.
            with psycopg.Cursor(connection.connection) as cursor:
                cursor.execute(_insert_sql(), values)
                inserted = cursor.fetchone() is not None
        else:
            with connection.cursor() as cursor:
                cursor.execute(_insert_sql(), values)
                inserted = cursor.fetchone() is not None
    return job if inserted else None


@functools.cache
def _insert_sql() -> str:
    fields = Job._meta.concrete_fields
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    return (
        f"INSERT INTO {Job._meta.db_table} ({columns}) VALUES ({placeholders}) "  # noqa: S608 - model names
        "ON CONFLICT (session_id) DO NOTHING RETURNING id"
    )


def _is_stale_prefix(job: Job, messages: list[dict[str, str]]) -> bool:
    """Only a strict prefix of the stored transcript is stale (SPEC §10). After cleanup purged
    the transcript a shorter one cannot be compared; it is taken as a late retry."""
    if job.purged_at is not None:
        return True
    stored = Job.objects.values_list("messages", flat=True).get(id=job.id)
    prefix = [{"role": m["role"], "content": m["content"]} for m in stored[: len(messages)]]
    return prefix == [{"role": m["role"], "content": m["content"]} for m in messages]


def _publish_on_commit(job_id: uuid.UUID, countdown: float | None = None) -> None:
    request_id = request_id_var.get()
    transaction.on_commit(lambda: job_publish(job_id=job_id, countdown=countdown, request_id=request_id))


def job_publish(*, job_id: uuid.UUID, countdown: float | None = None, request_id: str = "") -> bool:
    """Publish ``process_session`` for a job; never raises for a broker failure.

    The row already says a dispatch is outstanding. If the broker refuses, that mark is
    cleared so the next sweep publishes again (the row, not the message, is the promise).
    """
    from .tasks import process_session

    try:
        process_session.apply_async(
            args=[str(job_id)], countdown=countdown, headers={"nexus_request_id": request_id}
        )
    except PUBLISH_ERRORS as exc:
        logger.warning(
            "publish failed; the sweeper will publish later",
            extra={"job_id": str(job_id), "error": type(exc).__name__},
        )
        Job.objects.filter(id=job_id, status=JobStatus.PENDING).update(dispatched_at=None)
        return False
    return True


def job_requeue(*, job_id: uuid.UUID, reextract: bool = False) -> bool:
    """Put a job back in the queue (admin action, ``reprocess``): pending, counters reset.

    ``reextract`` asks for a deliberate re-extraction, recorded as its own Extraction even
    for a revision already extracted. A purged job (transcript deleted) cannot be re-queued.
    A job being processed is left alone. Returns whether it was queued.
    """
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.select_for_update().defer("messages", "extracted").filter(id=job_id).first()
        if job is None or job.purged_at is not None or job.status == JobStatus.PROCESSING:
            return False
        job.status = JobStatus.PENDING
        job.attempts = 0
        job.claims = 0
        job.next_attempt_at = None
        job.last_error = ""
        job.error_category = ""
        job.dispatched_at = now
        job.enqueued_at = now
        if reextract:
            job.trigger = f"reprocess:{uuid.uuid4().hex[:12]}"
        job.save(
            update_fields=[
                "status", "attempts", "claims", "next_attempt_at", "last_error", "error_category",
                "dispatched_at", "enqueued_at", "trigger", "updated_at",
            ]
        )  # fmt: skip
        _publish_on_commit(job.id)
    return True


def jobs_due_for_dispatch(*, now: datetime, limit: int) -> list[uuid.UUID]:
    """Pending jobs with no outstanding dispatch whose backoff has passed, and processing
    jobs whose lease expired (their worker died): what the sweeper publishes again."""
    lost = Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=now - _grace())
    ready = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    pending = Q(status=JobStatus.PENDING) & lost & ready
    orphaned = Q(status=JobStatus.PROCESSING, lease_until__lt=now) & lost
    return list(
        Job.objects.filter(pending | orphaned).order_by("revised_at").values_list("id", flat=True)[:limit]
    )


def job_sweep(*, limit: int = 1000) -> int:
    """Publish again every job whose task was lost; returns how many were published."""
    now = timezone.now()
    ids = jobs_due_for_dispatch(now=now, limit=limit)
    if not ids:
        return 0
    # Mark first so a concurrent POST does not publish the same jobs a second time.
    Job.objects.filter(id__in=ids).update(dispatched_at=now)
    published = sum(job_publish(job_id=job_id) for job_id in ids)
    metrics.record_sweeper_redispatch(published)
    logger.info("sweeper re-dispatched jobs", extra={"count": published, "found": len(ids)})
    return published
