"""The prospect review desk: who the visitors are, how interested, and what was extracted.

Prospects are a fold of their sessions' extractions (SPEC §10), so what the fold derives is
read-only here; a person changes it by re-queueing a job, not by editing fields the next merge
would undo. What people do own are the review fields (models.REVIEW_FIELDS: status, owner,
notes, contacted_at), set with the list's actions or on the page; each change is kept in the
admin's history (LogEntry) and the access log (status and owner changes).
The sessions and extractions shown on a prospect's page are the pipeline's: ``ingestion``
registers this admin again with those inlines (this app imports nothing from it).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.db.models.functions import Now
from django.forms import ModelChoiceField
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import capfirst

from audit.admin import AuditedActionsMixin
from audit.services import access_record
from tenants.access import TenantScopedAdminMixin

from .masking import CONTACT_FIELDS, CONTACTS_PERMISSION, EXPORT_PERMISSION, mask_email, mask_phone
from .models import Prospect, ReviewStatus
from .vocabulary import Momento, Objecion

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


class MineFilter(admin.SimpleListFilter):
    title = "owner"
    parameter_name = "mine"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "mine"), ("nobody", "nobody's")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Prospect]) -> QuerySet[Prospect]:
        if self.value() == "yes":
            return queryset.filter(owner_id=request.user.pk)
        if self.value() == "nobody":
            return queryset.filter(owner__isnull=True)
        return queryset


# A caliente prospect nobody has worked yet: the desk's first rows and its "hot" filter.
HOT_UNCONTACTED = Q(momento_optimo=Momento.CALIENTE, review_status=ReviewStatus.NUEVO)


class HotUncontactedFilter(admin.SimpleListFilter):
    title = "to call"
    parameter_name = "hot"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "hot and not contacted")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Prospect]) -> QuerySet[Prospect]:
        return queryset.filter(HOT_UNCONTACTED) if self.value() == "yes" else queryset


class ReferrerNameFilter(admin.SimpleListFilter):
    """One referrer's prospects (``?constructor_id=<slug>``); offers the referrers of the rows
    the user may see, so another tenant's referrers are not listed."""

    title = "referred by"
    parameter_name = "constructor_id"
    most = 50

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = (
            model_admin.get_queryset(request)
            .exclude(constructor_id__isnull=True)
            .order_by("constructor_id")
            .values_list("constructor_id", flat=True)
            .distinct()[: self.most]
        )
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Prospect]) -> QuerySet[Prospect]:
        return queryset.filter(constructor_id=self.value()) if self.value() else queryset


def phone_digits(value: str) -> str:
    """An E.164 number's digits, country code first (what wa.me and tel:+ want)."""
    return "".join(c for c in value if c.isdigit())


def contact_links(email: str | None, telefono: str | None) -> str:
    """The e-mail as a mailto: link, the phone as tel: and WhatsApp links; escaped."""
    parts = []
    if email:
        parts.append(format_html('<a href="mailto:{}">{}</a>', quote(email, safe="@.+-_"), email))
    if telefono and phone_digits(telefono):
        digits = phone_digits(telefono)
        parts.append(
            format_html(
                '<a href="tel:+{}">{}</a> · <a href="https://wa.me/{}" target="_blank"'
                ' rel="noopener noreferrer">WhatsApp</a>',
                digits,
                telefono,
                digits,
            )
        )
    elif telefono:
        parts.append(format_html("{}", telefono))
    return format_html_join(mark_safe("<br>"), "{}", ((part,) for part in parts)) or "-"


