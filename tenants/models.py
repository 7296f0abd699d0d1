"""Tenants: the sites (and server-side channels) this one service takes traffic for, and the
keys their servers identify themselves with.

Every job and prospect belongs to one tenant. A browser request finds its tenant by the host
of its Origin among the tenants' domains; a server request by its key (``TenantKey``).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from nexus_project.env import TENANT_DOMAIN, TENANT_SLUG


def validate_slug(value: str) -> None:
    if not TENANT_SLUG.fullmatch(value):
        raise ValidationError(
            "Lower-case letters, digits, _ and -, up to 64, starting with a letter or digit."
        )


def validate_domains(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
        raise ValidationError("A list of host names.")
    for domain in value:
        if not TENANT_DOMAIN.fullmatch(domain):
            raise ValidationError(f"{domain!r} is not a host name (no scheme, port or path; lower case).")


class Tenant(models.Model):
    slug = models.CharField(max_length=64, unique=True, validators=[validate_slug])
    name = models.CharField(max_length=200, blank=True, default="")
    # Host names (no scheme, no port) whose pages may POST for this tenant: an Origin's host
    # among them gives the request this tenant and passes CORS. Empty for a server-only
    # channel (WhatsApp), reached with a key or X-Tenant-Id.
    domains = models.JSONField(default=list, blank=True, validators=[validate_domains])
    # An inactive tenant's requests are refused (403 tenant_inactive) and nothing is recorded;
    # its jobs and prospects stay.
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        self.domains = sorted({d.strip().lower() for d in self.domains or [] if d.strip()})
        validate_domains(self.domains)
        taken = {
            domain: slug
            for slug, domains in Tenant.objects.exclude(pk=self.pk).values_list("slug", "domains")
            for domain in domains
        }
        clashes = [f"{d} (in {taken[d]})" for d in self.domains if d in taken]
        if clashes:
            raise ValidationError({"domains": f"Already another tenant's: {', '.join(clashes)}."})


class TenantKey(models.Model):
    """A server-to-server producer's key. Only its SHA-256 is stored; the key itself is shown
    once, when ``manage.py tenant_key create`` makes it."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="keys")
    label = models.CharField(max_length=200, blank=True, default="")
    # The key's first characters, to tell keys apart in lists (not enough to use one).
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)  # the per-request lookup's index
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["tenant__slug", "-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.tenant_id})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class TenantMembership(models.Model):
    """A staff user's tenant: the admin shows a user only their tenants' prospects, jobs and
    extractions (``tenants.access``); a superuser sees every tenant's."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tenant_memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant__slug", "user__username"]
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="tenant_membership_unique")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.tenant_id}"
