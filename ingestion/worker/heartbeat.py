"""Worker heartbeat: each worker refreshes a cache key every few seconds (with a TTL), so
health can tell "workers up" from one cheap read instead of a broadcast ping per request."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

from .. import extraction

logger = logging.getLogger(__name__)
_stop = threading.Event()
HEARTBEAT_KEY = "workers:heartbeat"


def workers_alive() -> dict[str, Any] | None:
    """The freshest worker heartbeat, or None when no worker beat within the TTL."""
    try:
        beat = cache.get(HEARTBEAT_KEY)
    except (RedisError, OSError):
        return None
    if beat is None:
        return None
    return {"hostname": beat["hostname"], "age_s": round(time.time() - beat["at"], 1)}


def beat_once(hostname: str) -> None:
    try:
        cache.set(
            HEARTBEAT_KEY,
            {"hostname": hostname, "at": time.time()},
            timeout=settings.NEXUS["HEARTBEAT_TTL_SECONDS"],
        )
    except (RedisError, OSError) as exc:
        logger.warning("heartbeat not stored", extra={"error": type(exc).__name__})


def _loop(hostname: str) -> None:
    while not _stop.wait(settings.NEXUS["HEARTBEAT_SECONDS"]):
        beat_once(hostname)


@worker_ready.connect
def start_heartbeat(sender: Any = None, **kwargs: Any) -> None:
    hostname = getattr(sender, "hostname", None) or socket.gethostname()
    # The heartbeat says "this worker can take jobs": build the extractor before the first beat.
    extraction.prepare()
    _stop.clear()
    beat_once(hostname)
    threading.Thread(target=_loop, args=(hostname,), name="nexus-heartbeat", daemon=True).start()


@worker_shutdown.connect
def stop_heartbeat(**kwargs: Any) -> None:
    _stop.set()
