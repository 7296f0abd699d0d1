"""Circuit breaker for account-wide extractor failures (bad key, spend limit).

When Claude says the key is wrong or the money is gone, every call will fail until a person
acts: failing each job into the dead-letter queue would bury good work. Instead the breaker
opens, jobs stay pending, and after a backoff one worker probes with a real job; its success
closes the breaker, its failure opens it again for longer. State lives in the shared cache
(Redis) so every worker and the health view see it, and its deadline is on the Redis
server's clock, so a worker whose own clock is off neither ends a pause early nor stretches
it. If the cache is unreachable the breaker counts as closed: extraction then meets the real
error and records it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_STATE_KEY = "breaker:state"
_PROBE_KEY = "breaker:probe"
# Set by the first trip of an outage: two workers failing at once both read "closed" and both
# count trip 1, so the one-alert rule is decided by an atomic add, not by the count.
_ALERTED_KEY = "breaker:alerted"
_CACHE_ERRORS = (RedisError, OSError)


def state() -> dict[str, Any] | None:
    """The open breaker's state ({category, trips, until}), or None when closed."""
    try:
        return cache.get(_STATE_KEY)  # type: ignore[no-any-return]
    except _CACHE_ERRORS:
        return None


def pause_remaining() -> float | None:
    """Seconds until extraction may resume, or None to go ahead (closed, or our probe)."""
    current = state()
    if current is None:
        return None
    try:
        remaining = current["until"] - _now()
    except _CACHE_ERRORS:
        return None
    if remaining > 0:
        return remaining
    # Half-open: exactly one worker probes; the rest wait a little longer.
    try:
        if cache.add(_PROBE_KEY, 1, timeout=settings.NEXUS["LEASE_SECONDS"]):
            logger.info("circuit breaker half-open: probing", extra={"category": current["category"]})
            return None
    except _CACHE_ERRORS:
        return None
    return min(settings.NEXUS["BREAKER_BASE_SECONDS"], 30.0)


def release_probe() -> None:
    """Give the probe slot back when the probing worker had no job to run after all."""
    try:
        if cache.get(_STATE_KEY) is not None:
            cache.delete(_PROBE_KEY)
    except _CACHE_ERRORS:
        pass


def trip(*, category: str) -> float:
    """Open (or re-open, for longer) the breaker; returns the pause in seconds."""
    current = state() or {"trips": 0}
    trips = current["trips"] + 1
    base = settings.NEXUS["BREAKER_BASE_SECONDS"]
    pause = min(settings.NEXUS["BREAKER_CAP_SECONDS"], base * 2 ** (trips - 1))
    try:
        now = _now()
        new_state = {"category": category, "trips": trips, "until": now + pause, "since": now}
        cache.set(_STATE_KEY, new_state, timeout=None)
        cache.delete(_PROBE_KEY)
    except _CACHE_ERRORS:
        logger.error("circuit breaker state could not be stored", extra={"category": category})
    if _first_alert():
        # One alert per outage, not one per job.
        logger.warning(
            "ALERT circuit breaker opened: extraction paused",
            extra={"alert": "extractor_account", "category": category, "pause_s": pause},
        )
    return pause


def _now() -> float:
    """The shared cache's clock when it has one (Redis ``TIME``), else this host's."""
    server_time = getattr(cache, "server_time", None)
    return float(server_time()) if server_time is not None else time.time()


def _first_alert() -> bool:
    try:
        return bool(cache.add(_ALERTED_KEY, 1, timeout=None))
    except _CACHE_ERRORS:
        return True  # without the shared memory, a repeated alert beats a missing one


def record_success() -> None:
    """A call went through: close the breaker if it was open."""
    try:
        if cache.get(_STATE_KEY) is not None:
            cache.delete_many([_STATE_KEY, _PROBE_KEY, _ALERTED_KEY])
            logger.warning("circuit breaker closed: extraction resumed", extra={"alert": "cleared"})
    except _CACHE_ERRORS:
        pass  # nothing to close that anyone could read
