"""Prospect events (issue 14): what a fold changed, written in the fold's own transaction.

`fold_events` compares the prospect before and after the fold and writes nothing when they
are equal, so a replay, a redelivery or a reprocess that folds to the same Prospect emits no
event. Called under the prospect's lock (prospect_lock), so `sequence` is taken without race.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from .models import Event, EventType, WebhookEndpoint
from .vocabulary import Momento

# Hooks run on commit with the ids of the events written (the delivery dispatch registers
# one; prospects imports nothing from ingestion, so the dependency points inwards).
_on_commit_hooks: list[Callable[[list[int]], None]] = []


def register_on_commit(hook: Callable[[list[int]], None]) -> None:
    if hook not in _on_commit_hooks:
        _on_commit_hooks.append(hook)


def fold_events(
    *, prospect_id: int, tenant_id: int, before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[Event]:
    """Write the events that the change from `before` to `after` (the folded fields) makes."""
    changes = {
        field: {"old": before.get(field), "new": new}
        for field, new in after.items()
        if before.get(field) != new
    }
    if not changes:
        return []
    types: list[str] = []
    if not before.get("session_count"):
        types.append(EventType.CREATED)
    else:
        types.append(EventType.UPDATED)
        if "stage" in changes:
            types.append(EventType.STAGE_CHANGED)
    if "momento_optimo" in changes and after.get("momento_optimo") == Momento.CALIENTE:
        types.append(EventType.HOT)
    last = Event.objects.filter(prospect_id=prospect_id).aggregate(m=Max("sequence"))["m"] or 0
    wanted = wanted_types(tenant_id)
    now = timezone.now()
    events = Event.objects.bulk_create(
        Event(
            tenant_id=tenant_id,
            prospect_id=prospect_id,
            sequence=last + i,
            type=kind,
            payload={"changes": changes},
            # Nobody to serve: settled as written, as the delivery task would settle it.
            delivered_at=None if kind in wanted else now,
        )
        for i, kind in enumerate(types, start=1)
    )
    ids = [e.pk for e in events if e.delivered_at is None]
    if ids:
        for hook in list(_on_commit_hooks):
            transaction.on_commit(lambda hook=hook: hook(ids))  # type: ignore[misc]
    return events


def wanted_types(tenant_id: int) -> set[str]:
    """The event types someone will be served for this tenant: an active endpoint's (the
    tenant's own or an all-tenants one), and prospect.hot when the hot-lead mail is on.

    An event of another type is the history's only (the admin, ``export_person``): it is
    written already settled and costs no delivery task. Without this, every changed prospect
    cost a published task and a worker run of five queries that found no endpoint (~3 ms of
    worker CPU, measured: more than half a job's own; bench figure 3, issue 18). One query of a
    table of a few rows, in the fold's transaction: an endpoint added later serves events from then on, as it
    already did (the delivery task read the endpoints a few milliseconds after the commit)."""
    subscribed = WebhookEndpoint.objects.filter(active=True).filter(
        Q(tenant__isnull=True) | Q(tenant_id=tenant_id)
    )
    wanted = {kind for kinds in subscribed.values_list("events", flat=True) for kind in kinds or []}
    if settings.NEXUS["HOT_LEAD_EMAILS"]:
        wanted.add(EventType.HOT)
    return wanted
