"""The access log in the admin: superusers only, read-only, nothing deleted by hand."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from . import services
from .models import AccessLogEntry


@admin.register(AccessLogEntry)
class AccessLogEntryAdmin(admin.ModelAdmin):
    list_display = ["at", "actor", "action", "target", "row_count"]
    list_filter = ["action", "target", "at"]
    search_fields = ["actor", "object_ids"]
    date_hierarchy = "at"
    readonly_fields = ["at", "actor", "user_id", "action", "target", "object_ids", "filters", "row_count"]
    fields = readonly_fields  # type: ignore[assignment]  # one list, both roles

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AuditedActionsMixin:
    """A ModelAdmin whose actions each leave an access-log entry: the action's name, the ids
    it ran on (or the filters, for "select all"), and how many rows."""

    def response_action(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponseBase | None:
        name = request.POST.get("action", "")
        selected = request.POST.getlist(ACTION_CHECKBOX_NAME)
        across = request.POST.get("select_across") == "1"
        if name in self.get_actions(request) and (selected or across):  # type: ignore[attr-defined]
            rows = queryset if across else queryset.filter(pk__in=selected)
            ids = list(rows.values_list("pk", flat=True)[: services.MAX_IDS])
            services.access_record(
                action="admin_action",
                user=request.user,
                target=queryset.model._meta.label_lower,
                object_ids=ids,
                filters={"action": name, **({"select_across": True} if across else {})},
                row_count=rows.count(),
            )
        return super().response_action(request, queryset)  # type: ignore[misc]
