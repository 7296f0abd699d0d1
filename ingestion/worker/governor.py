"""The rate governor: one limit on Claude traffic for every worker process and host.

An Anthropic account has per-minute limits on requests, input tokens and output tokens
(``NEXUS_CLAUDE_RPM`` / ``_ITPM`` / ``_OTPM``; 0 = no limit). Celery's ``rate_limit`` is per
worker, so the limit is kept in Redis, as one token bucket per dimension, and every decision is
one round trip (a Lua script, EVALSHA):

- ``acquire`` reserves a call's estimated cost (``Estimate``: 1 request, the prompt's tokens,
  ``max_tokens``) before the call. Granted, or refused with the seconds until capacity frees:
  the pipeline then leaves the job pending with that countdown (never a sleeping thread, never
  a failed attempt). Refused callers are spread out (each queues behind the ones already
  refused in its lane), so a backlog returns at the rate capacity frees, not all at once.
- ``settle`` corrects the reservation with the usage the response reported, and adapts to the
  account's real limits: ``anthropic-ratelimit-*-remaining`` lowers what is left, a reported
  ``-limit`` below ours (or any, when ours is 0) is used until its ``-reset``, and a 429's
  ``retry-after`` pauses every worker until then.
- Lanes: live work (a POST's revision) and bulk work (reprocess, admin re-queue). While live
  work is waiting, bulk may use at most ``NEXUS_BULK_SHARE`` of the capacity (a second bucket
  at that share of the rate); when none is, all of the refill rate. Bulk never takes the live
  reserve, the part of the burst above its share, so a visitor's call finds capacity at once
  even while a backlog runs.
- The buckets hold ``NEXUS_GOVERNOR_BURST_SECONDS`` of capacity, far less than the API's own
  minute, so a burst that our bucket allows the API's allows too.
- Redis unreachable: each process falls back to its share of the limit
  (limit / ``NEXUS_GOVERNOR_PROCESSES``) in memory, logs it once per outage and counts it
  (``nexus_governor_fail_open``). Extraction is never stopped by the governor's own failure.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

from ..extraction.base import RateLimits
from ..models import Lane
from . import governor_lua

logger = logging.getLogger(__name__)

LIVE, BULK = Lane.LIVE.value, Lane.BULK.value
LANES = (LIVE, BULK)
# (our short name, the API's header name, the setting)
DIMENSIONS = (
    ("r", "requests", "CLAUDE_RPM"),
    ("i", "input-tokens", "CLAUDE_ITPM"),
    ("o", "output-tokens", "CLAUDE_OTPM"),
)
# A refused job never waits longer than this (or the backoff cap, if lower) in one countdown:
# far below the broker's visibility timeout (3600 s), so a countdown task is never delivered twice.
MAX_WAIT_SECONDS = 300.0
# A call whose capacity frees within this is let through at once: the bucket may dip this far
# below zero, which the API's minute-sized bucket absorbs; deferring a job costs two writes.
GRACE_SECONDS = 0.25
# After a Redis error, use the process's share this long before trying Redis again.
_REDIS_RETRY_SECONDS = 5.0
_REDIS_ERRORS = (RedisError, OSError)
_STATE_KEY = "governor:state"
_STATS_KEY = "governor:stats"


@dataclass(frozen=True)
class Estimate:
    """What one call will count against the limits, before it is made."""

    input_tokens: int
    output_tokens: int
    requests: int = 1

    def cost(self, dimension: str) -> int:
        return {"r": self.requests, "i": self.input_tokens, "o": self.output_tokens}[dimension]


@dataclass(frozen=True)
class Decision:
    granted: bool
    wait_seconds: float  # when refused: until capacity should be free for this lane
    estimate: Estimate
    lane: str
    local: bool = False  # decided by the process's share (Redis unreachable)


def limits() -> dict[str, int]:
    """The configured per-minute limits by dimension (0 = no limit)."""
    return {short: int(settings.NEXUS[name]) for short, _, name in DIMENSIONS}


def acquire(*, lane: str, estimate: Estimate) -> Decision:
    """Reserve one call's capacity in ``lane`` (live or bulk), or say how long to wait."""
    configured = limits()
    args: list[Any] = [
        repr(time.time()),
        settings.NEXUS["GOVERNOR_BURST_SECONDS"],
        GRACE_SECONDS,
        settings.NEXUS["BULK_SHARE"],
        lane,
        _max_wait(),
    ]
    for short, _, _ in DIMENSIONS:
        args += [configured[short], estimate.cost(short)]
    client = _client()
    if client is not None:
        try:
            granted, wait = _scripts(client)[0](keys=_keys(), args=args, client=client)
            _recovered()
            return Decision(bool(granted), float(wait), estimate, lane)
        except _REDIS_ERRORS as exc:
            _fail_open(exc)
    return _LOCAL.acquire(lane, estimate, configured)


