"""Which tenant a producer request is for, and whether it may post there.

In this order:
1. ``Authorization: Bearer <key>`` (a server-side producer): the key's tenant. The Origin is
   not consulted (a server sends none, and a key is not something a page can be made to send);
   an ``X-Tenant-Id`` naming another tenant is refused. A wrong or revoked key is 401.
2. ``Origin`` (browsers send it on every POST): its host among the tenants' domains (https;
   http too for localhost outside production) gives the tenant. An origin allowed only by
   ``CORS_ALLOWED_ORIGINS``, or the service's own (the API docs page), is the default tenant.
   Any other origin is refused (403 ``origin_not_allowed``): CORS would hide our answer from
   that page anyway, but a simple (no-preflight) POST such as sendBeacon's would otherwise land
   a foreign site's traffic in the default tenant.
3. No Origin: a server-side caller. Its ``Referer`` host, when it is a tenant domain, gives the
   tenant; else ``X-Tenant-Id`` names it (the WhatsApp webhook: ``x-tenant-id: whatsapp``);
   else the default tenant. A Referer is only a hint here (servers forward the visitor's page),
   so an unknown one is not refused.

``X-Tenant-Id`` never moves a request to another tenant than the one its key or origin gives:
403 ``tenant_mismatch``. Naming no tenant we have is 400 ``unknown_tenant``: a mistake in the
request (a typo in a server's configuration), like a bad field, not a refusal of an existing
tenant. An inactive tenant's requests are 403 ``tenant_inactive`` and nothing is recorded.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from nexus_project.env import TENANT_SLUG
from tenants import directory
from tenants.directory import KeyRef, TenantRef

from ..logcontext import tenant_var

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
# A key is ``nxk_`` and 43 characters; anything much longer is not one of ours.
_KEY_LIMIT = 200


class InvalidKey(exceptions.AuthenticationFailed):
    default_code = "invalid_key"
    default_detail = "Unknown or revoked key."
    field = "Authorization"


class TenantMismatch(exceptions.APIException):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "tenant_mismatch"
    default_detail = "X-Tenant-Id names another tenant than this request's key or origin belongs to."
    field = "X-Tenant-Id"


class TenantInactive(exceptions.APIException):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "tenant_inactive"
    default_detail = "This tenant is not taking conversations; nothing was recorded."


class OriginNotAllowed(exceptions.APIException):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "origin_not_allowed"
    default_detail = "This origin is not one of a tenant's domains nor in CORS_ALLOWED_ORIGINS."
    field = "Origin"


class UnknownTenant(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "unknown_tenant"
    default_detail = "X-Tenant-Id names no tenant of this service."
    field = "X-Tenant-Id"


class TenantKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer <key>`` → ``request.auth`` is the key (``KeyRef``); no header,
    no authentication (a browser request). One indexed query, or none when cached."""

    def authenticate(self, request: Request) -> tuple[None, KeyRef] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, key = header.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key or len(key) > _KEY_LIMIT:
            raise InvalidKey("Authorization must be 'Bearer <key>'.")
        ref = directory.key_lookup(key)
        if ref is None:
            raise InvalidKey()
        return None, ref

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="nexus"'


def origin_tenant(origin: str) -> TenantRef | None:
    """The tenant whose domain this origin (or URL) is on: https, or http for localhost
    outside production; any port. None for anything else."""
    try:
        url = urlsplit(origin)
        host = (url.hostname or "").lower()
    except ValueError:
        return None
    if url.scheme != "https" and not (
        url.scheme == "http" and host in _LOCAL_HOSTS and not settings.PRODUCTION
    ):
        return None
    return directory.by_domain(host) if host else None


def _cors_allowed(origin: str) -> bool:
    return origin in {o.rstrip("/") for o in settings.CORS_ALLOWED_ORIGINS}


def _same_origin(request: Request, origin: str) -> bool:
    try:
        return urlsplit(origin).netloc.lower() == request.get_host().lower()
    except ValueError:
        return False


def _named(request: Request) -> TenantRef | None:
    """The tenant ``X-Tenant-Id`` names; None when absent; 400 when it names none of ours."""
    raw = request.META.get("HTTP_X_TENANT_ID", "").strip().lower()
    if not raw:
        return None
    tenant = directory.by_slug(raw) if TENANT_SLUG.fullmatch(raw) else None
    if tenant is None:
        raise UnknownTenant()
    return tenant


def _agree(tenant: TenantRef, request: Request) -> TenantRef:
    raw = request.META.get("HTTP_X_TENANT_ID", "").strip().lower()
    if raw and raw != tenant.slug:
        raise TenantMismatch()
    return tenant


def _settle(request: Request) -> TenantRef:
    if isinstance(request.auth, KeyRef):
        tenant = directory.by_id(request.auth.tenant_id)
        if tenant is None:  # the key's tenant row is gone (the key is cascaded with it)
            raise InvalidKey()
        return _agree(tenant, request)
    origin = request.META.get("HTTP_ORIGIN", "").strip()
    if origin and not _same_origin(request, origin):
        tenant = origin_tenant(origin)
        if tenant is not None:
            return _agree(tenant, request)
        if _cors_allowed(origin):
            return _agree(directory.default_tenant(), request)
        raise OriginNotAllowed()
    referer = request.META.get("HTTP_REFERER", "").strip()
    tenant = origin_tenant(referer) if referer and not origin else None
    if tenant is not None:
        return _agree(tenant, request)
    return _named(request) or directory.default_tenant()


def resolve(request: Request) -> TenantRef:
    """The request's tenant, or the APIException that refuses it (see the module docstring)."""
    tenant = _settle(request)
    tenant_var.set(tenant.slug)  # log lines and the intake counters carry it from here
    if not tenant.active:
        raise TenantInactive()
    return tenant
