"""The alert thresholds of SPEC §4, checked by beat every minute: each crossing is logged
once (a structured WARNING) and its recovery once; health reads the same figures."""

from __future__ import annotations

import logging

from django.core.cache import cache
from redis.exceptions import RedisError

from .. import selectors

logger = logging.getLogger(__name__)

_ALERTS_KEY = "alerts:active"


def alerts_check() -> list[str]:
    """Log each threshold crossing once (WARNING, with figure and threshold) and its recovery
    once (INFO); what was already reported lives in the cache, shared by every beat run."""
    figures = selectors.alert_figures()
    crossed = [name for name, figure in figures.items() if figure["crossed"]]
    try:
        previous = set(cache.get(_ALERTS_KEY) or [])
        cache.set(_ALERTS_KEY, crossed, timeout=None)
    except (RedisError, OSError):
        # Without that memory, report every crossing each run: a repeat beats silence.
        previous = set()
    for name in crossed:
        if name not in previous:
            logger.warning(
                f"ALERT {name} above threshold",
                extra={
                    "alert": name,
                    "value": figures[name]["value"],
                    "threshold": figures[name]["threshold"],
                },
            )
    for name in sorted((previous - set(crossed)) & figures.keys()):
        logger.info(
            f"ALERT {name} cleared",
            extra={"alert": name, "value": figures[name]["value"], "threshold": figures[name]["threshold"]},
        )
    return crossed
