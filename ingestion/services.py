"""Ledger writes on the request side: accept a POSTed transcript, re-queue a job.

Every decision about a session is taken under its row lock, and a task is published only
after the transaction commits and only when the job turns pending with no dispatch already
outstanding, so N POSTs while a session is busy cost at most one extra extraction.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models.functions import Now
from django.utils import timezone

from nexus_project.db import db_now, fetchone_prepared, model_update
from tenants import directory

from . import selectors
from .dispatch import dispatch_outstanding, publish_on_commit
from .models import FRESH_RUN, LIVE_TRIGGER, Job, JobStatus, Lane, SessionAlias


class FingerprintConflict(Exception):
    """The sessionId is bound to another fingerprint (SPEC §10: sessionIds are guessable, so
    a session stays with the fingerprint it started with). The API answers 409."""


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
    # The POST's transcript extended a job of another sessionId and became its revision.
    continued: bool = False


@dataclass(frozen=True)
class Attribution:
    """What a POST says about where the visitor came from (REAL_SITE.md)."""

    channel: str = "web"
    constructor_id: str | None = None
    page_context: str = ""
    is_returning: bool | None = None
    consent_given: bool | None = None


def prefix_hashes(messages: list[dict[str, Any]]) -> list[str]:
    """The running SHA-256 of the transcript after each turn: ``[i]`` hashes ``messages[:i+1]``.

    One pass over the transcript (each turn is hashed once, the state copied per turn), so
    the hash of every prefix costs about what one hash of the whole did. The last one is the
    transcript's own hash (``Job.transcript_hash``)."""
    running = hashlib.sha256()
    hashes = []
    for m in messages:
        running.update(json.dumps([m["role"], m["content"]], ensure_ascii=False).encode())
        running.update(b"\n")  # a separator no JSON array contains unescaped
        hashes.append(running.copy().hexdigest())
    return hashes


def transcript_hash(messages: list[dict[str, Any]]) -> str:
    return prefix_hashes(messages)[-1] if messages else hashlib.sha256().hexdigest()


def job_accept(
    *,
    tenant_id: int | None = None,
    session_id: str,
    fingerprint: str,
    messages: list[dict[str, Any]],
    metadata: dict[str, Any],
    attribution: Attribution = Attribution(),
) -> Acceptance:
    """Record a POSTed transcript in the session's ledger row (SPEC §4 POST semantics), or in
    the recent job of the same tenant it continues under another sessionId (SPEC §12
    continuity). A session is the tenant's (None: the default tenant).

    Every time written is the database's clock (the sweeper compares ``dispatched_at`` with
    its grace): read inside the INSERT, or with the row lock, at no extra round trip."""
    if tenant_id is None:
        tenant_id = directory.default_tenant().id
    # Only where the database cannot stamp it (SQLite, see _insert_sql), and the continuation
    # window (24 h: a host's skew of minutes does not matter there).
    now = timezone.now()
    hashes = prefix_hashes(messages)
    digest = hashes[-1]
    continued_id: uuid.UUID | None = None
    candidates = _continuation_hashes(messages, hashes)
    if candidates:
        own_or_continued = selectors.job_for_post(
            tenant_id=tenant_id, session_id=session_id, fingerprint=fingerprint, hashes=candidates, now=now
        )
        if own_or_continued is not None and own_or_continued[1] != session_id:
            continued_id = own_or_continued[0]
        existing = own_or_continued is not None
    else:
        existing = False
    if not existing:
        # A new session is one statement (INSERT … ON CONFLICT DO NOTHING RETURNING), committed
        # on its own: no BEGIN/SELECT/COMMIT round trips on the path every chat starts with.
        job = _insert_job(tenant_id, session_id, fingerprint, messages, digest, metadata, attribution, now)
        if job is not None:
            publish_on_commit(job.id)
            return Acceptance(job.id, Outcome.CREATED, 1, dispatched=True)
    with transaction.atomic():
        if continued_id is None:
            job = _lock_job(tenant_id=tenant_id, session_id=session_id)
        else:
            job = _lock_job(job_id=continued_id)
        if job is None and continued_id is not None:
            # The job continued was deleted meanwhile (erasure): this POST starts its own.
            continued_id = None
            job = _lock_job(tenant_id=tenant_id, session_id=session_id)
        if job is None:  # the row was deleted since our INSERT met it: this POST starts it again
            job = _insert_job(
                tenant_id, session_id, fingerprint, messages, digest, metadata, attribution, now
            )
            if job is None:
                job = _lock_job(tenant_id=tenant_id, session_id=session_id)
                assert job is not None
            else:
                publish_on_commit(job.id)
                return Acceptance(job.id, Outcome.CREATED, 1, dispatched=True)

        now = job.db_now  # type: ignore[attr-defined]
        continued = continued_id is not None
        # A continued job without a fingerprint keeps none (the query matched it because one
        # side had none): its Prospect stays the one keyed by its first session.
        if job.fingerprint != fingerprint and not (continued and not (job.fingerprint and fingerprint)):
            raise FingerprintConflict()
        if digest == job.transcript_hash:
            return Acceptance(job.id, Outcome.DUPLICATE, job.revision, dispatched=False, continued=continued)
        if len(messages) < job.message_count and _is_stale_prefix(job, messages):
            return Acceptance(job.id, Outcome.STALE, job.revision, dispatched=False, continued=continued)

        changes: dict[str, Any] = {
            **FRESH_RUN,
            **_attribution_changes(job, attribution, now),
            "messages": messages,
            "transcript_hash": digest,
            "message_count": len(messages),
            "metadata": metadata,
            "purged_at": None,
            "revision": job.revision + 1,
            "revised_at": now,
            "trigger": LIVE_TRIGGER,
            "lane": Lane.LIVE,
        }
        dispatch = False
        # A worker mid-run keeps the row processing; it sees the newer revision when it
        # finishes and re-queues the job itself.
        if job.status != JobStatus.PROCESSING:
            changes["status"] = JobStatus.PENDING
            if not dispatch_outstanding(job.dispatched_at, now):
                changes.update(dispatched_at=now, enqueued_at=now)
                dispatch = True
        model_update(job, **changes)
        if continued:
            # This sessionId now names the job too: a late retry of this POST finds it.
            SessionAlias.objects.bulk_create(
                [SessionAlias(tenant_id=tenant_id, session_id=session_id, job_id=job.id)],
                ignore_conflicts=True,
            )
        if dispatch:
            publish_on_commit(job.id)
        return Acceptance(job.id, Outcome.REVISED, job.revision, dispatched=dispatch, continued=continued)


