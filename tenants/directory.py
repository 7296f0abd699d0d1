"""Who is who, read on every producer request: tenants by slug, id and domain, and keys by
hash, from a small per-process cache.

The tenants are a handful of rows; each process reads them all in one query at most every
``NEXUS_TENANT_CACHE_SECONDS``, so a tenant (or domain) added in the admin is seen by every
process within that time, without a restart, and a POST pays no query for them. A key costs
one indexed query on its first use, then is remembered for the same time: that is also how
long a revoked key may still work in another process.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

from django.conf import settings

from .models import Tenant, TenantKey


@dataclass(frozen=True)
class TenantRef:
    id: int
    slug: str
    active: bool


@dataclass(frozen=True)
class KeyRef:
    id: int
    tenant_id: int


@dataclass(frozen=True)
class _Snapshot:
    by_slug: dict[str, TenantRef]
    by_id: dict[int, TenantRef]
    by_domain: dict[str, TenantRef]
    loaded_at: float


_snapshot: _Snapshot | None = None
_keys: dict[str, tuple[KeyRef, float]] = {}
_lock = threading.Lock()


def _ttl() -> float:
    return float(settings.NEXUS_TENANT_CACHE_SECONDS)


def forget() -> None:
    """Drop what this process remembers (after a write here; tests between cases)."""
    global _snapshot
    with _lock:
        _snapshot = None
        _keys.clear()


def _load() -> _Snapshot:
    global _snapshot
    snapshot = _snapshot
    if snapshot is not None and time.monotonic() - snapshot.loaded_at < _ttl():
        return snapshot
    rows = list(Tenant.objects.values_list("id", "slug", "active", "domains"))
    if settings.NEXUS_DEFAULT_TENANT not in {slug for _, slug, _, _ in rows}:
        # It always exists (migrate makes it); a flushed table must not break every request.
        default, _ = Tenant.objects.get_or_create(slug=settings.NEXUS_DEFAULT_TENANT)
        rows.append((default.id, default.slug, default.active, default.domains))
    refs = {tenant_id: TenantRef(tenant_id, slug, active) for tenant_id, slug, active, _ in rows}
    snapshot = _Snapshot(
        by_slug={ref.slug: ref for ref in refs.values()},
        by_id=refs,
        by_domain={domain: refs[tenant_id] for tenant_id, _, _, domains in rows for domain in domains or []},
        loaded_at=time.monotonic(),
    )
    _snapshot = snapshot
    return snapshot


def default_tenant() -> TenantRef:
    return _load().by_slug[settings.NEXUS_DEFAULT_TENANT]


def by_slug(slug: str) -> TenantRef | None:
    return _load().by_slug.get(slug)


def by_id(tenant_id: int) -> TenantRef | None:
    ref = _load().by_id.get(tenant_id)
    if ref is None:  # created since the snapshot (another process): read again once
        forget()
        ref = _load().by_id.get(tenant_id)
    return ref


def by_domain(host: str) -> TenantRef | None:
    return _load().by_domain.get(host.lower())


def slugs() -> list[str]:
    return sorted(_load().by_slug)


def key_hash(key: str) -> str:
    # SHA-256, not a slow password hash: a key is 256 random bits, so its hash cannot be
    # brute-forced whatever its speed, and a fast unsalted hash is what lets one indexed
    # lookup find the key (a salted slow hash would cost ~100 ms of CPU per request).
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def key_lookup(key: str) -> KeyRef | None:
    """The live key this secret is, or None (unknown or revoked): one indexed query, then
    remembered for a few seconds. Unknown keys are not remembered, so a new key works at once."""
    digest = key_hash(key)
    now = time.monotonic()
    cached = _keys.get(digest)
    if cached is not None and now - cached[1] < _ttl():
        return cached[0]
    row = (
        TenantKey.objects.filter(key_hash=digest, revoked_at__isnull=True)
        .values_list("id", "tenant_id")
        .first()
    )
    if row is None:
        _keys.pop(digest, None)
        return None
    ref = KeyRef(*row)
    with _lock:
        if len(_keys) > 10_000:  # bounded: only live keys get here, and there are few
            _keys.clear()
        _keys[digest] = (ref, now)
    return ref


def default_tenant_id() -> int:
    """The default tenant's id: the ``default`` of every tenant foreign key, so a row made
    without naming its tenant (a test, a shell) is the default tenant's, like a request
    without an origin."""
    return default_tenant().id