def settle(
    decision: Decision, *, input_tokens: int, output_tokens: int, calls: int, report: RateLimits | None
) -> bool:
    """Correct a granted reservation with what the call used, and learn from what the API said
    about the account's limits. Returns whether that tightened the governor."""
    configured = limits()
    now = time.time()
    used = {"r": calls, "i": input_tokens, "o": output_tokens}
    reported = report.limits if report is not None else {}
    retry_after = report.retry_after if report is not None and report.retry_after else -1
    if retry_after > 0:  # as the pipeline's backoff: waiting the cap beats hammering the limit
        retry_after = min(retry_after, settings.NEXUS["BACKOFF_CAP_SECONDS"])
    refunds = {
        short: decision.estimate.cost(short) - used[short] if decision.granted else -used[short]
        for short, _, _ in DIMENSIONS
    }
    if _nothing_to_settle(configured, refunds, reported, retry_after):
        return False
    args: list[Any] = [repr(now), retry_after]
    for short, header, _ in DIMENSIONS:
        limit = reported.get(header)
        args += [
            configured[short],
            refunds[short],
            limit.limit if limit and limit.limit is not None else -1,
            limit.remaining if limit and limit.remaining is not None else -1,
            limit.reset_at if limit and limit.reset_at is not None else -1,
        ]
    if decision.local:
        _LOCAL.settle(retry_after)
        return False
    client = _client()
    if client is None:
        return False
    try:
        tightened = bool(_scripts(client)[1](keys=_keys(), args=args, client=client))
    except _REDIS_ERRORS as exc:
        _fail_open(exc)
        return False
    if tightened:
        logger.info(
            "rate governor tightened by the API's rate-limit report", extra={"retry_after": retry_after}
        )
    return tightened


def _nothing_to_settle(
    configured: dict[str, int], refunds: dict[str, int], reported: dict[str, Any], retry_after: float
) -> bool:
    """Whether the settle round trip would change nothing: no correction for a governed
    dimension, no retry-after, and a report that can tighten nothing (the account's limit at
    least ours, more remaining than our bucket can ever hold). The common case with RPM alone
    governed and an account above it: one round trip per call instead of two."""
    if retry_after > 0:
        return False
    burst = settings.NEXUS["GOVERNOR_BURST_SECONDS"]
    for short, header, _ in DIMENSIONS:
        limit = configured[short]
        if limit and refunds[short]:
            return False
        seen = reported.get(header)
        if seen is None:
            continue
        if not limit:
            return False  # the account's limit is to be adopted
        if seen.limit is not None and seen.limit < limit:
            return False
        if seen.remaining is not None and seen.remaining < limit / 60 * burst:
            return False
    return True


def _max_wait() -> float:
    return min(MAX_WAIT_SECONDS, settings.NEXUS["BACKOFF_CAP_SECONDS"])


def status() -> dict[str, Any]:
    """The governor's state for health and /metrics: per dimension its effective limit and the
    capacity left now, whether the API's report tightens it, the deferral and tightening
    totals; ``redis`` "down" when the state cannot be read (the processes run on their share)."""
    configured = limits()
    body: dict[str, Any] = {
        "limits": {header: configured[short] for short, header, _ in DIMENSIONS},
        "bulk_share": settings.NEXUS["BULK_SHARE"],
        "fail_open": _LOCAL.fail_open_total(),
    }
    client = _client()
    try:
        if client is None:
            raise OSError("no governor Redis")
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(_keys()[0])
        pipe.hgetall(_keys()[1])
        state_raw, stats_raw = pipe.execute()
    except _REDIS_ERRORS:
        body["redis"] = "down"
        return body
    state = {k.decode(): float(v) for k, v in state_raw.items()}
    stats = {k.decode(): float(v) for k, v in stats_raw.items()}
    now = time.time()
    elapsed = max(0.0, now - state.get("ts", now))
    capacity: dict[str, float | None] = {}
    effective: dict[str, int] = {}
    tightened = state.get("pause", 0) > now
    burst = settings.NEXUS["GOVERNOR_BURST_SECONDS"]
    for short, header, _ in DIMENSIONS:
        limit = configured[short]
        if state.get(f"ou:{short}", 0) > now:
            adopted = int(state.get(f"ol:{short}", 0))
            if limit == 0 or adopted < limit:
                limit, tightened = adopted, True
        effective[header] = limit
        if limit:
            cap = limit / 60 * burst
            level = state.get(f"t:{short}", cap) + elapsed * limit / 60
            capacity[header] = round(min(cap, level), 1)
        else:
            capacity[header] = None
    body.update(
        redis="up",
        effective_limits=effective,
        capacity_left=capacity,
        tightened=tightened,
        paused_for_s=round(max(0.0, state.get("pause", 0) - now), 1),
        live_waiting=state.get("lw", 0) > now,
        deferrals={lane: int(stats.get(f"deferred:{lane}", 0)) for lane in LANES},
        granted={lane: int(stats.get(f"granted:{lane}", 0)) for lane in LANES},
        tightenings=int(stats.get("tightened", 0)),
    )
    body["fail_open"] += int(stats.get("fail_open", 0))
    return body


