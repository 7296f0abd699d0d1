"""The job ledger (one row per chat session, the durable half of the queue) and the
Extraction record of every extractor call.

The row is the promise made to the widget when it got its 202: whatever happens to the broker
or a worker, the sweeper finds the row and publishes it again. Its status, revision and claim
token are the task's idempotency.
"""

from __future__ import annotations

import uuid
from types import MappingProxyType
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone

from tenants.directory import default_tenant_id


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


# The trigger of the pipeline's own runs (a visitor's POST, a retry, the sweeper); an
# operator's re-extraction has "reprocess:<id>" instead.
LIVE_TRIGGER = "auto"

# What a new run of a job starts from (a new revision, a re-queue, a requeue for a newer
# revision): no failed calls, no claims, no backoff, no error.
FRESH_RUN: MappingProxyType[str, Any] = MappingProxyType(
    {"attempts": 0, "claims": 0, "next_attempt_at": None, "last_error": "", "error_category": ""}
)


class Lane(models.TextChoices):
    """Which Celery queue and which share of the rate governor a job's runs use: a POST's
    revision is live (a visitor is waiting), a reprocess or admin re-queue is bulk."""

    LIVE = "live"
    BULK = "bulk"


class Channel(models.TextChoices):
    WEB = "web", "Web"
    WHATSAPP = "whatsapp", "WhatsApp"
    API = "api", "API"


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The site or channel the POST came for; a sessionId is unique within its tenant. No index
    # of its own: job_tenant_session and job_transcript_fp lead with it, and a second one cost
    # every INSERT an index update and misled the planner into scanning a tenant's every job
    # for the continuation lookup (bench figure 1, issue 18).
    tenant = models.ForeignKey(
        "tenants.Tenant",
        on_delete=models.PROTECT,
        related_name="jobs",
        default=default_tenant_id,
        db_index=False,
    )
    session_id = models.CharField(max_length=128)
    fingerprint = models.CharField(max_length=128, blank=True, default="")

    # The latest transcript. Blanked by cleanup after retention (purged_at set); the hash and
    # count stay so duplicate and stale detection keep working.
    messages = models.JSONField(default=list, blank=True)
    # The running hash of the transcript at its full length (services.prefix_hashes): a POST
    # under another sessionId finds the job it continues by its own prefixes' hashes.
    transcript_hash = models.CharField(max_length=64)
    message_count = models.PositiveIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    purged_at = models.DateTimeField(null=True, blank=True)

    revision = models.PositiveIntegerField(default=1)
    processed_revision = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    # Claude calls that failed for the current revision (not claims); reset by a new revision.
    attempts = models.PositiveIntegerField(default=0)
    # Times a worker claimed the current revision; capped so a job that kills workers fails.
    claims = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    error_category = models.CharField(max_length=32, blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    # When the outstanding published task is due (publish time, or publish time + countdown);
    # null when none is outstanding. Cleared by the claim.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # "auto" for the pipeline's own runs; "reprocess:<id>" asks for a deliberate re-extraction.
    trigger = models.CharField(max_length=48, default=LIVE_TRIGGER)
    lane = models.CharField(max_length=8, choices=Lane.choices, default=Lane.LIVE, db_default=Lane.LIVE)

    # The latest successful extraction of this session, in schema keys: the Prospect is the
    # fold of these over the visitor's sessions (SPEC §10).
    extracted = models.JSONField(null=True, blank=True)

    prospect = models.ForeignKey(
        "prospects.Prospect", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )

    # Attribution sent with the POSTs (REAL_SITE.md), folded into the Prospect. The referrer
    # is the first non-null one this job saw (the business pays the first referrer) and when.
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.WEB)
    constructor_id = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001 - null: none
    constructor_at = models.DateTimeField(null=True, blank=True)
    page_context = models.CharField(max_length=128, blank=True, default="")  # the latest sent
    is_returning = models.BooleanField(null=True, blank=True)  # the latest sent
    # The latest consent sent, and since when it has been given (null when not given).
    consent_given = models.BooleanField(null=True, blank=True)
    consent_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    revised_at = models.DateTimeField(help_text="When the current revision was POSTed.")
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-revised_at"]
        constraints = [
            # The producer's INSERT … ON CONFLICT (tenant_id, session_id) relies on it.
            models.UniqueConstraint(fields=["tenant", "session_id"], name="job_tenant_session"),
        ]
        indexes = [
            # The sweeper's two questions and the health/metrics queue figures.
            models.Index(
                fields=["dispatched_at"], name="job_pending_dispatch", condition=Q(status="pending")
            ),
            models.Index(
                fields=["lease_until"], name="job_processing_lease", condition=Q(status="processing")
            ),
            models.Index(fields=["status", "revised_at"], name="job_status_revised"),
            models.Index(fields=["fingerprint"], name="job_fingerprint"),
            models.Index(fields=["status", "processed_at"], name="job_status_processed"),
            # The continuation lookup (selectors.job_for_post): within the tenant, hash
            # equality first, then the fingerprint.
            models.Index(fields=["tenant", "transcript_hash", "fingerprint"], name="job_transcript_fp"),
            # No index on constructor_id: the referrer filters read the Prospect's copy, and the
            # jobs list's "has a referrer" filter is an admin page, not a path worth an index
            # update on every new session.
        ]

    def __str__(self) -> str:
        return f"{self.session_id} r{self.revision} {self.status}"

    @property
    def is_purged(self) -> bool:
        return self.purged_at is not None


