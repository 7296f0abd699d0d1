"""Bulk re-extraction through the Message Batches API, at half the live price.

- ``batch_submit`` claims the selected jobs (processing, a fresh claim token, a lease past the
  API's 24 h expiry, so neither the sweeper nor a worker takes them meanwhile) and submits them
  in batches of at most the API's size limit. A refused submission gives the claims back.
- ``batches_poll`` (beat, every minute) asks the API about every open batch and, once one has
  ended, folds each result in exactly as a live run's: ``pipeline.job_record_success`` with
  trigger ``batch`` (its cost at the batch rate), or ``job_record_failure`` with the failure
  classified as the live call's would be. An expired or canceled request leaves its job
  pending on the bulk lane: retried through the rate governor, never lost, not an attempt.
- ``batch_cancel`` asks the API to cancel; the next poll folds what finished and requeues the rest.
Every write to a job is fenced on the claim token written at submission.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from nexus_project.db import db_now
from tenants import directory

from ..dispatch import publish_on_commit
from ..extraction import get_extractor
from ..extraction.base import ExtractionError, ExtractionResult
from ..models import BatchStatus, ExtractionBatch, Job, JobStatus, Lane
from .pipeline import Claim, job_record_failure, job_record_success

logger = logging.getLogger(__name__)

BATCH_TRIGGER = "batch"
# Longer than the API's 24 h expiry plus beat's poll: a batch's jobs are never taken over
# while the API may still answer for them; a batch lost on our side frees them after this.
BATCH_LEASE = timedelta(hours=25)


class BatchesUnavailable(Exception):
    """The configured extractor cannot batch (offline, or no key)."""


def _batcher() -> Any:
    extractor = get_extractor()
    if not hasattr(extractor, "batch_create"):
        raise BatchesUnavailable(
            f"the {extractor.name} extractor has no Message Batches: set ANTHROPIC_API_KEY"
        )
    return extractor


def batch_submit(*, job_ids: Iterable[uuid.UUID]) -> list[ExtractionBatch]:
    """Claim the jobs and submit them; returns the batches created (jobs being processed or
    purged are skipped)."""
    from ..extraction.claude import BATCH_MAX_REQUESTS

    extractor = _batcher()
    batches: list[ExtractionBatch] = []
    chunk: list[uuid.UUID] = []
    for job_id in job_ids:
        chunk.append(job_id)
        if len(chunk) == BATCH_MAX_REQUESTS:
            batches += _submit(extractor, chunk)
            chunk = []
    if chunk:
        batches += _submit(extractor, chunk)
    return batches


def _submit(extractor: Any, job_ids: list[uuid.UUID]) -> list[ExtractionBatch]:
    now = db_now()  # the lease is judged on the database's clock
    items: dict[str, dict[str, Any]] = {}
    transcripts: list[tuple[str, list[dict[str, str]]]] = []
    for job_id in job_ids:
        token = uuid.uuid4()
        claimed = (
            Job.objects.filter(id=job_id, purged_at__isnull=True)
            .exclude(status=JobStatus.PROCESSING)
            .update(
                status=JobStatus.PROCESSING,
                claim_token=token,
                lease_until=now + BATCH_LEASE,
                lane=Lane.BULK,
                trigger=BATCH_TRIGGER,
                dispatched_at=None,
                started_at=now,
                updated_at=now,
            )
        )
        if not claimed:
            continue
        job = Job.objects.only("revision", "messages", "tenant_id").get(id=job_id)
        custom_id = job_id.hex
        items[custom_id] = {
            "job": str(job_id), "token": str(token), "revision": job.revision, "tenant": job.tenant_id,
        }  # fmt: skip
        transcripts.append((custom_id, job.messages))
    if not items:
        return []
    try:
        created = extractor.batch_create(transcripts)
    except ExtractionError:
        for item in items.values():
            _release(_claim(item))
        logger.warning("batch refused by the API; jobs released", extra={"jobs": len(items)})
        raise
    batch = ExtractionBatch.objects.create(
        provider_id=created.id, model=extractor.model, requests=len(items), items=items
    )
    logger.info("batch submitted", extra={"batch_id": str(batch.id), "jobs": len(items)})
    return [batch]


def _claim(item: dict[str, Any]) -> Claim:
    return Claim(
        uuid.UUID(item["job"]),
        uuid.UUID(item["token"]),
        item["revision"],
        BATCH_TRIGGER,
        [],
        item.get("tenant") or directory.default_tenant_id(),  # batches submitted before tenants
        Lane.BULK,
    )


def _release(claim: Claim) -> None:
    """Give a batch's claim back: pending on the bulk lane, published now (not an attempt)."""
    now = db_now()
    with transaction.atomic():
        updated = Job.objects.filter(id=claim.job_id, claim_token=claim.token).update(
            status=JobStatus.PENDING,
            claim_token=None,
            lease_until=None,
            # Its live retry is a deliberate re-extraction, recorded as its own Extraction.
            trigger=f"reprocess:{uuid.uuid4().hex[:12]}",
            dispatched_at=now,
            enqueued_at=now,
            next_attempt_at=None,
            updated_at=now,
        )
        if updated:
            publish_on_commit(claim.job_id, lane=Lane.BULK)


