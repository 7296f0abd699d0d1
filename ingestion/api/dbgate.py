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

A slow dependency closes the gate too. When PostgreSQL or Redis answers slowly (the chaos
scenario slow_dependency: 200 ms a packet), each POST still succeeds but takes seconds, and
a sync worker's listen backlog grows faster than it is served: what a client waits is then
the queue, bounded only by its own timeout. So a POST whose own work took longer than
``SLOW_POST_SECONDS`` (``NEXUS_SHED_SLOW_POST_SECONDS``), twice in a row, closes the gate for
``AWAY_SECONDS`` as well: the queue behind it is answered 503 with Retry-After in milliseconds,
and a client waits about two slow POSTs before its answer instead of the whole backlog. Twice,
because one slow POST alone is a cold start, a GC pause or a busy host, not a slow dependency;
a slow dependency makes every POST slow.
"""

from __future__ import annotations

import time

from django.db import DEFAULT_DB_ALIAS, connections

from nexus_project.env import env_float

AWAY_SECONDS = 1.0
# Measured in the slow_dependency scenario (every round trip 0.4 s slower): a healthy POST
# takes 40-60 ms on a loaded test host, one on slow Redis 0.8 s (two Redis round trips in
# job_accept), one on slow PostgreSQL ~2 s. At 1.5 s slow Redis never closed the gate while
# the backlog grew to the client's timeout; 0.5 s is ten healthy POSTs, under one slow one.
SLOW_POST_SECONDS = env_float("NEXUS_SHED_SLOW_POST_SECONDS", 0.5)

SLOW_IN_A_ROW = 2

_away_until = 0.0
_slow_in_a_row = 0


def away() -> bool:
    """True while this process recently failed to connect to PostgreSQL."""
    return time.monotonic() < _away_until


def note_failure() -> None:
    """A request's database error: if it never got a connection, close the gate for a while."""
    global _away_until
    if connections[DEFAULT_DB_ALIAS].connection is None:
        _away_until = time.monotonic() + AWAY_SECONDS


def note_duration(seconds: float) -> None:
    """A POST's own time: ``SLOW_IN_A_ROW`` of them past ``SLOW_POST_SECONDS`` say its
    dependencies are slow; shed a while."""
    global _away_until, _slow_in_a_row
    if seconds <= SLOW_POST_SECONDS:
        _slow_in_a_row = 0
        return
    _slow_in_a_row += 1
    if _slow_in_a_row >= SLOW_IN_A_ROW:
        _slow_in_a_row = 0
        _away_until = time.monotonic() + AWAY_SECONDS


def reopen() -> None:
    """Forget the failure (tests)."""
    global _away_until, _slow_in_a_row
    _away_until = 0.0
    _slow_in_a_row = 0
