"""Delivered events purged after NEXUS_EVENT_RETENTION_DAYS by the daily cleanup (issue 14 E)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from ingestion import tasks
from prospects.models import Delivery, Event, Prospect, WebhookEndpoint

pytestmark = pytest.mark.django_db(transaction=True)


def test_cleanup_deletes_delivered_events_past_retention_only(settings):
    settings.NEXUS = {**settings.NEXUS, "EVENT_RETENTION_DAYS": 30}
    now = timezone.now()
    person = Prospect.objects.create(key="fp:x", fingerprint="x", first_seen_at=now, last_seen_at=now)
    endpoint = WebhookEndpoint.objects.create(url="https://hooks.example.test/", secret="whsec_x")

    def event(sequence: int, delivered_at):
        made = Event.objects.create(
            tenant=person.tenant,
            prospect=person,
            sequence=sequence,
            type="prospect.updated",
            delivered_at=delivered_at,
        )
        Delivery.objects.create(event=made, endpoint=endpoint, status="succeeded")
        return made

    old = event(1, now - timedelta(days=31))
    recent = event(2, now - timedelta(days=1))
    pending = event(3, None)

    tasks.cleanup()

    assert set(Event.objects.values_list("pk", flat=True)) == {recent.pk, pending.pk}
    assert not Delivery.objects.filter(event_id=old.pk).exists()
