"""The worker side of a job: claim, extract outside any transaction, record the outcome.

- The claim is one conditional UPDATE (pending, or processing with an expired lease) that
  writes a fresh ``claim_token``; every later write of the run is fenced on that token, so a
  worker whose lease expired and was taken over cannot overwrite the newer run.
- The extractor is called with no transaction open and no connection held.
- Success merges into the Prospect, records the Extraction and completes the job in one short
  transaction, or re-queues the job when a newer revision arrived meanwhile.
- Failures are classified by the extractor (base.FailureKind): transient ones back off,
  permanent ones fail the revision (the dead-letter queue), account-wide ones open the
  circuit breaker and leave the job pending.
- Traced (a no-op with tracing off): a ``nexus.job`` span under the Celery task's, with
  ``nexus.job.claim``, ``nexus.job.extract`` and ``nexus.job.record`` inside; ids, revision,
  outcome and error category only (nexus_project/tracing.py names them).
- A call that counts against the account's rate limits asks the rate governor first
  (``governor.py``); without capacity the job is given back, pending with a countdown to when
  capacity frees: a deferral, not a failed attempt.
"""

from __future__ import annotations

import functools
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, connection, transaction
from django.db.models import F
from django.db.models.functions import Now
from django.utils import timezone
from opentelemetry import trace
from opentelemetry.trace import Span, StatusCode

from nexus_project.db import db_now, model_update
from nexus_project.tracing import (
    ATTR_ERROR_CATEGORY,
    ATTR_JOB_ID,
    ATTR_JOB_OUTCOME,
    ATTR_JOB_REVISION,
    ATTR_JOB_TRIGGER,
    ATTR_TENANT,
)
from prospects.services import prospect_key, prospect_lock, prospect_refold
from tenants import directory

from .. import selectors
from ..dispatch import publish_on_commit
from ..extraction import get_extractor
from ..extraction.base import ExtractionError, ExtractionResult, FailureKind, Usage
from ..logcontext import bind_job
from ..models import FRESH_RUN, LIVE_TRIGGER, Extraction, ExtractionOutcome, Job, JobStatus
from . import breaker, budget, governor

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
# No exception events on our spans: a database error's text can quote a row's values.
_SPAN_OPTIONS: dict[str, Any] = {"record_exception": False}

# A countdown task can be delivered a moment early; don't drop it for that.
_EARLY_DELIVERY_SLACK = timedelta(seconds=2)


@dataclass(frozen=True)
class Claim:
    job_id: uuid.UUID
    token: uuid.UUID
    revision: int
    trigger: str
    messages: list[dict[str, str]]
    tenant_id: int
    lane: str = governor.LIVE


def job_process(*, job_id: uuid.UUID | str) -> str:
    """Run one job to its next state. Returns what happened, for the task's log line."""
    job_id = uuid.UUID(str(job_id))
    with tracer.start_as_current_span(
        "nexus.job", attributes={ATTR_JOB_ID: str(job_id)}, **_SPAN_OPTIONS
    ) as span:
        outcome = _job_process(job_id, span)
        span.set_attribute(ATTR_JOB_OUTCOME, outcome)
        return outcome


