"""Request throttles for the public API: per client IP and per sessionId, on the shared cache.

The counters live in Django's default cache (Redis), so every web process sees the same
counts. The client IP comes from DRF's ``get_ident`` with ``REST_FRAMEWORK['NUM_PROXIES']``:
0 (the default) trusts only REMOTE_ADDR, N trusts the N proxies in front of us, so a client
cannot dodge the limit by sending its own X-Forwarded-For.

The algorithm is DRF's ``SimpleRateThrottle``: a sliding window over the times of the last
requests per key, and the same ``Retry-After``. DRF keeps that list pickled in the cache and
reads and writes it per throttle, two Redis round trips each; the producer's two throttles were
a quarter of a POST's CPU. Here the list is a Redis list and one Lua script trims, counts and
appends for all of a view's throttles in one round trip (``BatchedThrottlesMixin``). With a
cache that is not Redis, DRF's own code runs.

Throttling is a guard, not the service: when the cache is unreachable the request goes
through (logged, and the cache is left alone for a few seconds so a dead Redis does not add
its connect timeout to every request) rather than failing the widget (SPEC §10).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle
from rest_framework.views import APIView

from tenants.directory import KeyRef

logger = logging.getLogger(__name__)

_CACHE_ERRORS = (RedisError, OSError)
# After a cache failure, skip throttling this long before trying the cache again.
_CACHE_RETRY_SECONDS = 5.0
_cache_down_until = 0.0

# KEYS: one list per throttle, newest time first. ARGV: now, then (window seconds, limit) per
# key. Per key, as SimpleRateThrottle.allow_request: drop the times that left the window, then
# refuse if the window is full, else record now. Returns {admitted, count before, oldest}.
_WINDOW_SCRIPT = """
local now = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[2 * i])
  local limit = tonumber(ARGV[2 * i + 1])
  local oldest = redis.call('LINDEX', key, -1)
  while oldest and tonumber(oldest) <= now - window do
    redis.call('RPOP', key)
    oldest = redis.call('LINDEX', key, -1)
  end
  local count = redis.call('LLEN', key)
  if count >= limit then
    out[i] = {0, count, oldest}
  else
    redis.call('LPUSH', key, ARGV[1])
    redis.call('EXPIRE', key, window)
    out[i] = {1, count, oldest or ''}
  end
end
return out
"""
_script: Any = None  # registered on first use; called with the current client each time


class FailOpenRateThrottle(SimpleRateThrottle):
    """A rate throttle whose rate is read per request (so settings overrides apply) and which
    lets requests through when its cache is down. An empty rate or "none" switches it off."""

    # Not DRF's key: its values are pickled lists, these are Redis lists.
    cache_format = "throttle:%(scope)s:%(ident)s"

    def __init__(self) -> None:
        # SimpleRateThrottle reads the rate in __init__ from a class attribute frozen at
        # import; read it here from the live settings instead.
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.history: list[float] = []

    def get_rate(self) -> str | None:
        rate = (api_settings.DEFAULT_THROTTLE_RATES or {}).get(self.scope or "")
        if not rate or str(rate).strip().lower() in {"none", "off", "0"}:
            return None
        return str(rate)

    def allow_request(self, request: Request, view: APIView) -> bool:
        return not refusing_throttles([self], request, view)

    def wait(self) -> float | None:
        """DRF's Retry-After: the time until the window has room, spread over what is left."""
        duration, limit = float(self.duration or 0), int(self.num_requests or 0)
        remaining = duration - (self.now - self.history[-1]) if self.history else duration
        available = limit - len(self.history) + 1
        return None if available <= 0 else remaining / available


def _fail_open(scope: str, exc: BaseException) -> None:
    global _cache_down_until
    _cache_down_until = time.monotonic() + _CACHE_RETRY_SECONDS
    logger.warning(
        "throttle cache unreachable; throttling skipped (fail open)",
        extra={"scope": scope, "error": type(exc).__name__, "retry_in_s": _CACHE_RETRY_SECONDS},
    )


