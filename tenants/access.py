"""Who may see which tenant's rows: a superuser every tenant's, any other user only the
tenants they are a member of (``TenantMembership``), none without a membership."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import Model, QuerySet
from django.http import Http404

from .models import TenantMembership

M = TypeVar("M", bound=Model)


def tenant_ids_for(user: Any) -> list[int] | None:
    """The ids of the tenants ``user`` may see; None for every tenant (a superuser)."""
    if getattr(user, "is_superuser", False):
        return None
    if not getattr(user, "is_authenticated", False):
        return []
    return list(TenantMembership.objects.filter(user_id=user.pk).values_list("tenant_id", flat=True))


def scope_to_user(queryset: QuerySet[M], user: Any, tenant_field: str = "tenant") -> QuerySet[M]:
    """``queryset`` cut to the rows of the tenants ``user`` may see."""
    ids = tenant_ids_for(user)
    if ids is None:
        return queryset
    return queryset.filter(**{f"{tenant_field}__in": ids})


class TenantScopedAdminMixin:
    """A ModelAdmin whose lists, pages, CSV and actions hold only the user's tenants' rows.

    Another tenant's id answers 404, as an id that does not exist would (the admin's own
    answer, a redirect to the index with "doesn't exist", would say no more but tests less
    plainly)."""

    tenant_field = "tenant"

    def get_queryset(self, request: Any) -> Any:
        return scope_to_user(super().get_queryset(request), request.user, self.tenant_field)  # type: ignore[misc]

    def get_object(self, request: Any, object_id: str, from_field: str | None = None) -> Any:
        obj = super().get_object(request, object_id, from_field)  # type: ignore[misc]
        if obj is None:
            raise Http404("No such row.")
        return obj