def _job_process(job_id: uuid.UUID, span: Span) -> str:
    log = {"job_id": str(job_id)}
    pause = breaker.pause_remaining()
    if pause is not None:
        _defer_for_breaker(job_id, pause)
        logger.info("extraction paused by circuit breaker", extra={**log, "retry_in_s": round(pause, 1)})
        return "paused"
    wait = budget.budget_defer_seconds(job_id)
    if wait is not None:  # a spend cap is reached: the job waits for the reset, nothing dropped
        budget.job_defer_for_budget(job_id=job_id, seconds=wait)
        breaker.release_probe()
        return "over-budget"
    try:
        extractor = get_extractor()
    except ImproperlyConfigured as error:
        # No extraction is possible until a deploy fixes the settings: an account-wide
        # failure, so the job waits (pending) behind the breaker instead of being claimed,
        # dying and turning poison.
        pause = breaker.trip(category="misconfigured")
        _defer_for_breaker(job_id, pause)
        logger.error("extractor misconfigured; job left pending", extra={**log, "error": str(error)})
        return "misconfigured"
    claim = job_claim(job_id=job_id)
    if claim is None:
        breaker.release_probe()
        return "not-claimed"
    log["revision"] = str(claim.revision)
    tenant = directory.by_id(claim.tenant_id)
    span.set_attributes({
        ATTR_JOB_REVISION: claim.revision,
        ATTR_JOB_TRIGGER: claim.trigger,
        ATTR_TENANT: tenant.slug if tenant else str(claim.tenant_id),
    })  # fmt: skip
    decision = None
    if getattr(extractor, "governed", False):
        input_tokens, output_tokens = extractor.estimate(claim.messages)  # type: ignore[attr-defined]
        decision = governor.acquire(lane=claim.lane, estimate=governor.Estimate(input_tokens, output_tokens))
        if not decision.granted:
            breaker.release_probe()
            return job_defer_for_capacity(claim=claim, seconds=decision.wait_seconds)
    # Return the connection to the pool for the length of the call: a thread waiting on
    # Claude must not hold a database connection another thread could use.
    close_old_connections()
    connection.close()
    try:
        with tracer.start_as_current_span(
            "nexus.job.extract", attributes=_span_claim(claim), **_SPAN_OPTIONS
        ) as step:
            step.set_attribute("nexus.extractor", extractor.name)
            try:
                result = extractor.extract(claim.messages)
            except ExtractionError as err:
                _span_failed(step, err)
                _span_failed(span, err)
                raise
    except ExtractionError as err:
        if decision is not None:
            _settle(decision, err.usage, err.calls, err.rate_limits)
        if err.kind is not FailureKind.ACCOUNT:
            # Not the key's fault: if this run was the breaker's probe, let the next job probe
            # now instead of holding the slot until the lease runs out.
            breaker.release_probe()
        return job_record_failure(claim=claim, error=err)
    if decision is not None:
        _settle(decision, result.usage, result.calls, result.rate_limits)
    breaker.record_success()
    return job_record_success(claim=claim, result=result)


def _span_claim(claim: Claim) -> dict[str, Any]:
    return {ATTR_JOB_ID: str(claim.job_id), ATTR_JOB_REVISION: claim.revision}


def _span_failed(span: Span, error: ExtractionError) -> None:
    span.set_attributes({ATTR_ERROR_CATEGORY: str(error.category), "error.type": str(error.category)})
    span.set_status(StatusCode.ERROR, str(error.category))


def _settle(decision: governor.Decision, usage: Usage, calls: int, report: Any) -> None:
    # ITPM counts uncached input and cache writes; cache reads are not counted.
    governor.settle(
        decision,
        input_tokens=usage.input_tokens + usage.cache_creation_tokens,
        output_tokens=usage.output_tokens,
        calls=calls,
        report=report,
    )


def job_defer_for_capacity(*, claim: Claim, seconds: float) -> str:
    """Give the claim back: the job waits, pending, for the governor's capacity, with a task
    due then. Neither an attempt nor a claim is counted: nothing failed."""
    now = db_now()
    due = now + timedelta(seconds=seconds)
    with transaction.atomic():
        updated = Job.objects.filter(id=claim.job_id, claim_token=claim.token).update(
            status=JobStatus.PENDING,
            claim_token=None,
            lease_until=None,
            claims=F("claims") - 1,
            next_attempt_at=due,
            dispatched_at=due,
            updated_at=now,
        )
        if updated:
            publish_on_commit(claim.job_id, countdown=seconds, lane=claim.lane)
    logger.info(
        "extraction deferred by the rate governor",
        extra={"job_id": str(claim.job_id), "lane": claim.lane, "retry_in_s": round(seconds, 2)},
    )
    return "deferred"


def job_claim(*, job_id: uuid.UUID) -> Claim | None:
    """Take the job for this worker, or None when it is not ours to run.

    Due-ness and the lease are read and written on the database's clock, inside the UPDATE:
    a worker whose own clock runs fast cannot see a live lease as expired, nor one running
    slow see a due job as early."""
    with tracer.start_as_current_span(
        "nexus.job.claim", attributes={ATTR_JOB_ID: str(job_id)}, **_SPAN_OPTIONS
    ) as span:
        claim = _job_claim(job_id)
        if claim is None:
            span.set_attribute(ATTR_JOB_OUTCOME, "not-claimed")
        else:
            span.set_attributes(_span_claim(claim))
        return claim