def refusing_throttles(
    throttles: Sequence[BaseThrottle], request: Request, view: APIView
) -> list[BaseThrottle]:
    """The throttles that refuse this request. The rate throttles are decided together, in
    one cache round trip; any other throttle class is asked on its own, as DRF does."""
    refused = [
        t for t in throttles if not isinstance(t, FailOpenRateThrottle) and not t.allow_request(request, view)
    ]
    active: list[FailOpenRateThrottle] = []
    for throttle in throttles:
        if isinstance(throttle, FailOpenRateThrottle) and throttle.rate is not None:
            throttle.key = throttle.get_cache_key(request, view)
            if throttle.key is not None:
                active.append(throttle)
    if not active or time.monotonic() < _cache_down_until:
        return refused
    try:
        if isinstance(caches["default"], RedisCache):
            refused += _decide_in_redis(active)
        else:
            refused += [t for t in active if not SimpleRateThrottle.allow_request(t, request, view)]
    except _CACHE_ERRORS as exc:
        _fail_open(",".join(str(t.scope) for t in active), exc)
    return refused


def _decide_in_redis(throttles: list[FailOpenRateThrottle]) -> list[FailOpenRateThrottle]:
    global _script
    client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    if _script is None:
        _script = client.register_script(_WINDOW_SCRIPT)  # EVALSHA, loaded again if Redis lost it
    now = time.time()
    args: list[Any] = [repr(now)]
    for throttle in throttles:
        args += [throttle.duration, throttle.num_requests]
    keys = [cache.make_and_validate_key(str(t.key)) for t in throttles]
    refused = []
    for throttle, (admitted, count, oldest) in zip(
        throttles, _script(keys=keys, args=args, client=client), strict=True
    ):
        # What wait() reads: the window's size before this request and its oldest time.
        throttle.now = now
        throttle.history = [float(oldest)] * int(count) if count else []
        if not admitted:
            refused.append(throttle)
    return refused


class BatchedThrottlesMixin:
    """An APIView's ``check_throttles`` with its rate throttles decided in one round trip;
    the same answers and Retry-After as DRF's loop over ``allow_request``."""

    def check_throttles(self, request: Request) -> None:
        view: Any = self
        refused = refusing_throttles(view.get_throttles(), request, view)
        if refused:
            durations = [d for d in (t.wait() for t in refused) if d is not None]
            view.throttled(request, max(durations, default=None))


class ClientIpThrottle(FailOpenRateThrottle):
    """Requests per client address, whatever the session: bounds one machine's total. A keyed
    server is not counted here (it posts for all its visitors from one address)."""

    scope = "producer_ip"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if isinstance(request.auth, KeyRef):
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class KeyThrottle(FailOpenRateThrottle):
    """Requests per producer key (``NEXUS_THROTTLE_KEY_RATE``): a keyed server's own limit."""

    scope = "producer_key"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if not isinstance(request.auth, KeyRef):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.id}


class SessionThrottle(FailOpenRateThrottle):
    """POSTs per sessionId of a tenant: a widget posts once per visitor message, so a session
    posting far faster than anyone types is a script (sessionIds are guessable, SPEC §10)."""

    scope = "producer_session"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if request.method != "POST":
            return None
        data: Any = request.data  # parsed under the byte limit; a parse error is a 400 here
        session_id = data.get("sessionId") if isinstance(data, dict) else None
        if not isinstance(session_id, str) or not session_id:
            return None  # the serializer refuses it; nothing to count against
        # The tenant's sessionId (sessionIds are unique per tenant); hashed, so the key stays
        # short and plain whatever the client sent.
        tenant = getattr(view, "tenant", None)
        scoped = f"{tenant.id if tenant else ''}:{session_id}"
        digest = hashlib.sha256(scoped.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return self.cache_format % {"scope": self.scope, "ident": digest}
