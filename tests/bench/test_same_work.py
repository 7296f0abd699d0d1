"""The bench's same-work floor (figure 3) runs against the current schema.

Its statements are raw SQL, so a NOT NULL column added to a model without a database default
is not filled in for it the way the ORM fills it in: the floor then fails on every job and
drains none (the review desk's notes and review_status once did that to every round)."""

from __future__ import annotations

import pytest

from bench.tasks import same_work
from ingestion.models import Extraction, Job, JobStatus
from ingestion.services import job_accept
from prospects.models import Prospect
from tests.conftest import transcript


@pytest.mark.django_db
def test_the_floor_completes_a_pending_job_with_its_prospect_and_extraction():
    accepted = job_accept(
        session_id="floor-1", fingerprint="fp-floor-1", messages=transcript("hola", "buenas"), metadata={}
    )

    same_work(str(accepted.job_id))

    job = Job.objects.get(pk=accepted.job_id)
    assert job.status == JobStatus.COMPLETED
    prospect = Prospect.objects.get(jobs=job)
    assert (prospect.key, prospect.review_status, prospect.notes) == ("fp:fp-floor-1", "nuevo", "")
    assert Extraction.objects.filter(job=job, extractor="floor").count() == 1


@pytest.mark.django_db
def test_the_floor_leaves_a_job_it_cannot_claim():
    accepted = job_accept(
        session_id="floor-2", fingerprint="fp-floor-2", messages=transcript("hola"), metadata={}
    )
    Job.objects.filter(pk=accepted.job_id).update(status=JobStatus.COMPLETED)

    same_work(str(accepted.job_id))

    assert not Prospect.objects.exists()
    assert not Extraction.objects.exists()
