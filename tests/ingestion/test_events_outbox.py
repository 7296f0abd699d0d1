"""Prospect events written in the fold's transaction (issue 14 item A)."""

from __future__ import annotations

import pytest
from django.db import transaction

from ingestion import selectors
from ingestion.models import Job
from ingestion.services import job_accept
from ingestion.worker import pipeline
from prospects.models import Event, Prospect
from prospects.services import prospect_refold
from tests.conftest import transcript

pytestmark = pytest.mark.django_db(transaction=True)

FP = "e" * 64


def visit(session_id: str, *contents: str) -> Job:
    accepted = job_accept(session_id=session_id, fingerprint=FP, messages=transcript(*contents), metadata={})
    assert pipeline.job_process(job_id=accepted.job_id) == "completed"
    return Job.objects.get(id=accepted.job_id)


def kinds() -> list[tuple[int, str]]:
    return list(Event.objects.order_by("sequence").values_list("sequence", "type"))


def test_first_fold_writes_created_then_changes_write_updated_with_old_and_new():
    visit("s-events-1", "Hola, me llamo Ana Prueba")
    prospect = Prospect.objects.get()
    assert kinds()[0] == (1, "prospect.created")
    assert all(e.tenant_id == prospect.tenant_id for e in Event.objects.all())
    before = kinds()
    visit("s-events-2", "Hola otra vez, mi correo es ana@example.test y quiero comprar ya")
    after = kinds()
    assert len(after) > len(before)
    new = Event.objects.filter(sequence__gt=len(before)).order_by("sequence")
    assert new[0].type == "prospect.updated"
    changes = new[0].payload["changes"]
    assert changes["session_count"] == {"old": 1, "new": 2}
    # sequences are 1..n without gaps
    assert [s for s, _ in after] == list(range(1, len(after) + 1))


def test_a_refold_to_the_same_prospect_writes_no_event():
    visit("s-events-3", "Hola, me llamo Ana Prueba")
    prospect = Prospect.objects.get()
    count = Event.objects.count()
    with transaction.atomic():
        prospect_refold(
            prospect_id=prospect.pk, sessions=selectors.prospect_sessions(prospect_id=prospect.pk)
        )
    assert Event.objects.count() == count


def test_a_fold_rolled_back_writes_no_event():
    visit("s-events-4", "Hola, me llamo Ana Prueba")
    prospect = Prospect.objects.get()
    count = Event.objects.count()

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        Prospect.objects.filter(pk=prospect.pk).update(session_count=0, stage="cerrar")
        prospect_refold(
            prospect_id=prospect.pk, sessions=selectors.prospect_sessions(prospect_id=prospect.pk)
        )
        assert Event.objects.count() > count  # written inside the transaction …
        raise Boom
    assert Event.objects.count() == count  # … and gone with it


def test_stage_change_and_hot_events_from_the_fold():
    from prospects.events import fold_events

    visit("s-events-5", "Hola")
    prospect = Prospect.objects.get()
    start = Event.objects.count()
    with transaction.atomic():
        events = fold_events(
            prospect_id=prospect.pk,
            tenant_id=prospect.tenant_id,
            before={"session_count": 1, "stage": "iniciar", "momento_optimo": "tibio"},
            after={"session_count": 1, "stage": "cerrar", "momento_optimo": "caliente"},
        )
    assert [e.type for e in events] == ["prospect.updated", "prospect.stage_changed", "prospect.hot"]
    assert [e.sequence for e in events] == [start + 1, start + 2, start + 3]
    assert events[1].payload["changes"]["stage"] == {"old": "iniciar", "new": "cerrar"}