def _job_claim(job_id: uuid.UUID) -> Claim | None:
    token = uuid.uuid4()
    uuid_db = _db_value("id")  # as the ORM would send it
    params: dict[str, Any] = {
        "job_id": uuid_db(job_id),
        "pending": JobStatus.PENDING,
        "processing": JobStatus.PROCESSING,
        "token": uuid_db(token),
        "lease": timedelta(seconds=settings.NEXUS["LEASE_SECONDS"]),
        "slack": _EARLY_DELIVERY_SLACK,
    }
    if connection.vendor != "postgresql":
        # SQLite is a file on this host: its clock is this host's (see _claim_sql).
        time_db, now = _db_value("lease_until"), timezone.now()
        params.update(
            now=time_db(now),
            lease_until=time_db(now + params.pop("lease")),
            due_by=time_db(now + params.pop("slack")),
        )
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(), params)
        row = cursor.fetchone()
    if row is None:
        logger.info("job not claimable (done, running elsewhere, or gone)", extra={"job_id": str(job_id)})
        return None
    revision, claims, trigger, messages, session_id, tenant_id, lane = row
    messages = Job._meta.get_field("messages").from_db_value(messages, None, connection)  # type: ignore[attr-defined,arg-type]
    bind_job(session_id=session_id)
    if claims > settings.NEXUS["MAX_CLAIMS"]:
        _fail_poison(job_id, token, claims)
        return None
    logger.info(
        "job claimed",
        extra={"job_id": str(job_id), "session_id": session_id, "revision": revision},
    )
    return Claim(job_id, token, revision, trigger, messages, tenant_id, lane)


def _db_value(field_name: str) -> Any:
    field = Job._meta.get_field(field_name)
    return lambda value: field.get_db_prep_value(value, connection)  # type: ignore[union-attr]


@functools.cache
def _claim_sql() -> str:
    """The conditional UPDATE of the claim, returning what the run needs: one round trip
    instead of an UPDATE and a SELECT (Django's update() cannot return rows).

    Claimable: pending and due (a countdown may arrive a moment early, hence the slack), or
    processing with an expired lease (its worker died); never a purged job. On PostgreSQL
    "now" is ``statement_timestamp()``, the database's clock, never the worker's."""
    if connection.vendor == "postgresql":
        now, lease_until = "statement_timestamp()", "statement_timestamp() + %(lease)s"
        due_by = "statement_timestamp() + %(slack)s"
    else:
        now, lease_until, due_by = "%(now)s", "%(lease_until)s", "%(due_by)s"
    return f"""
        UPDATE {Job._meta.db_table}
        SET status = %(processing)s, claim_token = %(token)s, lease_until = {lease_until},
            claims = claims + 1, dispatched_at = NULL, started_at = {now}, updated_at = {now}
        WHERE id = %(job_id)s AND purged_at IS NULL AND (
            (status = %(pending)s AND (next_attempt_at IS NULL OR next_attempt_at <= {due_by}))
            OR (status = %(processing)s AND lease_until < {now}))
        RETURNING revision, claims, trigger, messages, session_id, tenant_id, lane
    """  # noqa: S608 - the model's table name and fixed clock expressions


_FENCED_FIELDS = (
    "tenant", "session_id", "fingerprint", "revision", "attempts", "claims", "status", "prospect",
    "created_at", "revised_at", "updated_at", "lane",
)  # fmt: skip
# What every outcome of a run writes: the claim is given back.
_RELEASED = {"claim_token": None, "lease_until": None}


def _fenced(claim: Claim) -> Job | None:
    """The job row, locked, if this run still owns it."""
    # Only what the outcome reads (it writes with model_update); no ORDER BY: one row by key.
    # ``db_now``: the database's clock, read in the same round trip, for every time the
    # outcome writes (due times, dispatch marks) and compares.
    job = (
        Job.objects.select_for_update()
        .only(*_FENCED_FIELDS)
        .annotate(db_now=Now())
        .filter(id=claim.job_id, claim_token=claim.token)
        .order_by()
        .first()
    )
    if job is None:
        logger.warning(
            "run lost its claim (lease expired and reclaimed); result discarded",
            extra={"job_id": str(claim.job_id), "revision": claim.revision},
        )
    return job


