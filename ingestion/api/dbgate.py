"""Shed POSTs while this process cannot reach PostgreSQL.

With PostgreSQL unreachable (down, or a partition dropping its packets) a request waits for
the pool (DB_POOL_TIMEOUT) and the connection attempts (DB_CONNECT_TIMEOUT_SECONDS) before
its 503. Under load a sync gunicorn worker serving one request at a time then answers one
POST every few seconds while hundreds queue behind it and time out at the client as broken
connections, never seeing their 503. So once a request of this process failed to get a
connection at all, the next ``AWAY_SECONDS`` of requests answer 503 with Retry-After at once
without trying; the first request after that tries again (the probe), and either reopens the
way or closes it for another ``AWAY_SECONDS``. Per process, no shared state: each gunicorn
worker finds out for itself. The chaos scenario partition_web_postgres measures it.
"""

from __future__ import annotations

import time

from django.db import DEFAULT_DB_ALIAS, connections

AWAY_SECONDS = 1.0

_away_until = 0.0


def away() -> bool:
    """True while this process recently failed to connect to PostgreSQL."""
    return time.monotonic() < _away_until


def note_failure() -> None:
    """A request's database error: if it never got a connection, close the gate for a while."""
    global _away_until
    if connections[DEFAULT_DB_ALIAS].connection is None:
        _away_until = time.monotonic() + AWAY_SECONDS


def reopen() -> None:
    """Forget the failure (tests)."""
    global _away_until
    _away_until = 0.0
