"""Beat-driven housekeeping: transcript retention and alert thresholds."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone
from redis.exceptions import RedisError

from . import selectors
from .models import Job, JobStatus

logger = logging.getLogger(__name__)

_ALERTS_KEY = "alerts:active"


def transcripts_purge() -> int:
    """Blank the transcripts of completed jobs older than the retention and failed ones older
    than theirs; the row, hash and message count stay for duplicate/stale detection."""
    now = timezone.now()
    limits = settings.NEXUS
    old_completed = Q(status=JobStatus.COMPLETED) & Q(
        processed_at__lt=now - timedelta(days=limits["COMPLETED_RETENTION_DAYS"])
    )
    old_failed = Q(status=JobStatus.FAILED) & Q(
        updated_at__lt=now - timedelta(days=limits["FAILED_RETENTION_DAYS"])
    )
    purged = Job.objects.filter((old_completed | old_failed) & Q(purged_at__isnull=True)).update(
        messages=[], metadata={}, purged_at=now, updated_at=now
    )
    logger.info("transcripts purged", extra={"count": purged})
    return purged


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
