"""Beat schedules, created in code at migrate time (django-celery-beat's DatabaseScheduler).

Idempotent: re-running migrate updates intervals, and a ``nexus:`` schedule no longer listed
here is removed, so the admin never drifts from the code.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

PREFIX = "nexus:"


def wanted() -> dict[str, tuple[str, float]]:
    """name -> (task, every seconds)."""
    return {
        # Re-dispatches lost tasks; its interval bounds how late a lost message is noticed.
        f"{PREFIX}sweep": ("ingestion.sweep", settings.NEXUS["SWEEP_INTERVAL_SECONDS"]),
        f"{PREFIX}alerts": ("ingestion.alerts", 60.0),
        f"{PREFIX}cleanup": ("ingestion.cleanup", 24 * 3600.0),
        # Message Batches end within 24 h, most within an hour: a minute's delay is nothing.
        f"{PREFIX}batches": ("ingestion.batches_poll", 60.0),
    }


def sync_schedules(**kwargs: Any) -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    names = wanted()
    for name, (task, every) in names.items():
        # Sub-second precision is not needed; whole seconds keep the interval table small. The
        # table has no unique key: an interval added twice in the admin must not break migrate
        # (get_or_create would raise MultipleObjectsReturned), so the oldest match is reused.
        interval = {"every": max(1, round(every)), "period": IntervalSchedule.SECONDS}
        schedule = IntervalSchedule.objects.filter(**interval).order_by(
            "id"
        ).first() or IntervalSchedule.objects.create(**interval)
        PeriodicTask.objects.update_or_create(
            name=name, defaults={"task": task, "interval": schedule, "enabled": True}
        )
    PeriodicTask.objects.filter(name__startswith=PREFIX).exclude(name__in=names).delete()
