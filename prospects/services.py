"""Prospect merge and stage rules.

A Prospect is a pure function of the latest successful extraction of each of its sessions,
folded in the order of each session's last POST (SPEC §10). Recomputing the fold on every
merge makes the result independent of the order in which workers finish, so replays and
redeliveries converge on the same Prospect.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from .events import fold_events
from .models import Prospect
from .vocabulary import SCALAR_FIELDS, Momento, Stage, empty_data


@dataclass(frozen=True)
class SessionData:
    """What the fold reads of one of the visitor's sessions: its latest successful
    extraction (None before the first), when it started and when its latest revision came,
    and what it said about where the visitor came from."""

    extracted: dict[str, Any] | None
    created_at: datetime
    revised_at: datetime
    channel: str = "web"
    constructor_id: str | None = None
    constructor_at: datetime | None = None  # when the session first named its referrer
    page_context: str = ""
    is_returning: bool | None = None
    consent_given: bool | None = None
    consent_at: datetime | None = None


def prospect_key(*, fingerprint: str, session_id: str = "") -> str:
    """The visitor's identity within a tenant (a Prospect is unique per (tenant, key)): their
    fingerprint, or for a session without one the session."""
    return f"fp:{fingerprint}" if fingerprint else f"sid:{session_id}"


def merge_data(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """One step of the fold: null or empty never overwrites, a new non-null scalar replaces,
    objeciones is a union, nivel_interes and momento_optimo follow the latest extraction."""
    merged = dict(old)
    for field in SCALAR_FIELDS:
        value = new.get(field)
        if value not in (None, ""):
            merged[field] = value
    merged["objeciones"] = list(dict.fromkeys([*old.get("objeciones", []), *new.get("objeciones", [])]))
    if new.get("nivel_interes") is not None:
        merged["nivel_interes"] = new["nivel_interes"]
        merged["momento_optimo"] = Momento.for_nivel(new["nivel_interes"])
    return merged


def stage_for(data: dict[str, Any]) -> Stage:
    """The stage the data alone qualifies for."""
    nivel = data.get("nivel_interes") or 0
    if data.get("telefono") and nivel >= 7:
        return Stage.ACTIVAR
    if data.get("nombre") and data.get("arquetipo") and nivel >= 4:
        return Stage.ACOGER
    return Stage.INICIAR


def fold(extractions: Iterable[dict[str, Any]]) -> tuple[dict[str, Any], Stage]:
    """Fold session results (already in POST order) into the prospect's data and the furthest
    stage reached along the way; a stage never moves back."""
    data = empty_data()
    stage = Stage.INICIAR
    for result in extractions:
        data = merge_data(data, result)
        stage = Stage.furthest(stage, stage_for(data))
    return data, stage


def attribution_fold(sessions: Sequence[SessionData]) -> dict[str, Any]:
    """The prospect's attribution from its sessions (in order of their latest revision): the
    earliest-named referrer keeps the credit, the latest page context, every channel seen,
    returning if any session said so, and the latest consent (its time the start of the run
    of consent it belongs to)."""
    referred = [s for s in sessions if s.constructor_id is not None]
    first = min(referred, key=lambda s: s.constructor_at or s.created_at, default=None)
    page_context = next((s.page_context for s in reversed(sessions) if s.page_context), "")
    returning = [s.is_returning for s in sessions if s.is_returning is not None]
    consent: bool | None = None
    consent_at: datetime | None = None
    for s in sessions:
        if s.consent_given is None:
            continue
        if not s.consent_given:
            consent, consent_at = False, None
        elif consent is not True:
            consent, consent_at = True, s.consent_at
    return {
        "constructor_id": first.constructor_id if first is not None else None,
        "page_context": page_context,
        "channels": ",".join(sorted({s.channel for s in sessions})),
        "is_returning": any(returning) if returning else None,
        "consent_given": consent,
        "consent_at": consent_at,
    }


def prospect_lock(*, tenant_id: int, key: str, fingerprint: str, seen_at: datetime) -> int:
    """The id of the tenant's visitor's Prospect, created on first sight, locked for this
    transaction.

    One statement: INSERT … ON CONFLICT (tenant_id, key) DO UPDATE SET key = EXCLUDED.key RETURNING id.
    The no-op update locks an existing row as SELECT … FOR UPDATE would, and a concurrent
    first sight waits on the unique key instead of failing, so no savepoint is needed."""
    (prospect,) = Prospect.objects.bulk_create(
        [
            Prospect(
                tenant_id=tenant_id,
                key=key,
                fingerprint=fingerprint,
                first_seen_at=seen_at,
                last_seen_at=seen_at,
            )
        ],
        update_conflicts=True,
        unique_fields=["tenant", "key"],
        update_fields=["key"],
    )
    return int(prospect.pk)


def prospect_refold(*, prospect_id: int, sessions: Sequence[SessionData]) -> dict[str, Any]:
    """Recompute the prospect from its sessions (in order of their latest revision); call
    under its lock. Returns the folded data."""
    data, stage = fold(s.extracted for s in sessions if s.extracted is not None)
    # The furthest stage along the fold (SPEC §10), not the furthest ever stored: the prospect
    # stays a pure function of its sessions, so a replay converges on the same stage.
    derived: dict[str, Any] = {
        **data,
        **attribution_fold(sessions),
        "stage": stage,
        "session_count": len(sessions),
    }
    if sessions:
        derived["first_seen_at"] = min(s.created_at for s in sessions)
        derived["last_seen_at"] = max(s.revised_at for s in sessions)
    # Before and after in the same transaction (the caller holds the prospect's lock): the
    # events of the change are written with it, and an unchanged fold writes none.
    before = Prospect.objects.filter(pk=prospect_id).values("tenant_id", *derived).get()
    tenant_id = before.pop("tenant_id")
    if before != derived:
        # Only what the fold decides; tenant, key, fingerprint and created_at stay as they are.
        Prospect.objects.filter(pk=prospect_id).update(**derived, updated_at=timezone.now())
        fold_events(prospect_id=prospect_id, tenant_id=tenant_id, before=before, after=derived)
    return data