def reset_state() -> None:
    """Forget the shared state and this process's fallback (tests; a limits change)."""
    global _down_until
    _LOCAL.reset()
    _down_until = 0.0
    client = _client()
    if client is not None:
        with contextlib.suppress(*_REDIS_ERRORS):
            client.delete(*_keys())


# --- Redis --------------------------------------------------------------------------------------
_client_lock = threading.Lock()
_clients: dict[str, Any] = {}
_script_cache: dict[int, tuple[Any, Any]] = {}
_down_until = 0.0


_key_memo: dict[str, list[str]] = {}


def _keys() -> list[str]:
    prefix = cache.key_prefix  # type: ignore[attr-defined]
    keys = _key_memo.get(prefix)
    if keys is None:
        keys = _key_memo[prefix] = [cache.make_key(_STATE_KEY), cache.make_key(_STATS_KEY)]
    return keys


def _client() -> Any:
    """The governor's Redis (``NEXUS_GOVERNOR_REDIS_URL``, else the cache's), or None while it
    is known to be down."""
    if time.monotonic() < _down_until:
        return None
    url = settings.NEXUS["GOVERNOR_REDIS_URL"]
    if not url:
        return cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    client = _clients.get(url)
    if client is None:
        with _client_lock:
            client = _clients.setdefault(
                url, redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
            )
    return client


def _scripts(client: Any) -> tuple[Any, Any]:
    scripts = _script_cache.get(id(client))
    if scripts is None:  # EVALSHA, loaded again if Redis lost it
        scripts = _script_cache[id(client)] = (
            client.register_script(governor_lua.ACQUIRE),
            client.register_script(governor_lua.SETTLE),
        )
    return scripts


def _fail_open(exc: BaseException) -> None:
    global _down_until
    _down_until = time.monotonic() + _REDIS_RETRY_SECONDS
    if _LOCAL.begin_outage():
        logger.warning(
            "rate governor's Redis unreachable; using this process's share of the limits (fail open)",
            extra={
                "error": type(exc).__name__,
                "processes": settings.NEXUS["GOVERNOR_PROCESSES"],
                "retry_in_s": _REDIS_RETRY_SECONDS,
            },
        )


def _recovered() -> None:
    """Redis answered again: end the outage and hand its count to the shared total."""
    unflushed = _LOCAL.end_outage()
    if unflushed:
        logger.warning("rate governor's Redis reachable again", extra={"fail_open_calls": unflushed})
        try:
            client = _client()
            if client is not None:
                client.hincrby(_keys()[1], "fail_open", unflushed)
                _LOCAL.flushed(unflushed)
        except _REDIS_ERRORS:
            pass


class _Share:
    """The fallback when Redis is unreachable: the same buckets in this process's memory, at
    limit / NEXUS_GOVERNOR_PROCESSES, no lanes (live and bulk share them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._tokens: dict[str, float] = {}
            self._at = time.monotonic()
            self._pause_until = 0.0
            self._queued = 0.0
            self._outage = False
            self._calls = 0  # decisions made on the share since the outage began, unflushed
            self._flushed_here = 0

    def begin_outage(self) -> bool:
        with self._lock:
            first, self._outage = not self._outage, True
            return first

    def end_outage(self) -> int:
        with self._lock:
            was, self._outage = self._outage, False
            return self._calls if was else 0

    def flushed(self, count: int) -> None:
        with self._lock:
            self._calls -= count

    def fail_open_total(self) -> int:
        """Decisions this process made on its share and has not yet counted in Redis."""
        with self._lock:
            return self._calls

    def acquire(self, lane: str, estimate: Estimate, configured: dict[str, int]) -> Decision:
        processes = max(1, settings.NEXUS["GOVERNOR_PROCESSES"])
        burst = settings.NEXUS["GOVERNOR_BURST_SECONDS"]
        with self._lock:
            self._calls += 1
            now = time.monotonic()
            elapsed, self._at = now - self._at, now
            self._queued = max(0.0, self._queued - elapsed)
            wait, per = 0.0, 0.0
            costs: dict[str, int] = {}
            for short, limit in configured.items():
                cost = estimate.cost(short)
                if not limit or not cost:
                    continue
                rate = limit / processes / 60
                cap = max(rate * burst, cost)
                level = min(cap, self._tokens.get(short, cap) + elapsed * rate)
                self._tokens[short] = level
                costs[short] = cost
                wait, per = max(wait, (cost - level) / rate), max(per, cost / rate)
            paused = self._pause_until - now
            if paused <= 0 and wait <= GRACE_SECONDS:
                for short, cost in costs.items():
                    self._tokens[short] -= cost
                return Decision(True, 0.0, estimate, lane, local=True)
            wait = max(wait, paused) + self._queued + random.uniform(0, GRACE_SECONDS)
            self._queued = min(_max_wait(), self._queued + per)
            return Decision(False, min(wait, _max_wait()), estimate, lane, local=True)

    def settle(self, retry_after: float) -> None:
        if retry_after > 0:
            with self._lock:
                self._pause_until = max(self._pause_until, time.monotonic() + retry_after)


_LOCAL = _Share()
