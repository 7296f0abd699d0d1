"""Admin for webhook endpoints and their deliveries (issue 14): each attempt shown, with
"redeliver" and "send test event" actions. Registered from ingestion.admin."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from prospects import webhooks
from prospects.models import Delivery, DeliveryAttempt, DeliveryStatus, Event, WebhookEndpoint

from . import dispatch


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ("at", "status_code", "latency_ms", "response_excerpt")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ("url", "tenant", "active", "disabled_reason", "created_at")
    list_filter = ("active", "tenant")
    actions = ("send_test_event", "disable")

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
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("webhook_id", "endpoint", "event", "status", "attempts", "next_attempt_at")
    list_filter = ("status", "endpoint")
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