def _review_change_message(fields: list[str]) -> list[dict[str, Any]]:
    """A history message in the admin's own structured form, labelled as the change form
    labels its fields ("Changed Review status.")."""
    names = [capfirst(str(getattr(Prospect._meta.get_field(f), "verbose_name", f))) for f in fields]
    return [{"changed": {"fields": names}}]


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
    # name (or the visitor's key) once, email over phone, interest and moment in one cell, the
    # review status over the stage and owner; the session count and the rest are on the
    # prospect's page and in the CSV.
    list_display = [
        "prospect", "contact", "arquetipo", "interest", "review", "last_seen",
    ]  # fmt: skip
    list_select_related = ["tenant", "owner"]
    list_display_links = ["prospect"]
    search_fields = ["nombre", "email", "telefono", "fingerprint", "constructor_id"]
    list_filter = [
        HotUncontactedFilter, MineFilter, "review_status",
        # The tenant filter offers only the user's tenants (RelatedOnly: from the scoped rows).
        ("tenant", admin.RelatedOnlyFieldListFilter), "arquetipo", "momento_optimo", "stage",
        ReferrerFilter, ReferrerNameFilter, ChannelFilter, "page_context",
        "is_returning", "consent_given", "last_seen_at", "first_seen_at",
    ]  # fmt: skip
    # Hot leads nobody has contacted yet first, then the hottest, then the most recent; a
    # prospect not yet rated sorts last, not first (PostgreSQL puts NULLs first in a
    # descending order).
    ordering = [
        Case(When(HOT_UNCONTACTED, then=Value(0)), default=Value(1)).asc(),
        F("nivel_interes").desc(nulls_last=True),
        "-last_seen_at",
    ]
    date_hierarchy = "last_seen_at"
    # The review fields people edit; contacted_at is set by "contacted" (the action or the page).
    review_fields = ["review_status", "owner", "notes"]
    readonly_fields = [
        "contacted_at", "reach", "tenant", "key", "fingerprint", "nombre", "email", "telefono",
        "ocupacion", "nivel_interes", "momento_optimo", "arquetipo", "objections", "stage",
        "constructor_id", "page_context", "channels", "is_returning", "consent_given", "consent_at",
        "first_seen_at", "last_seen_at", "session_count", "created_at", "updated_at",
    ]  # fmt: skip
    # The page shows exactly these: the review fields, then the fold's (read-only), so
    # objeciones appears once, as labels.
    fields = [*review_fields, *readonly_fields]  # type: ignore[assignment]  # list, not tuple
    # Shown only with prospects.view_contacts; masked_<name> stands in for each otherwise.
    personal_fields: tuple[str, ...] = (*CONTACT_FIELDS, "reach")
    actions = ["assign_to_me", "mark_contacted", "discard", "export_selected_csv"]
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

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        # The CSV link only for whom it would not answer 403.
        extra_context = {**(extra_context or {}), "can_export": self.has_export_prospects_permission(request)}
        return super().changelist_view(request, extra_context)

    def get_list_display(self, request: HttpRequest) -> Any:
        if self.has_contacts_permission(request):
            return self.list_display
        return ["masked_contact" if c == "contact" else c for c in self.list_display]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        owner = form.base_fields.get("owner")
        if isinstance(owner, ModelChoiceField) and obj is not None:
            # An owner is a staff member of the prospect's tenant (or a superuser): the list
            # names no other tenant's staff.
            owner.queryset = (
                get_user_model()
                .objects.filter(is_active=True, is_staff=True)
                .filter(Q(is_superuser=True) | Q(tenant_memberships__tenant_id=obj.tenant_id))
                .distinct()
                .order_by("username")
            )
        return form

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        changed = [f for f in form.changed_data if f in ("review_status", "owner")]
        if "review_status" in changed and obj.review_status == ReviewStatus.CONTACTADO:
            obj.contacted_at = Now()
        # Only the review fields: the fold's are not on the form, and a save of the whole row
        # could write back what a merge changed since the page was loaded.
        obj.save(update_fields=[*form.changed_data, "contacted_at", "updated_at"])
        obj.refresh_from_db(fields=["contacted_at"])
        self._audit_review(request, [obj.pk], changed, obj.review_status, obj.owner_id)

    def _audit_review(
        self, request: HttpRequest, ids: list[int], changed: list[str], status: str, owner_id: int | None
    ) -> None:
        """The access log's record of a review change: ids, the new status or owner id, never
        a note or a contact."""
        if not ids:
            return
        if "review_status" in changed:
            access_record(
                action="review_status_changed", user=request.user, target="prospects.prospect",
                object_ids=ids, filters={"review_status": status}, row_count=len(ids),
            )  # fmt: skip
        if "owner" in changed:
            access_record(
                action="owner_changed", user=request.user, target="prospects.prospect",
                object_ids=ids, filters={"owner_id": owner_id or "none"}, row_count=len(ids),
            )  # fmt: skip

    def _review_action(
        self, request: HttpRequest, queryset: QuerySet[Prospect], values: dict[str, Any], done: str
    ) -> None:
        """Set ``values`` on the selected rows (get_queryset already cut them to the user's
        tenants, whatever ids were POSTed) that do not hold them yet; history and access log."""
        first = next(iter(values))  # the field that tells an unchanged row
        with transaction.atomic():
            rows = list(
                queryset.exclude(**{first: values[first]})
                .select_related(None)
                .select_for_update()
                .order_by("pk")
            )
            ids = [row.pk for row in rows]
            Prospect.objects.filter(pk__in=ids).update(**values, updated_at=Now())
            message = _review_change_message(list(values))
            for row in rows:
                self.log_change(request, row, message)
            owner = values.get("owner")
            self._audit_review(
                request, ids, list(values), values.get("review_status", ""), owner.pk if owner else None
            )
        self.message_user(request, f"{len(ids)} prospect(s) {done}.")

    @admin.action(description="Assign to me", permissions=["change"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[Prospect]) -> None:
        self._review_action(request, queryset, {"owner": request.user}, "assigned to you")

    @admin.action(description="Mark contacted", permissions=["change"])
    def mark_contacted(self, request: HttpRequest, queryset: QuerySet[Prospect]) -> None:
        # contacted_at from the database's clock (Now()), as the page's "contactado" sets it.
        values = {"review_status": ReviewStatus.CONTACTADO, "contacted_at": Now()}
        self._review_action(request, queryset, values, "marked contacted")

    @admin.action(description="Discard", permissions=["change"])
    def discard(self, request: HttpRequest, queryset: QuerySet[Prospect]) -> None:
        self._review_action(request, queryset, {"review_status": ReviewStatus.DESCARTADO}, "discarded")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self._contact_fields(request, super().get_fields(request, obj))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self._contact_fields(request, super().get_readonly_fields(request, obj))

    def _contact_fields(self, request: HttpRequest, fields: Any) -> list[Any]:
        if self.has_contacts_permission(request):
            return list(fields)
        return [f"masked_{f}" if f in self.personal_fields else f for f in fields]

    def get_search_fields(self, request: HttpRequest) -> Any:
        if self.has_contacts_permission(request):
            return self.search_fields
        # A search by e-mail would tell whether that person is here.
        return [f for f in self.search_fields if f not in CONTACT_FIELDS]

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

    # The review status over the stage and the owner: one column, so the list still fits
    # 1,440 px with the contact links.
    @admin.display(description="review", ordering="review_status")
    def review(self, prospect: Prospect) -> str:
        owner = prospect.owner.get_username() if prospect.owner is not None else "nobody"
        return format_html(
            "{}<br><small>{} · {}</small>",
            prospect.get_review_status_display(),
            prospect.get_stage_display(),
            owner,
        )

    @admin.display(description="contact", ordering="email")
    def contact(self, prospect: Prospect) -> str:
        return contact_links(prospect.email, prospect.telefono)

    @admin.display(description="reach")
    def reach(self, prospect: Prospect) -> str:
        """E-mail, call and WhatsApp links; masked, without links, lacking view_contacts."""
        return contact_links(prospect.email, prospect.telefono)

    @admin.display(description="reach")
    def masked_reach(self, prospect: Prospect) -> str:
        return self.masked_contact(prospect)

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
