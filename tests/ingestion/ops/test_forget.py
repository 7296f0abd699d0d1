"""`manage.py forget`: an erasure request removes the person's prospect, jobs and extractions,
says what it removed, and leaves everyone else alone."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from ingestion.models import Extraction, Job
from ingestion.services import job_accept
from prospects.models import Prospect
from tests.conftest import transcript

pytestmark = pytest.mark.django_db(transaction=True)


def session(session_id: str, fingerprint: str, prospect: Prospect | None, *turns: str) -> Job:
    accepted = job_accept(
        session_id=session_id, fingerprint=fingerprint, messages=transcript(*turns or ("Hola",)), metadata={}
    )
    job = Job.objects.get(id=accepted.job_id)
    if prospect is not None:
        job.prospect = prospect
        job.extracted = {"email": prospect.email, "nombre": prospect.nombre}
        job.save(update_fields=["prospect", "extracted"])
        Extraction.objects.create(job=job, prospect=prospect, revision=1, outcome="ok", extractor="offline")
    return job


def prospect(fingerprint: str, email: str, nombre: str) -> Prospect:
    now = timezone.now()
    return Prospect.objects.create(
        key=f"fp:{fingerprint}",
        fingerprint=fingerprint,
        email=email,
        nombre=nombre,
        first_seen_at=now,
        last_seen_at=now,
    )


@pytest.fixture
def people():
    ana = prospect("fp-ana", "ana@example.com", "Ana")
    session("ana-1", "fp-ana", ana, "Me llamo Ana")
    session("ana-2", "fp-ana", ana, "Mi correo es ana@example.com")
    bob = prospect("fp-bob", "bob@example.com", "Bob")
    session("bob-1", "fp-bob", bob, "Soy Bob")
    return ana, bob


def forget(*args: str) -> str:
    out = StringIO()
    call_command("forget", *args, stdout=out)
    return out.getvalue()


def remaining() -> tuple[set[str], set[str], int]:
    return (
        set(Prospect.objects.values_list("fingerprint", flat=True)),
        set(Job.objects.values_list("session_id", flat=True)),
        Extraction.objects.count(),
    )


def test_forget_by_fingerprint_erases_that_person_only(people):
    output = forget("--fingerprint", "fp-ana")

    assert "Erased 1 prospect(s), 2 job(s), 2 extraction(s)." in output
    assert remaining() == ({"fp-bob"}, {"bob-1"}, 1)


def test_dry_run_counts_and_erases_nothing(people):
    output = forget("--fingerprint", "fp-ana", "--dry-run")

    assert "Dry run: would erase 1 prospect(s), 2 job(s), 2 extraction(s)." in output
    assert remaining() == ({"fp-ana", "fp-bob"}, {"ana-1", "ana-2", "bob-1"}, 3)


def test_forget_by_email_finds_every_session_of_the_person(people):
    # A session not yet extracted and without fingerprint, whose transcript has the address.
    session("ana-3", "", None, "escríbeme a ANA@example.com")

    output = forget("--email", "Ana@Example.com")

    assert "Erased 1 prospect(s), 3 job(s), 2 extraction(s)." in output
    assert remaining() == ({"fp-bob"}, {"bob-1"}, 1)


def test_unknown_person_erases_nothing(people):
    assert "Nothing found" in forget("--email", "nobody@example.com")
    assert remaining()[2] == 3


def test_exactly_one_way_to_name_the_person():
    with pytest.raises(CommandError):
        forget()
    with pytest.raises(CommandError):
        forget("--fingerprint", "a", "--email", "b@example.com")


def test_forget_deletes_the_persons_events_and_deliveries(people):
    from prospects.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint

    ana, bob = people
    endpoint = WebhookEndpoint.objects.create(
        url="https://hooks.example.test/", events=["prospect.created"], secret="whsec_x"
    )
    for person in (ana, bob):
        event = Event.objects.create(
            tenant_id=person.tenant_id, prospect=person, sequence=1, type="prospect.created"
        )
        delivery = Delivery.objects.create(event=event, endpoint=endpoint)
        DeliveryAttempt.objects.create(delivery=delivery, status_code=500)

    forget("--fingerprint", "fp-ana")

    assert set(Event.objects.values_list("prospect_id", flat=True)) == {bob.pk}
    assert Delivery.objects.count() == 1 and DeliveryAttempt.objects.count() == 1
