"""Beat-driven housekeeping: transcript retention (personal data is kept only as long as it helps)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q

from audit import services as audit_services
from nexus_project.db import db_now
from prospects.models import Event

from ..models import Job, JobStatus

logger = logging.getLogger(__name__)


def transcripts_purge() -> int:
    """Blank the transcripts of completed jobs older than the retention and failed ones older
    than theirs; the row, hash and message count stay for duplicate/stale detection. Ages are
    on the database's clock."""
    now = db_now()
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


def events_purge() -> int:
    """Delete the prospect events delivered more than NEXUS_EVENT_RETENTION_DAYS ago, with
    their delivery records (cascade); undelivered ones stay until they settle."""
    cutoff = db_now() - timedelta(days=settings.NEXUS["EVENT_RETENTION_DAYS"])
    deleted, _ = Event.objects.filter(delivered_at__lt=cutoff).delete()
    logger.info("delivered events purged", extra={"count": deleted})
    return deleted


def access_log_purge() -> int:
    """The access log's entries past NEXUS_ACCESS_LOG_RETENTION_DAYS, deleted."""
    deleted = audit_services.access_log_purge()
    logger.info("access log purged", extra={"count": deleted})
    return deleted
