"""The prospect review desk: who the visitors are, how interested, and what was extracted.

Prospects are a fold of their sessions' extractions (SPEC §10), so they are read-only here;
a person changes them by re-queueing a job, not by editing fields the next merge would undo.
The sessions and extractions shown on a prospect's page are the pipeline's: ``ingestion``
registers this admin again with those inlines (this app imports nothing from it).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from .models import Prospect

CSV_COLUMNS = [
    "id", "nombre", "email", "telefono", "ocupacion", "arquetipo", "nivel_interes",
    "momento_optimo", "objeciones", "stage", "fingerprint", "session_count", "first_seen_at",
    "last_seen_at", "constructor_id", "page_context", "channels", "is_returning",
    "consent_given", "consent_at",
]  # fmt: skip

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection); the
# tab and carriage return variants are in OWASP's list too.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A value as a CSV cell a spreadsheet shows as text, never evaluates."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = ";".join(str(v) for v in value)
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


class _Echo:
    """csv.writer wants a file; a streaming response wants the rows back."""

    def write(self, value: str) -> str:
        return value


def prospects_csv(prospects: Iterable[Prospect]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for prospect in prospects:
        yield writer.writerow([csv_cell(getattr(prospect, column)) for column in CSV_COLUMNS])


def _csv_response(queryset: QuerySet[Prospect]) -> StreamingHttpResponse:
    name = f"prospects-{timezone.now():%Y%m%d-%H%M%S}.csv"
    response = StreamingHttpResponse(
        prospects_csv(queryset.iterator(chunk_size=500)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


class ChannelFilter(admin.SimpleListFilter):
    """Prospects seen on a channel (``channels`` holds every channel seen, comma-joined)."""

    title = "channel"
    parameter_name = "channel"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("web", "Web"), ("whatsapp", "WhatsApp"), ("api", "API")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Prospect]) -> QuerySet[Prospect]:
        value = self.value()
        if value not in {"web", "whatsapp", "api"}:
            return queryset
        # Whole names only in the sorted, comma-joined list.
        return queryset.filter(
            Q(channels=value)
            | Q(channels__startswith=f"{value},")
            | Q(channels__endswith=f",{value}")
            | Q(channels__contains=f",{value},")
        )


class ReferrerFilter(admin.SimpleListFilter):
    """Referred by a distributor or not; one referrer is ``?constructor_id=<slug>`` or a search."""

    title = "referrer"
    parameter_name = "referred"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "referred"), ("no", "no referrer")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Prospect]) -> QuerySet[Prospect]:
        if self.value() in ("yes", "no"):
            return queryset.filter(constructor_id__isnull=self.value() == "no")
        return queryset


@admin.register(Prospect)
class ProspectAdmin(admin.ModelAdmin):
    list_display = [
        "__str__", "nombre", "email", "telefono", "arquetipo", "nivel_interes", "momento_optimo",
        "stage", "constructor_id", "channels", "session_count", "last_seen_at",
    ]  # fmt: skip
    list_display_links = ["__str__"]
    search_fields = ["nombre", "email", "telefono", "fingerprint", "constructor_id"]
    list_filter = [
        "arquetipo", "momento_optimo", "stage", ReferrerFilter, ChannelFilter, "page_context",
        "is_returning", "consent_given", "last_seen_at", "first_seen_at",
    ]  # fmt: skip
    # Hottest first; a prospect not yet rated sorts last, not first (PostgreSQL puts NULLs
    # first in a descending order).
    ordering = [F("nivel_interes").desc(nulls_last=True), "-last_seen_at"]
    date_hierarchy = "last_seen_at"
    readonly_fields = [
        "key", "fingerprint", "nombre", "email", "telefono", "ocupacion", "nivel_interes",
        "momento_optimo", "arquetipo", "objeciones", "stage", "constructor_id", "page_context",
        "channels", "is_returning", "consent_given", "consent_at", "first_seen_at",
        "last_seen_at", "session_count", "created_at", "updated_at",
    ]  # fmt: skip
    actions = ["export_selected_csv"]
    list_per_page = 50

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # One referrer's prospects by URL (?constructor_id=slug), as the CSV export link keeps it.
        return lookup == "constructor_id" or super().lookup_allowed(lookup, value, request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        export = path(
            "export.csv",
            self.admin_site.admin_view(self.export_csv_view),
            name="prospects_prospect_export",
        )
        return [export, *super().get_urls()]

    def export_csv_view(self, request: HttpRequest) -> HttpResponseBase:
        """The list as filtered, searched and ordered on screen, every page of it."""
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse("admin:prospects_prospect_changelist"))
        return _csv_response(changelist.get_queryset(request))

    @admin.action(description="Export selected prospects as CSV")
    def export_selected_csv(self, request: HttpRequest, queryset: QuerySet[Prospect]) -> HttpResponseBase:
        return _csv_response(queryset)