class SessionAlias(models.Model):
    """A sessionId whose POST continued another session's job (services.job_accept): a late
    retry of that POST finds the job again (a stale prefix, or a duplicate), instead of
    starting a second job for the same chat."""

    # Indexed by alias_tenant_session, which leads with it.
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    session_id = models.CharField(max_length=128)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="aliases")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # A sessionId is unique within its tenant, as on Job.
            models.UniqueConstraint(fields=["tenant", "session_id"], name="alias_tenant_session"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id} -> {self.job_id}"


class ExtractionOutcome(models.TextChoices):
    OK = "ok", "OK"
    FAILED = "failed", "Failed"


class Extraction(models.Model):
    """One extractor call for one revision of one job: its usage, and on success its result
    and the Prospect's data as it stood right after the merge.

    It belongs to the pipeline, so it lives here (it moved from ``prospects``, keeping its
    table: ``prospects`` imports nothing from ``ingestion``)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="extractions")
    prospect = models.ForeignKey(
        "prospects.Prospect", null=True, blank=True, on_delete=models.CASCADE, related_name="extractions"
    )
    revision = models.PositiveIntegerField()
    trigger = models.CharField(max_length=48, default=LIVE_TRIGGER)
    outcome = models.CharField(max_length=8, choices=ExtractionOutcome.choices)
    error_category = models.CharField(max_length=32, blank=True, default="")

    extractor = models.CharField(max_length=16)
    model = models.CharField(max_length=64, blank=True, default="")
    prompt_version = models.CharField(max_length=32, blank=True, default="")
    stop_reason = models.CharField(max_length=32, blank=True, default="")
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_creation_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    latency_ms = models.PositiveIntegerField(default=0, help_text="Extractor call duration.")
    # From the revision's POST to this result being merged (the pipeline's end-to-end latency);
    # null for a re-extraction, which no visitor waited for.
    pipeline_latency_ms = models.PositiveIntegerField(null=True, blank=True)

    result = models.JSONField(null=True, blank=True)
    merged = models.JSONField(null=True, blank=True)
    # The pipeline writes the database's clock here (the spend caps count by it); the default
    # is for rows made elsewhere (the shell, tests).
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "prospects_extraction"  # its table from when it lived in prospects
        ordering = ["-created_at"]
        constraints = [
            # A redelivered task adds no row; a deliberate re-extraction has its own trigger.
            models.UniqueConstraint(
                fields=["job", "revision", "prompt_version", "trigger"],
                condition=Q(outcome="ok"),
                name="extraction_once_per_revision",
            )
        ]
        indexes = [models.Index(fields=["created_at", "outcome"], name="extraction_recent")]

    def __str__(self) -> str:
        return f"{self.job_id} r{self.revision} {self.outcome}"


class BatchStatus(models.TextChoices):
    """The Message Batches API's processing status, and ours once its results are folded."""

    IN_PROGRESS = "in_progress"
    CANCELING = "canceling"
    ENDED = "ended"  # the API is done; results not yet folded in
    FOLDED = "folded"  # every result folded into its job


class ExtractionBatch(models.Model):
    """One Message Batches API batch of bulk re-extractions (``reprocess --batch``): its jobs
    are claimed (processing, with a lease past the API's 24 h expiry) until beat folds the
    results in (``worker/batches.py``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    provider_id = models.CharField(max_length=128, unique=True)
    model = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=BatchStatus.choices, default=BatchStatus.IN_PROGRESS)
    requests = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    errored = models.PositiveIntegerField(default=0)
    expired = models.PositiveIntegerField(default=0)
    canceled = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    # custom_id -> {"job": uuid, "token": claim token, "revision": n}: what each result folds into.
    items = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    folded_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "extraction batches"

    def __str__(self) -> str:
        return f"{self.provider_id} {self.status} ({self.requests})"