def job_record_success(*, claim: Claim, result: ExtractionResult) -> str:
    with tracer.start_as_current_span(
        "nexus.job.record", attributes=_span_claim(claim), **_SPAN_OPTIONS
    ) as span:
        outcome = _record_success(claim, result)
        span.set_attribute(ATTR_JOB_OUTCOME, outcome)
        return outcome


def _record_success(claim: Claim, result: ExtractionResult) -> str:
    with transaction.atomic():
        job = _fenced(claim)
        if job is None:
            return "fenced"
        assert job.tenant_id is not None  # NOT NULL; the stubs type a defaulted FK as optional
        now: datetime = job.db_now  # type: ignore[attr-defined]
        prospect_id = prospect_lock(
            tenant_id=job.tenant_id,
            key=prospect_key(fingerprint=job.fingerprint, session_id=job.session_id),
            fingerprint=job.fingerprint,
            seen_at=job.created_at,
        )
        changes: dict[str, Any] = {
            **_RELEASED,
            "extracted": result.data,
            "processed_revision": claim.revision,
            "prospect_id": prospect_id,
            "last_error": "",
            "error_category": "",
            "next_attempt_at": None,
            "trigger": LIVE_TRIGGER,
        }
        newer = job.revision > claim.revision
        if newer:
            changes.update(FRESH_RUN, status=JobStatus.PENDING, dispatched_at=now, enqueued_at=now)
        else:
            changes.update(status=JobStatus.COMPLETED, processed_at=now)
        model_update(job, **changes)
        merged = prospect_refold(
            prospect_id=prospect_id, sessions=selectors.prospect_sessions(prospect_id=prospect_id)
        )
        _record_extraction(claim, job, now=now, result=result, merged=merged)
        if newer:  # a POST made the newer revision: live
            publish_on_commit(job.id, lane=job.lane)
    logger.info(
        "job requeued for a newer revision" if newer else "job completed",
        extra={"job_id": str(job.id), "revision": claim.revision, "latest_revision": job.revision},
    )
    return "requeued" if newer else "completed"


def _record_extraction(
    claim: Claim,
    job: Job,
    *,
    now: Any,
    result: ExtractionResult | None = None,
    error: ExtractionError | None = None,
    merged: dict[str, Any] | None = None,
) -> None:
    """The run's Extraction row (its result on success, its category on failure), built here
    and nowhere else."""
    if result is not None:
        usage, cost = result.usage, result.cost_usd
        outcome: dict[str, Any] = {
            "outcome": ExtractionOutcome.OK,
            "extractor": result.extractor,
            "model": result.model,
            "prompt_version": result.prompt_version,
            "stop_reason": result.stop_reason,
            "latency_ms": result.latency_ms,
            "pipeline_latency_ms": _pipeline_latency_ms(job, claim, now),
            "result": result.data,
            "merged": merged,
        }
    else:
        assert error is not None
        usage, cost = error.usage, error.cost_usd
        outcome = {
            "outcome": ExtractionOutcome.FAILED,
            "error_category": error.category,
            "extractor": get_extractor().name,
            "model": error.model,
        }
    row = Extraction(
        job_id=job.id,
        prospect_id=job.prospect_id,
        revision=claim.revision,
        trigger=claim.trigger,
        created_at=now,
        cost_usd=cost,
        **_usage_fields(usage),
        **outcome,
    )
    # ON CONFLICT DO NOTHING against the once-per-revision constraint (successes only): the
    # same revision re-run by a plain re-queue keeps its first record, in one statement.
    Extraction.objects.bulk_create([row], ignore_conflicts=True)


def _usage_fields(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_tokens": usage.cache_creation_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
    }


def _pipeline_latency_ms(job: Job, claim: Claim, now: Any) -> int | None:
    """From the visitor's POST of this revision to its result merged, for the pipeline's own
    runs only. A re-extraction (``reprocess``, the admin's re-extract) was asked for by an
    operator, maybe days after the POST: measured from the POST it would read as hours of
    latency and fire the p95 alert, so it gets none (its extractor call is still timed)."""
    if claim.trigger != LIVE_TRIGGER or job.revised_at is None:
        return None
    return max(0, int((now - job.revised_at).total_seconds() * 1000))