def _continuation_hashes(messages: list[dict[str, Any]], hashes: list[str]) -> list[str]:
    """The hashes a job this POST may continue can have: every proper prefix that holds at
    least one visitor turn, and the whole transcript (a resend of a continued POST is that
    job's duplicate). The assistant's greeting alone opens every chat of the site, so a prefix
    of assistant turns only says nothing about which chat this is. Empty when the transcript
    has no visitor turn before its last: the first POST of a chat never looks anything up."""
    first_user = next((i for i, m in enumerate(messages) if m["role"] == "user"), len(messages))
    if first_user >= len(messages) - 1:
        return []
    return hashes[first_user:]


def _attribution_changes(job: Job, attribution: Attribution, now: datetime) -> dict[str, Any]:
    """A revision's attribution: the first referrer stays, the latest page context, returning
    flag and consent replace (an absent value keeps the one before)."""
    changes: dict[str, Any] = {"channel": attribution.channel}
    if job.constructor_id is None and attribution.constructor_id is not None:
        changes.update(constructor_id=attribution.constructor_id, constructor_at=now)
    if attribution.page_context:
        changes["page_context"] = attribution.page_context
    if attribution.is_returning is not None:
        changes["is_returning"] = attribution.is_returning
    if attribution.consent_given is not None:
        changes["consent_given"] = attribution.consent_given
        if not attribution.consent_given:
            changes["consent_at"] = None
        elif job.consent_given is not True:
            changes["consent_at"] = now
    return changes


def _lock_job(
    *, tenant_id: int | None = None, session_id: str | None = None, job_id: uuid.UUID | None = None
) -> Job | None:
    """The job row, locked, by its (tenant, sessionId) or by its id. The transcript and result
    are only read when needed (most POSTs never look at them); ``db_now`` is the database's
    clock, read with the lock."""
    by_key = {"tenant_id": tenant_id, "session_id": session_id} if job_id is None else {"id": job_id}
    return (
        Job.objects.select_for_update()
        .defer("messages", "extracted", "metadata")
        .annotate(db_now=Now())
        .filter(**by_key)
        .first()
    )


