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
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from audit.admin import AuditedActionsMixin
from audit.services import access_record
from tenants.access import TenantScopedAdminMixin

from .masking import CONTACT_FIELDS, CONTACTS_PERMISSION, EXPORT_PERMISSION, mask_email, mask_phone
from .models import Prospect
from .vocabulary import Objecion

CSV_COLUMNS = [
    "id", "tenant", "nombre", "email", "telefono", "ocupacion", "arquetipo", "nivel_interes",
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


def objection_labels(values: Iterable[str] | None) -> str:
    """Objection values as the vocabulary's labels, in its order; an unknown value as it is."""
    given = list(values or [])
    known = [label for value, label in Objecion.choices if value in given]
    return ", ".join([*known, *(v for v in given if v not in Objecion.values)])


class _Echo:
    """csv.writer wants a file; a streaming response wants the rows back."""

    def write(self, value: str) -> str:
        return value


def csv_columns(*, contacts: bool) -> list[str]:
    """The CSV's columns: without the contacts permission, no e-mail and no phone."""
    return CSV_COLUMNS if contacts else [c for c in CSV_COLUMNS if c not in CONTACT_FIELDS]


def prospects_csv(prospects: Iterable[Prospect], columns: list[str] = CSV_COLUMNS) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(columns)
    for prospect in prospects:
        yield writer.writerow([csv_cell(getattr(prospect, column)) for column in columns])


def _csv_response(queryset: QuerySet[Prospect], *, contacts: bool) -> StreamingHttpResponse:
    name = f"prospects-{timezone.now():%Y%m%d-%H%M%S}.csv"
    rows = queryset.select_related("tenant").iterator(chunk_size=500)
    body = prospects_csv(rows, csv_columns(contacts=contacts))
    response = StreamingHttpResponse(body, content_type="text/csv; charset=utf-8")
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
class ProspectAdmin(AuditedActionsMixin, TenantScopedAdminMixin, admin.ModelAdmin):  # type: ignore[misc]  # mixin vs generic stub
    # Six columns that fit a 1,440 px window beside the admin's sidebars (ten overflowed): the
    # name (or the visitor's key) once, email over phone, interest and moment in one cell; the
    # session count and the rest are on the prospect's page and in the CSV.
    list_display = [
        "prospect", "contact", "arquetipo", "interest", "stage", "last_seen",
    ]  # fmt: skip
    list_select_related = ["tenant"]
    list_display_links = ["prospect"]
    search_fields = ["nombre", "email", "telefono", "fingerprint", "constructor_id"]
    list_filter = [
        # The tenant filter offers only the user's tenants (RelatedOnly: from the scoped rows).
        ("tenant", admin.RelatedOnlyFieldListFilter), "arquetipo", "momento_optimo", "stage",
        ReferrerFilter, ChannelFilter, "page_context",
        "is_returning", "consent_given", "last_seen_at", "first_seen_at",
    ]  # fmt: skip
    # Hottest first; a prospect not yet rated sorts last, not first (PostgreSQL puts NULLs
    # first in a descending order).
    ordering = [F("nivel_interes").desc(nulls_last=True), "-last_seen_at"]
    date_hierarchy = "last_seen_at"
    readonly_fields = [
        "tenant", "key", "fingerprint", "nombre", "email", "telefono", "ocupacion", "nivel_interes",
        "momento_optimo", "arquetipo", "objections", "stage", "constructor_id", "page_context",
        "channels", "is_returning", "consent_given", "consent_at", "first_seen_at",
        "last_seen_at", "session_count", "created_at", "updated_at",
    ]  # fmt: skip
    # The page shows exactly these (read-only), so objeciones appears once, as labels.
    fields = readonly_fields  # type: ignore[assignment]  # one list, both roles
    actions = ["export_selected_csv"]
    list_per_page = 50

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # One referrer's prospects by URL (?constructor_id=slug), as the CSV export link keeps it.
        return lookup == "constructor_id" or super().lookup_allowed(lookup, value, request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    # Who sees contacts (prospects.view_contacts) and who exports (prospects.export_prospects):
    # without the first, e-mails and phones are masked on the list and the page, cannot be
    # searched for, and the CSV leaves them out.
    def has_contacts_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CONTACTS_PERMISSION)

    def has_export_prospects_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(EXPORT_PERMISSION) and self.has_view_permission(request)

    def get_list_display(self, request: HttpRequest) -> Any:
        if self.has_contacts_permission(request):
            return self.list_display
        return ["masked_contact" if c == "contact" else c for c in self.list_display]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self._contact_fields(request, super().get_fields(request, obj))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self._contact_fields(request, super().get_readonly_fields(request, obj))

    def _contact_fields(self, request: HttpRequest, fields: Any) -> list[Any]:
        if self.has_contacts_permission(request):
            return list(fields)
        return [f"masked_{f}" if f in CONTACT_FIELDS else f for f in fields]

    def get_search_fields(self, request: HttpRequest) -> Any:
        if self.has_contacts_permission(request):
            return self.search_fields
        # A search by e-mail would tell whether that person is here.
        return [f for f in self.search_fields if f not in CONTACT_FIELDS]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="prospect", ordering="nombre")
    def prospect(self, prospect: Prospect) -> str:
        # The tenant and the referrer under the name, not in columns of their own: the list
        # must fit 1,440 px.
        origin = prospect.tenant.slug
        if prospect.constructor_id:
            origin = f"{origin} · ref {prospect.constructor_id}"
        return format_html("{}<br><small>{}</small>", str(prospect), origin)

    @admin.display(description="interest", ordering="nivel_interes")
    def interest(self, prospect: Prospect) -> str:
        if prospect.nivel_interes is None:
            return "-"
        return f"{prospect.nivel_interes} · {prospect.get_momento_optimo_display()}"

    @admin.display(description="contact", ordering="email")
    def contact(self, prospect: Prospect) -> str:
        given = [value for value in (prospect.email, prospect.telefono) if value]
        return format_html_join(mark_safe("<br>"), "{}", ((value,) for value in given)) or "-"

    @admin.display(description="contact")
    def masked_contact(self, prospect: Prospect) -> str:
        given = [v for v in (mask_email(prospect.email), mask_phone(prospect.telefono)) if v]
        return format_html_join(mark_safe("<br>"), "{}", ((value,) for value in given)) or "-"

    @admin.display(description="email")
    def masked_email(self, prospect: Prospect) -> str:
        return mask_email(prospect.email) or "-"

    @admin.display(description="telefono")
    def masked_telefono(self, prospect: Prospect) -> str:
        return mask_phone(prospect.telefono) or "-"

    @admin.display(description="last seen", ordering="last_seen_at")
    def last_seen(self, prospect: Prospect) -> str:
        return f"{timezone.localtime(prospect.last_seen_at):%Y-%m-%d %H:%M}"

    @admin.display(description="objeciones")
    def objections(self, prospect: Prospect) -> str:
        """The objections by their labels ("Precio, Multinivel (MLM)"), not as a JSON list."""
        return objection_labels(prospect.objeciones) or "-"

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        if response.status_code == 200 and self.has_contacts_permission(request):
            # The page showed this prospect's e-mail and phone in full.
            access_record(
                action="view_contacts", user=request.user, target="prospects.prospect",
                object_ids=[object_id], row_count=1,
            )  # fmt: skip
        return response

    def get_urls(self) -> list[URLPattern]:
        export = path(
            "export.csv",
            self.admin_site.admin_view(self.export_csv_view),
            name="prospects_prospect_export",
        )
        return [export, *super().get_urls()]

    def export_csv_view(self, request: HttpRequest) -> HttpResponseBase:
        """The list as filtered, searched and ordered on screen, every page of it."""
        if not self.has_export_prospects_permission(request):
            return HttpResponse(status=403)
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse("admin:prospects_prospect_changelist"))
        queryset = changelist.get_queryset(request)
        access_record(
            action="export_csv", user=request.user, target="prospects.prospect",
            filters=dict(request.GET.items()), row_count=queryset.count(),
        )  # fmt: skip
        return _csv_response(queryset, contacts=self.has_contacts_permission(request))

    @admin.action(description="Export selected prospects as CSV", permissions=["export_prospects"])
    def export_selected_csv(self, request: HttpRequest, queryset: QuerySet[Prospect]) -> HttpResponseBase:
        return _csv_response(queryset, contacts=self.has_contacts_permission(request))