def backoff_seconds(attempts: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter, at least what the far side asked for, capped."""
    base = settings.NEXUS["BACKOFF_BASE_SECONDS"]
    cap = settings.NEXUS["BACKOFF_CAP_SECONDS"]
    delay = random.uniform(0, min(cap, base * 2 ** max(0, attempts - 1)))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, cap)


def job_record_failure(*, claim: Claim, error: ExtractionError) -> str:
    with tracer.start_as_current_span(
        "nexus.job.record", attributes=_span_claim(claim), **_SPAN_OPTIONS
    ) as span:
        span.set_attribute(ATTR_ERROR_CATEGORY, str(error.category))
        outcome = _record_failure(claim, error)
        span.set_attribute(ATTR_JOB_OUTCOME, outcome)
        return outcome


def _record_failure(claim: Claim, error: ExtractionError) -> str:
    log = {"job_id": str(claim.job_id), "revision": claim.revision, "category": error.category}
    with transaction.atomic():
        job = _fenced(claim)
        if job is None:
            return "fenced"
        now: datetime = job.db_now  # type: ignore[attr-defined]
        _record_extraction(claim, job, now=now, error=error)
        changes: dict[str, Any] = {
            **_RELEASED,
            "last_error": str(error)[:2000],
            "error_category": error.category,
        }
        newer = job.revision > claim.revision
        attempts = job.attempts + 1
        if error.kind is FailureKind.ACCOUNT:
            pause = breaker.trip(category=error.category)
            changes.update(_to_pending(job.id, job.lane, now, countdown=pause, newer=newer))
        elif error.kind is FailureKind.TRANSIENT and attempts < settings.NEXUS["MAX_ATTEMPTS"]:
            countdown = backoff_seconds(attempts, error.retry_after)
            changes["attempts"] = attempts
            changes.update(
                _to_pending(job.id, job.lane, now, countdown=0 if newer else countdown, newer=newer)
            )
            log["retry_in_s"] = round(countdown, 2)
        else:
            if error.kind is FailureKind.TRANSIENT:
                changes["attempts"] = attempts
                changes["last_error"] = f"attempts exhausted ({attempts}): {changes['last_error']}"
            if newer:  # the failure belongs to an old revision; the new one gets its chance
                changes.update(_to_pending(job.id, job.lane, now, countdown=0, newer=True))
            else:
                changes.update(status=JobStatus.FAILED, processed_at=now)
        model_update(job, **changes)
    outcome = "failed" if job.status == JobStatus.FAILED else "retry"
    logger.warning("extraction failed", extra={**log, "kind": error.kind.value, "outcome": outcome})
    return outcome


def _to_pending(job_id: uuid.UUID, lane: str, now: Any, *, countdown: float, newer: bool) -> dict[str, Any]:
    """The changes that put a job back to pending with a task due after ``countdown``, and that
    task, published on commit. A newer revision starts its own count of attempts and claims."""
    due = now + timedelta(seconds=countdown)
    publish_on_commit(job_id, countdown=countdown if countdown > 0 else None, lane=lane)
    changes: dict[str, Any] = {
        "status": JobStatus.PENDING,
        "next_attempt_at": due if countdown > 0 else None,
        "dispatched_at": due,
        "enqueued_at": now,
    }
    if newer:
        changes.update(attempts=0, claims=0)
    return changes


def _fail_poison(job_id: uuid.UUID, token: uuid.UUID, claims: int) -> None:
    Job.objects.filter(id=job_id, claim_token=token).update(
        status=JobStatus.FAILED,
        claim_token=None,
        lease_until=None,
        error_category="poison",
        last_error=f"claimed {claims} times without finishing: workers keep dying on this job",
        processed_at=Now(),
        updated_at=Now(),
    )
    logger.error("poison job failed", extra={"job_id": str(job_id), "claims": claims})


def _defer_for_breaker(job_id: uuid.UUID, pause: float) -> None:
    """Leave the job pending until the breaker's next probe, with a task due then."""
    with transaction.atomic():
        now = db_now()
        due = now + timedelta(seconds=pause)
        updated = Job.objects.filter(id=job_id, status=JobStatus.PENDING).update(
            next_attempt_at=due, dispatched_at=due, updated_at=now
        )
        if updated:
            publish_on_commit(job_id, countdown=pause)