def _insert_job(
    tenant_id: int,
    session_id: str,
    fingerprint: str,
    messages: list[dict[str, Any]],
    digest: str,
    metadata: dict[str, Any],
    attribution: Attribution,
    now: datetime,
) -> Job | None:
    """INSERT … ON CONFLICT DO NOTHING RETURNING: the new row, or None when the session exists.

    One round trip; the column list comes from the model, so it follows migrations."""
    job = Job(
        tenant_id=tenant_id,
        session_id=session_id,
        fingerprint=fingerprint,
        messages=messages,
        transcript_hash=digest,
        message_count=len(messages),
        metadata=metadata,
        channel=attribution.channel,
        constructor_id=attribution.constructor_id,
        constructor_at=now if attribution.constructor_id is not None else None,
        page_context=attribution.page_context,
        is_returning=attribution.is_returning,
        consent_given=attribution.consent_given,
        consent_at=now if attribution.consent_given else None,
        revised_at=now,
        dispatched_at=now,
        enqueued_at=now,
        created_at=now,
        updated_at=now,
    )
    fields = Job._meta.concrete_fields
    values = {str(f.column): f.get_db_prep_save(f.pre_save(job, True), connection) for f in fields}
    # auto_now_add / auto_now stamp their own, later now(): the row keeps the POST's one instant,
    # so created_at never passes revised_at (a prospect's last_seen came out before first_seen).
    for field in fields:
        if field.name in ("created_at", "updated_at"):
            values[str(field.column)] = field.get_db_prep_save(now, connection)
    # The 1-2 KB transcript travels as a parameter instead of being quoted into the SQL text,
    # and PostgreSQL skips parsing and planning it: about 90 µs of the web worker's CPU per
    # new session.
    inserted = fetchone_prepared(_insert_sql(), values) is not None
    return job if inserted else None


_INSERT_STAMPED = ("revised_at", "dispatched_at", "enqueued_at", "created_at", "updated_at")


@functools.cache
def _insert_sql() -> str:
    columns = [str(f.column) for f in Job._meta.concrete_fields]
    names = ", ".join(connection.ops.quote_name(column) for column in columns)
    # The times of a new row are the database's clock on PostgreSQL (the web host's may be
    # off); SQLite is a file on this host, whose clock is the one Python reads.
    stamped = _INSERT_STAMPED if connection.vendor == "postgresql" else ()
    placeholders = ", ".join(
        "statement_timestamp()" if column in stamped else f"%({column})s" for column in columns
    )
    return (
        f"INSERT INTO {Job._meta.db_table} ({names}) VALUES ({placeholders}) "  # noqa: S608 - model names
        "ON CONFLICT (tenant_id, session_id) DO NOTHING RETURNING id"
    )


def _is_stale_prefix(job: Job, messages: list[dict[str, str]]) -> bool:
    """Only a strict prefix of the stored transcript is stale (SPEC §10). After cleanup purged
    the transcript a shorter one cannot be compared; it is taken as a late retry."""
    if job.purged_at is not None:
        return True
    stored = Job.objects.values_list("messages", flat=True).get(id=job.id)
    prefix = [{"role": m["role"], "content": m["content"]} for m in stored[: len(messages)]]
    return prefix == [{"role": m["role"], "content": m["content"]} for m in messages]


def job_requeue(*, job_id: uuid.UUID, reextract: bool = False) -> bool:
    """Put a job back in the queue (admin action, ``reprocess``): pending, counters reset.

    ``reextract`` asks for a deliberate re-extraction, recorded as its own Extraction even
    for a revision already extracted. A purged job (transcript deleted) cannot be re-queued.
    A job being processed is left alone. Returns whether it was queued.
    """
    with transaction.atomic():
        now = db_now()
        job = Job.objects.select_for_update().defer("messages", "extracted").filter(id=job_id).first()
        if job is None or job.purged_at is not None or job.status == JobStatus.PROCESSING:
            return False
        trigger = f"reprocess:{uuid.uuid4().hex[:12]}" if reextract else job.trigger
        model_update(
            job,
            **FRESH_RUN,
            status=JobStatus.PENDING,
            dispatched_at=now,
            enqueued_at=now,
            trigger=trigger,
            lane=Lane.BULK,
        )
        publish_on_commit(job.id, lane=Lane.BULK)
    return True
