"""The hot-lead mail (NEXUS_HOT_LEAD_EMAILS): sent from the outbox's delivery task, by a real
worker, once per prospect.hot event, with no contact and no transcript in it.

The worker is the suite's in-process one (threads), so Django's locmem backend, which
pytest-django puts in place, collects what it sends in ``mail.outbox``."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from ingestion import tasks
from ingestion.models import Job, JobStatus
from ingestion.services import job_accept
from ingestion.worker import pipeline
from prospects import notify
from prospects.models import Event, Prospect
from tests.conftest import SEED_MESSAGES, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def hot_visit(session_id: str) -> Prospect:
    """The quick start's visitor: Juan Pérez, interested in investing (nivel 7, caliente)."""
    job_id = job_accept(
        session_id=session_id, fingerprint=f"fp-{session_id}", messages=SEED_MESSAGES, metadata={}
    ).job_id
    if pipeline.job_process(job_id=job_id) != "completed":
        wait_for(lambda: Job.objects.filter(id=job_id, status=JobStatus.COMPLETED).exists())
    prospect = Prospect.objects.get(jobs__id=job_id)
    assert prospect.momento_optimo == "caliente"
    return prospect


def with_mails(settings, *targets: str) -> None:
    settings.NEXUS = {**settings.NEXUS, "HOT_LEAD_EMAILS": list(targets)}


@pytest.mark.redis
def test_a_worker_mails_the_hot_lead_once_without_personal_data(celery_worker, settings):
    with_mails(settings, "ventas@example.test", "owner")

    prospect = hot_visit("s-mail")

    wait_for(lambda: len(mail.outbox) == 1, timeout=30)
    sent = mail.outbox[0]
    assert sent.to == ["ventas@example.test"]  # "owner": nobody owns a new prospect
    assert sent.subject == f"Hot lead: prospect #{prospect.pk} (default)"
    assert f"/admin/prospects/prospect/{prospect.pk}/change/" in sent.body
    assert "Interest: 7 (Caliente)" in sent.body
    for personal in ("Juan", "Pérez", "inversión", "Hola"):
        assert personal not in sent.body and personal not in sent.subject
    hot = Event.objects.get(prospect=prospect, type="prospect.hot")
    assert hot.mailed_at is not None

    # A redelivered task (or the sweeper's republish) sends nothing again.
    tasks.event_deliver(hot.pk)
    assert len(mail.outbox) == 1


def test_owner_means_the_prospects_owner(settings):
    with_mails(settings, "owner")
    prospect = hot_visit("s-owner")
    hot = Event.objects.get(prospect=prospect, type="prospect.hot")
    assert notify.hot_lead_mail(hot.pk) == 0 and len(mail.outbox) == 0  # no owner yet
    assert Event.objects.get(pk=hot.pk).mailed_at is None

    owner = get_user_model().objects.create_user("duena", "duena@example.test", "pw", is_staff=True)
    Prospect.objects.filter(pk=prospect.pk).update(owner=owner)
    assert notify.hot_lead_mail(hot.pk) == 1
    assert mail.outbox[0].to == ["duena@example.test"] and "Owner: duena." in mail.outbox[0].body


def test_a_failed_send_releases_the_claim(settings):
    with_mails(settings, "ventas@example.test")
    # Nothing listens on 127.0.0.1:9: the SMTP connection is refused.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    prospect = hot_visit("s-fail")
    hot = Event.objects.get(prospect=prospect, type="prospect.hot")

    assert notify.hot_lead_mail(hot.pk) == 0
    assert Event.objects.get(pk=hot.pk).mailed_at is None

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert notify.hot_lead_mail(hot.pk) == 1 and len(mail.outbox) == 1


def test_without_the_setting_nothing_is_sent(settings):
    with_mails(settings)
    prospect = hot_visit("s-none")
    hot = Event.objects.get(prospect=prospect, type="prospect.hot")
    assert notify.hot_lead_mail(hot.pk) == 0 and mail.outbox == []
