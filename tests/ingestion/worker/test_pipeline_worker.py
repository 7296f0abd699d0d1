"""The pipeline through a real Celery worker on real Redis and the test database."""

from __future__ import annotations

import pytest

from ingestion import dispatch
from ingestion.models import Extraction, Job, JobStatus
from prospects.models import Prospect
from tests.conftest import producer_body, transcript, wait_for

pytestmark = [pytest.mark.redis]


def test_seed_post_becomes_a_prospect(api, celery_worker):
    response = api.post("/api/nexus/producer", producer_body(session_id="seed-1"), format="json")

    assert response.status_code == 202
    job_id = response.json()["queueId"]
    wait_for(lambda: Job.objects.filter(id=job_id, status=JobStatus.COMPLETED).exists())
    prospect = Prospect.objects.get(fingerprint="test-fingerprint-456")
    assert prospect.nombre == "Juan Pérez"
    assert prospect.nivel_interes == 7
    assert prospect.momento_optimo == "caliente"
    assert Extraction.objects.filter(job_id=job_id, outcome="ok").count() == 1


def test_longer_transcript_raises_revision_and_updates_prospect(api, celery_worker):
    first = transcript("Hola")
    api.post("/api/nexus/producer", producer_body(first, session_id="grow-1"), format="json")
    job = wait_for(lambda: Job.objects.filter(session_id="grow-1", status=JobStatus.COMPLETED).first())
    assert Prospect.objects.get(jobs=job).nombre is None

    longer = transcript("Hola", "¡Hola! ¿Cómo te llamas?", "Me llamo Ana López")
    response = api.post("/api/nexus/producer", producer_body(longer, session_id="grow-1"), format="json")

    assert response.status_code == 202
    assert response.json()["queueId"] == str(job.id)
    wait_for(lambda: Job.objects.filter(id=job.id, processed_revision=2, status=JobStatus.COMPLETED).exists())
    assert Prospect.objects.get(jobs=job).nombre == "Ana López"
    assert Extraction.objects.filter(job=job, outcome="ok").count() == 2


def test_resending_the_same_transcript_is_a_duplicate_and_extracts_nothing_more(api, celery_worker):
    body = producer_body(session_id="dup-1")
    first = api.post("/api/nexus/producer", body, format="json").json()
    job = wait_for(lambda: Job.objects.filter(id=first["queueId"], status=JobStatus.COMPLETED).first())

    again = api.post("/api/nexus/producer", body, format="json")

    assert again.status_code == 202 and again.json()["duplicate"] is True
    assert again.json()["queueId"] == first["queueId"]
    job.refresh_from_db()
    # Nothing was published: no outstanding dispatch, same revision, still completed.
    assert (job.revision, job.status, job.dispatched_at) == (1, JobStatus.COMPLETED, None)
    dispatch.job_sweep()  # and nothing is left for the sweeper to find
    longer = transcript(*[m["content"] for m in body["messages"]], "¿Y ahora?", "Mi teléfono es 612 345 678")
    api.post("/api/nexus/producer", producer_body(longer, session_id="dup-1"), format="json")
    wait_for(lambda: Job.objects.filter(id=job.id, processed_revision=2, status=JobStatus.COMPLETED).exists())
    assert list(
        Extraction.objects.filter(job=job).order_by("revision").values_list("revision", flat=True)
    ) == [1, 2]
