"""Request throttles for the public API: per client IP and per sessionId, on the shared cache.

The counters live in Django's default cache (Redis), so every web process sees the same
counts. The client IP comes from DRF's ``get_ident`` with ``REST_FRAMEWORK['NUM_PROXIES']``:
0 (the default) trusts only REMOTE_ADDR, N trusts the N proxies in front of us, so a client
cannot dodge the limit by sending its own X-Forwarded-For.

Throttling is a guard, not the service: when the cache is unreachable the request goes
through (logged, and the cache is left alone for a few seconds so a dead Redis does not add
its connect timeout to every request) rather than failing the widget (SPEC §10).
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

logger = logging.getLogger(__name__)

_CACHE_ERRORS = (RedisError, OSError)
# After a cache failure, skip throttling this long before trying the cache again.
_CACHE_RETRY_SECONDS = 5.0
_cache_down_until = 0.0


class FailOpenRateThrottle(SimpleRateThrottle):
    """A rate throttle whose rate is read per request (so settings overrides apply) and which
    lets requests through when its cache is down. An empty rate or "none" switches it off."""

    def __init__(self) -> None:
        # SimpleRateThrottle reads the rate in __init__ from a class attribute frozen at
        # import; read it here from the live settings instead.
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)

    def get_rate(self) -> str | None:
        rate = (api_settings.DEFAULT_THROTTLE_RATES or {}).get(self.scope or "")
        if not rate or str(rate).strip().lower() in {"none", "off", "0"}:
            return None
        return str(rate)

    def allow_request(self, request: Request, view: APIView) -> bool:
        global _cache_down_until
        if self.rate is None or time.monotonic() < _cache_down_until:
            return True
        try:
            return bool(super().allow_request(request, view))
        except _CACHE_ERRORS as exc:
            _cache_down_until = time.monotonic() + _CACHE_RETRY_SECONDS
            logger.warning(
                "throttle cache unreachable; throttling skipped (fail open)",
                extra={"scope": self.scope, "error": type(exc).__name__, "retry_in_s": _CACHE_RETRY_SECONDS},
            )
            return True


class ClientIpThrottle(FailOpenRateThrottle):
    """Requests per client address, whatever the session: bounds one machine's total."""

    scope = "producer_ip"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class SessionThrottle(FailOpenRateThrottle):
    """POSTs per sessionId: a widget posts once per visitor message, so a session posting
    far faster than anyone types is a script (sessionIds are guessable, SPEC §10)."""

    scope = "producer_session"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if request.method != "POST":
            return None
        data: Any = request.data  # parsed under the byte limit; a parse error is a 400 here
        session_id = data.get("sessionId") if isinstance(data, dict) else None
        if not isinstance(session_id, str) or not session_id:
            return None  # the serializer refuses it; nothing to count against
        # Hashed: the key stays short and plain whatever the client sent.
        digest = hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return self.cache_format % {"scope": self.scope, "ident": digest}
