"""Celery tasks: thin shells that take ids and call one service each."""

from __future__ import annotations

import logging

from celery import Task, shared_task

from prospects import notify, webhooks

from . import dispatch
from .logcontext import job_context_var, request_id_var
from .ops import alerts as ops_alerts
from .ops import maintenance
from .worker import batches, pipeline

logger = logging.getLogger(__name__)


@shared_task(bind=True, name=dispatch.PROCESS_SESSION, ignore_result=True)
def process_session(self: Task, job_id: str) -> str:
    """Extract the session's latest revision and merge it (idempotent: the row decides)."""
    token = request_id_var.set(getattr(self.request, "nexus_request_id", None) or self.request.id or "")
    job_token = job_context_var.set({"job_id": str(job_id)})
    try:
        return pipeline.job_process(job_id=job_id)
    finally:
        job_context_var.reset(job_token)
        request_id_var.reset(token)


@shared_task(name="ingestion.sweep", ignore_result=True)
def sweep() -> int:
    """Publish again whatever lost its task: a flushed broker, a killed worker, a failed publish."""
    return dispatch.job_sweep() + dispatch.events_sweep()


@shared_task(name="ingestion.cleanup", ignore_result=True)
def cleanup() -> int:
    """Delete old transcripts (personal data), delivered events and access-log entries past
    their retention; prospects and extraction summaries stay."""
    purged = maintenance.transcripts_purge() + maintenance.events_purge()
    maintenance.access_log_purge()
    return purged


@shared_task(name="ingestion.batches_poll", ignore_result=True)
def batches_poll() -> int:
    """Fold the results of every Message Batch that has ended."""
    try:
        return batches.batches_poll()
    except batches.BatchesUnavailable:
        return 0  # no key: no batch can have been submitted by this deployment


@shared_task(name="ingestion.alerts", ignore_result=True)
def alerts() -> list[str]:
    """Check the alert thresholds; log each crossing once and its recovery."""
    return ops_alerts.alerts_check()


@shared_task(name=dispatch.EVENT_DELIVER, ignore_result=True)
def event_deliver(event_id: int) -> int:
    """Deliver a committed prospect event to every endpoint that wants it (and, for a
    prospect.hot, the hot-lead mail: prospects.notify)."""
    ids = webhooks.deliveries_prepare(event_id)
    notify.hot_lead_mail(event_id)
    for delivery_id in ids:
        delivery_attempt(delivery_id)
    return len(ids)


@shared_task(name=dispatch.DELIVERY_ATTEMPT, ignore_result=True)
def delivery_attempt(delivery_id: int) -> str:
    """One attempt at one delivery; a retry is published with the schedule's countdown (a long
    one is left to the sweeper: dispatch.delivery_publish)."""
    outcome = webhooks.delivery_attempt(delivery_id)
    if outcome.status == "retry":
        dispatch.delivery_publish(delivery_id, countdown=outcome.countdown)
    return outcome.status
