"""Small ORM helpers every app shares."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import psycopg
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


def fetchone_prepared(sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """One row of a hot statement, bound server-side on PostgreSQL.

    Django's cursors bind client-side: the values are quoted into the SQL text, so PostgreSQL
    parses and plans every execution anew. Here the values travel as parameters and, after a
    few runs, psycopg prepares the statement (``prepare_threshold``), so PostgreSQL skips the
    parse and the plan: for the producer's continuation lookup that was ~0.5-0.9 ms of the
    database's CPU per POST, more than the rest of its ledger work (bench figure 1). The
    psycopg cursor is wrapped in Django's, so errors surface as Django's and the statement is
    seen by execute wrappers and query logging like any other. Other backends take Django's
    cursor as it is."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()  # type: ignore[no-any-return]
    connection.ensure_connection()
    raw = psycopg.Cursor(connection.connection)
    wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
    with wrap(raw) as cursor:  # type: ignore[arg-type]  # any DB-API cursor will do
        cursor.execute(sql, params)
        return cursor.fetchone()  # type: ignore[no-any-return]
