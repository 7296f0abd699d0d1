"""Writing and purging the access log (``AccessLogEntry``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from .models import AccessLogEntry

# Arguments and filters that name a person: logged as a hash, never as given.
PERSONAL_KEYS = frozenset({"fingerprint", "email", "phone", "telefono", "q", "nombre"})
MAX_IDS = 1000  # a select-all over a big list records its count, not every id


def fingerprint_of(value: str) -> str:
    """A stable, non-reversible stand-in for a personal value (sha256, first 16 hex)."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]


def scrub(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with every personal one as its hash; empty ones dropped."""
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if value in (None, "", [], False):
            continue
        name = key.split("__", 1)[0]
        if name in PERSONAL_KEYS or any(part in PERSONAL_KEYS for part in key.split("__")):
            clean[key] = fingerprint_of(str(value))
        else:
            clean[key] = value if isinstance(value, bool | int | float) else str(value)
    return clean


def access_record(
    *,
    action: str,
    user: Any = None,
    target: str = "",
    object_ids: Iterable[Any] = (),
    filters: Mapping[str, Any] | None = None,
    row_count: int | None = None,
) -> AccessLogEntry:
    ids = [str(i) for i in object_ids][:MAX_IDS]
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    return AccessLogEntry.objects.create(
        actor=user.get_username() if authenticated else "",
        user_id=user.pk if authenticated else None,
        action=action,
        target=target,
        object_ids=ids,
        filters=scrub(filters or {}),
        row_count=row_count,
    )


def access_log_purge() -> int:
    """Delete the entries older than NEXUS_ACCESS_LOG_RETENTION_DAYS (the daily cleanup)."""
    days = settings.NEXUS["ACCESS_LOG_RETENTION_DAYS"]
    deleted, _ = AccessLogEntry.objects.filter(at__lt=timezone.now() - timedelta(days=days)).delete()
    return deleted