def batches_poll() -> int:
    """Update every open batch from the API and fold the ended ones; returns how many were folded."""
    open_batches = list(ExtractionBatch.objects.exclude(status=BatchStatus.FOLDED))
    if not open_batches:
        return 0
    extractor = _batcher()
    folded = 0
    for batch in open_batches:
        try:
            remote = extractor.batch_retrieve(batch.provider_id)
        except ExtractionError as error:
            logger.warning(
                "batch status unreadable", extra={"batch_id": str(batch.id), "error": error.category}
            )
            continue
        counts = remote.request_counts
        ExtractionBatch.objects.filter(id=batch.id).update(
            status=remote.processing_status,
            succeeded=counts.succeeded,
            errored=counts.errored,
            expired=counts.expired,
            canceled=counts.canceled,
            ended_at=remote.ended_at,
        )
        if remote.processing_status == "ended":
            _fold(extractor, batch)
            folded += 1
    return folded


def _fold(extractor: Any, batch: ExtractionBatch) -> None:
    ids = [uuid.UUID(item["job"]) for item in batch.items.values()]
    messages = dict(Job.objects.filter(id__in=ids).values_list("id", "messages"))
    transcripts = {cid: messages.get(uuid.UUID(item["job"]), []) for cid, item in batch.items.items()}
    cost = Decimal(0)
    outcomes: dict[str, int] = {}
    seen = set()
    for custom_id, answer in extractor.batch_results(batch.provider_id, transcripts):
        item = batch.items.get(custom_id)
        if item is None or custom_id in seen:
            continue
        seen.add(custom_id)
        claim = _claim(item)
        if isinstance(answer, ExtractionResult):
            cost += Decimal(str(answer.cost_usd))
            outcome = job_record_success(claim=claim, result=answer)
        elif isinstance(answer, ExtractionError):
            outcome = job_record_failure(claim=claim, error=answer)
        else:  # expired, canceled: the job is retried, never lost
            _release(claim)
            outcome = answer
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    for custom_id, item in batch.items.items():
        if custom_id not in seen:  # not in the results at all: retried too
            _release(_claim(item))
            outcomes["missing"] = outcomes.get("missing", 0) + 1
    ExtractionBatch.objects.filter(id=batch.id).update(
        status=BatchStatus.FOLDED, folded_at=timezone.now(), cost_usd=F("cost_usd") + cost
    )
    logger.info("batch folded", extra={"batch_id": str(batch.id), "outcomes": outcomes})


def batch_cancel(*, batch_id: uuid.UUID) -> bool:
    """Ask the API to cancel an open batch; the next poll folds what ended and requeues the rest."""
    batch = ExtractionBatch.objects.filter(id=batch_id).exclude(status=BatchStatus.FOLDED).first()
    if batch is None:
        return False
    remote = _batcher().batch_cancel(batch.provider_id)
    ExtractionBatch.objects.filter(id=batch.id).update(
        status=remote.processing_status, cancel_requested_at=timezone.now()
    )
    logger.info("batch cancel requested", extra={"batch_id": str(batch.id)})
    return True
