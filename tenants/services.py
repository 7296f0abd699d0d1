"""Tenant writes: the bootstrap from ``NEXUS_TENANTS`` at migrate, and keys made and revoked."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from . import directory
from .models import Tenant, TenantKey

logger = logging.getLogger(__name__)

KEY_PREFIX = "nxk_"


def tenants_bootstrap(
    *, configured: dict[str, list[str]] | None = None, default_slug: str | None = None
) -> None:
    """Create or update the tenants ``NEXUS_TENANTS`` lists, and the default tenant; never
    delete one. Listed tenants get exactly the listed domains; name and active stay the
    admin's. A domain another tenant already holds stops migrate, naming both."""
    configured = settings.NEXUS_TENANTS if configured is None else configured
    default_slug = default_slug or settings.NEXUS_DEFAULT_TENANT
    with transaction.atomic():
        for slug, domains in configured.items():
            clash = next(
                (
                    (domain, other)
                    for other, held in Tenant.objects.exclude(slug=slug).values_list("slug", "domains")
                    for domain in held
                    if domain in domains
                ),
                None,
            )
            if clash:
                raise ImproperlyConfigured(
                    f"NEXUS_TENANTS: domain {clash[0]!r} of tenant {slug!r} already belongs to tenant "
                    f"{clash[1]!r} (remove it there in the admin, or from NEXUS_TENANTS)"
                )
            tenant, created = Tenant.objects.get_or_create(
                slug=slug, defaults={"name": slug, "domains": domains}
            )
            if not created and sorted(tenant.domains) != sorted(domains):
                tenant.domains = domains
                tenant.save(update_fields=["domains", "updated_at"])
        Tenant.objects.get_or_create(slug=default_slug, defaults={"name": default_slug})
    directory.forget()


def bootstrap_on_migrate(**kwargs: Any) -> None:
    tenants_bootstrap()


@dataclass(frozen=True)
class NewKey:
    id: int
    tenant: str
    key: str


def tenant_key_create(*, slug: str, label: str = "") -> NewKey:
    """A new key for the tenant: the secret is returned here and never again."""
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise Tenant.DoesNotExist(f"no tenant {slug!r}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)  # 256 random bits
    row = TenantKey.objects.create(
        tenant=tenant, label=label, prefix=key[:12], key_hash=directory.key_hash(key)
    )
    logger.info("tenant key created", extra={"tenant": slug, "key_id": row.id})
    return NewKey(row.id, slug, key)


def tenant_key_revoke(*, key_id: int) -> bool:
    """Revoke a key; False when there is no such live key. Other processes stop accepting it
    within ``NEXUS_TENANT_CACHE_SECONDS``; this one at once."""
    revoked = TenantKey.objects.filter(id=key_id, revoked_at__isnull=True).update(revoked_at=timezone.now())
    directory.forget()
    if revoked:
        logger.info("tenant key revoked", extra={"key_id": key_id})
    return bool(revoked)
