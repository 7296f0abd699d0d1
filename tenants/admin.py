"""Tenants and their keys in the admin. Tenants are edited here (NEXUS_TENANTS only creates
and updates the ones it lists, at migrate); keys are made by ``manage.py tenant_key create``
(the secret is shown once, in that terminal) and listed and revoked here."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import Tenant, TenantKey, TenantMembership
from .services import tenant_key_revoke


class DomainsField(forms.CharField):
    """A list of host names, typed separated by commas, spaces or lines."""

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        return [d.lower() for d in re.split(r"[\s,;]+", text) if d]


class TenantForm(forms.ModelForm):
    domains = DomainsField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Host names whose pages post for this tenant (no scheme or port), e.g. shop.example.com. "
        "Empty for a server-only channel.",
    )

    class Meta:
        model = Tenant
        fields = ["slug", "name", "domains", "active"]


class TenantKeyInline(admin.TabularInline):
    model = TenantKey
    extra = 0
    can_delete = False
    fields = ["id", "prefix", "label", "created_at", "revoked_at"]
    readonly_fields = fields  # type: ignore[assignment]  # one list, both roles

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # manage.py tenant_key create: the secret is shown once, in a terminal


class TenantMembershipInline(admin.TabularInline):
    """The tenants whose prospects, jobs and extractions this staff user sees (on the user's
    page: a superuser needs none)."""

    model = TenantMembership
    extra = 0
    fields = ["tenant", "created_at"]
    readonly_fields = ["created_at"]
    verbose_name = "tenant membership"


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = TenantForm
    list_display = ["slug", "name", "domain_list", "active", "updated_at"]
    list_filter = ["active"]
    search_fields = ["slug", "name"]
    inlines = [TenantKeyInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A slug is what X-Tenant-Id and the metrics name: renaming one would silently move or
        # break its producers, so it is fixed once made.
        return ["slug"] if obj is not None else []

    @admin.display(description="domains")
    def domain_list(self, tenant: Tenant) -> str:
        return ", ".join(tenant.domains) or "—"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Its jobs and prospects refer to it; an operator deactivates a tenant instead.
        return False


@admin.register(TenantKey)
class TenantKeyAdmin(admin.ModelAdmin):
    list_display = ["id", "tenant", "prefix", "label", "created_at", "revoked_at"]
    list_filter = ["tenant", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["label", "prefix"]
    readonly_fields = ["tenant", "prefix", "key_hash", "created_at", "revoked_at"]
    fields = ["tenant", "label", "prefix", "key_hash", "created_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # manage.py tenant_key create: the secret is shown once, in a terminal

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoked keys stay listed: who had access, and until when

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[TenantKey]) -> None:
        revoked = sum(tenant_key_revoke(key_id=key_id) for key_id in queryset.values_list("id", flat=True))
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)


@admin.register(TenantMembership)
class TenantMembershipAdmin(admin.ModelAdmin):
    """Which staff user sees which tenant (a superuser sees every tenant without one)."""

    list_display = ["user", "tenant", "created_at"]
    list_filter = ["tenant"]
    search_fields = ["user__username", "user__email", "tenant__slug"]
    list_select_related = ["user", "tenant"]
    fields = ["user", "tenant"]


# The user's page lists their tenants beside their groups (the way Django's UserAdmin is
# extended).
User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class UserWithTenantsAdmin(UserAdmin):
    inlines = [*UserAdmin.inlines, TenantMembershipInline]
