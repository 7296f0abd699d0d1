"""Small ORM helpers every app shares."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from django.db import connection, models

M = TypeVar("M", bound=models.Model)


def model_update(instance: M, **changes: Any) -> M:
    """Set these fields and save exactly those (plus any ``auto_now`` field), in one UPDATE.

    A hand-kept ``update_fields`` list beside each block of assignments drifts: a field set
    but not listed is silently not saved. Here the names are the assignments. (HackSoft's
    Django-Styleguide ``model_update``, without its full_clean: the callers are services
    whose values are already valid.)
    """
    fields = list(changes)
    for name, value in changes.items():
        setattr(instance, name, value)
    for field in instance._meta.concrete_fields:
        if getattr(field, "auto_now", False) and field.name not in changes:
            fields.append(field.name)
    instance.save(update_fields=fields)
    return instance


def db_now() -> datetime:
    """The database's clock (``statement_timestamp()``), the one clock every comparison that
    decides ownership or due-ness uses: a worker or web host whose own clock is minutes off
    must not steal a lease, hold one, or delay a due job (ARCHITECTURE.md, "Time")."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        (now,) = cursor.fetchone()
    return now  # type: ignore[no-any-return]
