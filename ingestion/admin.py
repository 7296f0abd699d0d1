"""The job ledger in the admin: the dead-letter queue and the re-queue buttons; every
extractor call, read-only; and a prospect's sessions, extractions and conversations on its page.

Rows are written by the pipeline only; the admin reads them and acts through
``services.job_requeue`` (the same path as ``manage.py reprocess``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from audit.admin import AuditedActionsMixin
from prospects.admin import ProspectAdmin
from prospects.models import Prospect
from tenants.access import TenantScopedAdminMixin

from .models import LIVE_TRIGGER, Extraction, ExtractionBatch, Job
from .services import job_requeue
from .worker.batches import batch_cancel


def humanize_age(age: timedelta) -> str:
    seconds = max(0, int(age.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


class PurgedFilter(admin.SimpleListFilter):
    title = "transcript"
    parameter_name = "purged"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "kept"), ("yes", "purged by retention")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        if self.value() in ("yes", "no"):
            return queryset.filter(purged_at__isnull=self.value() == "no")
        return queryset


@admin.register(Job)
class JobAdmin(AuditedActionsMixin, TenantScopedAdminMixin, admin.ModelAdmin):  # type: ignore[misc]  # mixin vs generic stub
    list_display = [
        "session_id", "tenant", "status", "revision", "processed_revision", "failed_calls", "claims",
        "error_category", "short_error", "age", "prospect", "channel", "constructor_id", "trigger",
    ]  # fmt: skip
    list_filter = [
        ("tenant", admin.RelatedOnlyFieldListFilter), "status", "error_category", PurgedFilter, "channel",
        ("constructor_id", admin.EmptyFieldListFilter), "page_context", "revised_at",
    ]  # fmt: skip
    search_fields = ["session_id", "fingerprint", "constructor_id"]
    list_select_related = ["prospect", "tenant"]
    ordering = ["-revised_at"]
    date_hierarchy = "revised_at"
    actions = ["requeue", "reextract"]
    list_per_page = 100
    readonly_fields = [
        "id", "tenant", "session_id", "fingerprint", "status", "revision", "processed_revision", "attempts",
        "claims", "error_category", "last_error", "next_attempt_at", "dispatched_at", "lease_until",
        "trigger", "prospect", "channel", "constructor_id", "constructor_at", "page_context",
        "is_returning", "consent_given", "consent_at", "created_at", "updated_at", "revised_at",
        "enqueued_at",
        "started_at", "processed_at", "purged_at", "message_count", "transcript_hash",
        "transcript", "metadata_json", "extracted_json",
    ]  # fmt: skip
    exclude = ["messages", "metadata", "extracted", "claim_token"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        qs = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name == "ingestion_job_changelist":
            # The list never shows transcripts; do not load them for 100 rows at a time.
            return qs.defer("messages", "metadata", "extracted")
        return qs

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Job], search_term: str) -> Any:
        """A pasted queueId finds its job; anything else searches session id and fingerprint."""
        try:
            return queryset.filter(id=uuid.UUID(search_term.strip())), False
        except ValueError:
            return super().get_search_results(request, queryset, search_term)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The row is the promise made to the widget; retention (cleanup) decides its fate.
        return False

    # "attempts" counts the failed extractor calls of the current revision: 0 on a completed
    # job means its first call succeeded (the column said "attempts: 0" with no explanation).
    @admin.display(description="failed calls", ordering="attempts")
    def failed_calls(self, job: Job) -> int:
        return job.attempts

    @admin.display(description="last error")
    def short_error(self, job: Job) -> str:
        return job.last_error if len(job.last_error) <= 80 else job.last_error[:79] + "…"

    @admin.display(description="age", ordering="revised_at")
    def age(self, job: Job) -> str:
        return humanize_age(timezone.now() - job.revised_at)

    @admin.display(description="transcript")
    def transcript(self, job: Job) -> str:
        if job.purged_at:
            return f"purged {job.purged_at:%Y-%m-%d %H:%M} (retention)"
        return _pre(job.messages)

    @admin.display(description="metadata")
    def metadata_json(self, job: Job) -> str:
        return _pre(job.metadata)

    @admin.display(description="extracted (latest success)")
    def extracted_json(self, job: Job) -> str:
        return _pre(job.extracted)

    @admin.action(description="Re-queue selected jobs", permissions=["change"])
    def requeue(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._requeue(request, queryset, reextract=False)

    @admin.action(description="Re-extract selected jobs (new Extraction record)", permissions=["change"])
    def reextract(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._requeue(request, queryset, reextract=True)

    def _requeue(self, request: HttpRequest, queryset: QuerySet[Job], *, reextract: bool) -> None:
        ids = list(queryset.values_list("id", flat=True))
        queued = sum(job_requeue(job_id=job_id, reextract=reextract) for job_id in ids)
        skipped = len(ids) - queued
        verb = "Re-extraction queued for" if reextract else "Re-queued"
        self.message_user(request, f"{verb} {queued} job(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                f"Skipped {skipped} job(s): transcript purged by retention, or being processed now.",
                messages.WARNING,
            )


def _pre(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, ensure_ascii=False, indent=2))


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ExtractionInline(ReadOnlyInline):
    model = Extraction
    fields = [
        "created_at", "revision", "outcome", "error_category", "extractor", "prompt_version",
        "input_tokens", "output_tokens", "cost_usd", "latency_ms", "trigger",
    ]  # fmt: skip
    readonly_fields = fields  # type: ignore[assignment]  # one list, both roles
    ordering = ["-created_at"]


class JobInline(ReadOnlyInline):
    """The visitor's sessions, without their transcripts (the page's "conversation" shows them,
    to users who may see contacts)."""

    model = Job
    fk_name = "prospect"
    fields = [
        "session_id", "status", "revision", "processed_revision", "attempts", "claims",
        "error_category", "channel", "constructor_id", "page_context", "revised_at", "processed_at",
    ]  # fmt: skip
    readonly_fields = fields  # type: ignore[assignment]  # one list, both roles
    ordering = ["-revised_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        return super().get_queryset(request).defer("messages", "metadata", "extracted")


# The prospect desk (prospects/admin.py) with the pipeline's view of each prospect: its
# sessions and every extraction. Registered again here because prospects imports nothing
# from ingestion (the way Django's own UserAdmin is extended).
admin.site.unregister(Prospect)


@admin.register(Prospect)
class ProspectWithSessionsAdmin(ProspectAdmin):
    inlines = [JobInline, ExtractionInline]
    # Each session's latest transcript, read-only, last on the page. It is personal data: a
    # user without prospects.view_contacts sees masked_conversation instead (the parent's
    # _contact_fields), and change_view's access-log entry for a contacts view covers it.
    fields = [*ProspectAdmin.fields, "conversation"]  # type: ignore[assignment]  # list, not tuple
    readonly_fields = [*ProspectAdmin.readonly_fields, "conversation"]
    personal_fields = (*ProspectAdmin.personal_fields, "conversation")

    @admin.display(description="conversation")
    def conversation(self, prospect: Prospect) -> str:
        return conversation_html(
            Job.objects.filter(prospect=prospect, purged_at__isnull=True)
            .only("session_id", "messages", "revised_at", "channel")
            .order_by("-revised_at")
        )

    @admin.display(description="conversation")
    def masked_conversation(self, prospect: Prospect) -> str:
        return "hidden: needs the permission to see contacts (prospects.view_contacts)"


def conversation_html(jobs: Iterable[Job]) -> str:
    """Each session's latest transcript as role and text per message, newest session first,
    every value escaped."""
    blocks = []
    for job in jobs:
        turns = format_html_join(
            "",
            '<p class="nexus-turn nexus-{}"><strong>{}</strong>: {}</p>',
            (
                (_role(m), _role(m), str(m.get("content", "")) if isinstance(m, dict) else "")
                for m in (job.messages or [])
            ),
        )
        when = f"{timezone.localtime(job.revised_at):%Y-%m-%d %H:%M}"
        blocks.append(
            format_html(
                '<div class="nexus-conversation"><h4>{} · {} · {}</h4>{}</div>',
                job.session_id,
                job.channel,
                when,
                turns,
            )
        )
    if not blocks:
        return "-"
    return format_html_join("", "{}", ((block,) for block in blocks))


def _role(message: Any) -> str:
    role = message.get("role") if isinstance(message, dict) else None
    return role if role in ("user", "assistant") else "other"


@admin.register(Extraction)
class ExtractionAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """Every extractor call, read-only: what it cost and how long it took."""

    tenant_field = "job__tenant"

    # Seven narrow columns: the list fits a 1,440 px window beside the admin's sidebars (it
    # overflowed with fifteen); the extractor is in the prompt version ("offline-…") and the
    # filters, model, tokens and the full trigger are on the row's own page.
    list_display = [
        "when",
        "session",
        "outcome_and_category",
        "prompt_version",
        "cost_usd",
        "latency",
        "kind",
    ]
    list_filter = ["outcome", "extractor", "prompt_version", "error_category", "created_at"]
    search_fields = ["job__session_id", "job__id", "prospect__fingerprint"]
    list_select_related = ["job"]
    date_hierarchy = "created_at"
    list_per_page = 100

    def get_queryset(self, request: HttpRequest) -> QuerySet[Extraction]:
        return super().get_queryset(request).defer("job__messages", "job__metadata", "job__extracted")

    @admin.display(description="when", ordering="created_at")
    def when(self, extraction: Extraction) -> str:
        return f"{timezone.localtime(extraction.created_at):%m-%d %H:%M:%S}"

    # The session with this row's own revision: the job's label names its current revision
    # ("s-1 r2"), which on a revision-1 row read as if this were an extraction of revision 2.
    @admin.display(description="session", ordering="job__session_id")
    def session(self, extraction: Extraction) -> str:
        url = reverse("admin:ingestion_job_change", args=[extraction.job_id])
        return format_html('<a href="{}">{}</a> r{}', url, extraction.job.session_id, extraction.revision)

    @admin.display(description="outcome", ordering="outcome")
    def outcome_and_category(self, extraction: Extraction) -> str:
        if extraction.error_category:
            return f"{extraction.outcome} ({extraction.error_category})"
        return str(extraction.outcome)

    @admin.display(description="ms call / all", ordering="latency_ms")
    def latency(self, extraction: Extraction) -> str:
        whole = extraction.pipeline_latency_ms
        return f"{extraction.latency_ms} / " + (str(whole) if whole is not None else "-")

    @admin.display(description="trigger", ordering="trigger")
    def kind(self, extraction: Extraction) -> str:
        return "live" if extraction.trigger == LIVE_TRIGGER else "re-extract"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ExtractionBatch)
class ExtractionBatchAdmin(AuditedActionsMixin, admin.ModelAdmin):  # type: ignore[misc]  # mixin vs generic stub
    """Message Batches of bulk re-extractions: status, counts, cost; cancel from the list."""

    list_display = (
        "provider_id", "status", "model", "requests", "succeeded", "errored", "expired", "canceled",
        "cost_usd", "created_at", "ended_at", "folded_at",
    )  # fmt: skip
    list_filter = ("status",)
    readonly_fields = (
        "provider_id", "status", "model", "requests", "succeeded", "errored", "expired", "canceled",
        "cost_usd", "created_at", "ended_at", "folded_at", "cancel_requested_at",
    )  # fmt: skip
    exclude = ("items",)  # job ids and claim tokens: the jobs' own pages tell their story
    actions = ["cancel"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # `manage.py reprocess --batch` submits batches

    @admin.action(description="Cancel selected batches", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[ExtractionBatch]) -> None:
        canceled = sum(batch_cancel(batch_id=batch.id) for batch in queryset)
        self.message_user(
            request, f"Cancel requested for {canceled} batch(es); their jobs are requeued when it ends."
        )


from . import webhooks_admin  # noqa: E402, F401 - registers the webhook admins
