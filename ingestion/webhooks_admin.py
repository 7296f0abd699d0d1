"""Admin for prospect events, webhook endpoints and their deliveries (issue 14): each attempt
shown, with "redeliver" and "send test event" actions. Registered from ingestion.admin.

Scoped like prospects (tenants/access.py): a staff user sees their tenants' events, endpoints
and deliveries; an endpoint of no tenant (every tenant's events) and its deliveries only a
superuser; another tenant's id answers 404."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from prospects import webhooks
from prospects.masking import CONTACT_FIELDS, CONTACTS_PERMISSION, mask_email, mask_phone
from prospects.models import Delivery, DeliveryAttempt, DeliveryStatus, Event, WebhookEndpoint
from tenants.access import TenantScopedAdminMixin, tenant_ids_for
from tenants.models import Tenant

from . import dispatch


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ("at", "status_code", "latency_ms", "response_excerpt")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _masked_changes(payload: dict[str, Any]) -> dict[str, Any]:
    """An event's payload with its contact values masked (``prospects.masking``)."""
    mask = {"email": mask_email, "telefono": mask_phone}
    changes = {}
    for name, change in (payload.get("changes") or {}).items():
        if name in CONTACT_FIELDS and isinstance(change, dict):
            change = {k: mask[name](v) if isinstance(v, str) else v for k, v in change.items()}
        changes[name] = change
    return {**payload, "changes": changes}


@admin.register(Event)
class EventAdmin(TenantScopedAdminMixin, admin.ModelAdmin):  # type: ignore[misc]  # mixin vs generic stub
    """Read-only: the outbox is written by the fold, never by hand."""

    list_display = ("id", "type", "prospect", "sequence", "tenant", "created_at", "delivered_at")
    list_filter = ("type", ("tenant", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("prospect", "tenant")
    readonly_fields = (
        "type", "prospect", "sequence", "tenant", "payload", "masked_payload", "created_at", "delivered_at"
    )  # fmt: skip

    def get_fields(self, request: HttpRequest, obj: object = None) -> Any:
        # The payload's contact values in clear only with prospects.view_contacts.
        shown = "payload" if request.user.has_perm(CONTACTS_PERMISSION) else "masked_payload"
        return ("type", "prospect", "sequence", "tenant", shown, "created_at", "delivered_at")

    @admin.display(description="payload")
    def masked_payload(self, obj: Event) -> Any:
        return _masked_changes(obj.payload)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(TenantScopedAdminMixin, admin.ModelAdmin):  # type: ignore[misc]  # mixin vs generic stub
    list_display = ("url", "tenant", "active", "disabled_reason", "created_at")
    list_filter = ("active", ("tenant", admin.RelatedOnlyFieldListFilter))
    actions = ("send_test_event", "disable")

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "url":
            kwargs["assume_scheme"] = "https"  # Django 6's default; 5.2 warns without it
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field: Any = super().formfield_for_foreignkey(db_field, request, **kwargs)
        ids = tenant_ids_for(request.user)
        if db_field.name == "tenant" and ids is not None:
            # Not a superuser: only their tenants, and never "every tenant" (no tenant).
            field.queryset = Tenant.objects.filter(pk__in=ids)
            field.required = True
            field.empty_label = None
        return field

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: object, change: bool) -> None:
        if not obj.secret:
            obj.secret = webhooks.secret_new()
        super().save_model(request, obj, form, change)

    @admin.action(description="Send a test event")
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            status, excerpt = webhooks.test_send(endpoint)
            level = messages.SUCCESS if status is not None and 200 <= status < 300 else messages.WARNING
            self.message_user(request, f"{endpoint.url}: {status or 'no answer'} {excerpt[:80]}", level)

    @admin.action(description="Disable")
    def disable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        queryset.update(active=False, disabled_reason="disabled in the admin")


@admin.register(Delivery)
class DeliveryAdmin(TenantScopedAdminMixin, admin.ModelAdmin):  # type: ignore[misc]  # mixin vs generic stub
    tenant_field = "endpoint__tenant"
    list_display = ("webhook_id", "endpoint", "event", "status", "attempts", "next_attempt_at")
    list_filter = ("status", ("endpoint", admin.RelatedOnlyFieldListFilter))
    readonly_fields = ("event", "endpoint", "status", "attempts", "next_attempt_at", "created_at")
    inlines = (DeliveryAttemptInline,)
    actions = ("redeliver",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Redeliver")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        with transaction.atomic():
            Delivery.objects.filter(pk__in=ids).update(
                status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=None
            )
            Event.objects.filter(deliveries__in=ids).update(delivered_at=None)
            transaction.on_commit(lambda: _publish_all(ids))
        self.message_user(request, f"{len(ids)} deliveries queued again")


def _publish_all(delivery_ids: list[int]) -> None:
    for delivery_id in delivery_ids:
        dispatch.delivery_publish(delivery_id)
