"""Beat schedules are created in code at migrate time, idempotently, and pruned."""

from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask

from ingestion.ops.schedules import sync_schedules

pytestmark = pytest.mark.django_db


def test_schedules_exist_after_migrate():
    tasks = {t.name: t for t in PeriodicTask.objects.filter(name__startswith="nexus:")}

    assert {name: t.task for name, t in tasks.items()} == {
        "nexus:sweep": "ingestion.sweep",
        "nexus:alerts": "ingestion.alerts",
        "nexus:cleanup": "ingestion.cleanup",
        "nexus:batches": "ingestion.batches_poll",
    }
    assert tasks["nexus:sweep"].interval.every == 30
    assert tasks["nexus:alerts"].interval.every == 60
    assert tasks["nexus:cleanup"].interval.every == 86400
    assert tasks["nexus:batches"].interval.every == 60
    assert all(t.enabled for t in tasks.values())


def test_resync_removes_stale_schedules_and_restores_edited_ones(settings):
    stale = PeriodicTask.objects.get(name="nexus:sweep")
    PeriodicTask.objects.create(name="nexus:retired", task="ingestion.retired", interval=stale.interval)
    PeriodicTask.objects.filter(name="nexus:alerts").update(enabled=False)
    PeriodicTask.objects.create(name="someone-elses", task="other.task", interval=stale.interval)
    settings.NEXUS = {**settings.NEXUS, "SWEEP_INTERVAL_SECONDS": 15.0}

    sync_schedules()
    sync_schedules()  # idempotent

    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert "nexus:retired" not in names
    assert "someone-elses" in names  # schedules outside our prefix are not ours to remove
    assert PeriodicTask.objects.get(name="nexus:alerts").enabled
    assert PeriodicTask.objects.get(name="nexus:sweep").interval.every == 15
    assert PeriodicTask.objects.filter(name__startswith="nexus:").count() == 4


def test_resync_survives_duplicate_intervals_made_in_the_admin():
    from django_celery_beat.models import IntervalSchedule

    IntervalSchedule.objects.create(every=30, period=IntervalSchedule.SECONDS)
    IntervalSchedule.objects.create(every=30, period=IntervalSchedule.SECONDS)

    sync_schedules()

    assert PeriodicTask.objects.get(name="nexus:sweep").interval.every == 30
