"""The review desk through the admin, as a logged-in staff user sees it."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from ingestion.extraction.offline import OFFLINE_VERSION
from ingestion.models import Extraction, Job, JobStatus
from ingestion.services import job_accept
from ingestion.worker import pipeline
from prospects.models import Prospect
from tests.conftest import SEED_MESSAGES, transcript, wait_for


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("ops", "ops@example.test", "pw")
    client.force_login(user)
    return client


def make_prospect(key: str, **fields) -> Prospect:
    now = timezone.now()
    return Prospect.objects.create(key=key, first_seen_at=now, last_seen_at=now, **fields)


def completed_job(session_id: str = "s-admin") -> Job:
    job_id = job_accept(
        session_id=session_id, fingerprint="fp-admin", messages=SEED_MESSAGES, metadata={}
    ).job_id
    # With a worker running (the re-queue tests), the task job_accept published may claim the
    # job before this call does ("not-claimed"): either way the job ends completed.
    if pipeline.job_process(job_id=job_id) != "completed":
        wait_for(lambda: Job.objects.filter(id=job_id, status=JobStatus.COMPLETED).exists())
    return Job.objects.get(id=job_id)


def failed_job(session_id: str) -> Job:
    job_id = job_accept(
        session_id=session_id, fingerprint="", messages=transcript("Hola"), metadata={}
    ).job_id
    Job.objects.filter(id=job_id).update(
        status=JobStatus.FAILED, attempts=8, last_error="attempts exhausted (8): 529 overloaded",
        error_category="overloaded", dispatched_at=None,
    )  # fmt: skip
    return Job.objects.get(id=job_id)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/prospects/prospect/",
        "/admin/prospects/prospect/?stage__exact=iniciar&q=Juan",
        "/admin/prospects/prospect/?o=6",
        "/admin/ingestion/extraction/",
        "/admin/ingestion/job/",
        "/admin/ingestion/job/?status__exact=failed",
        "/admin/django_celery_beat/periodictask/",
    ],
)
def test_admin_pages_render_for_staff(staff, url):
    completed_job()

    response = staff.get(url)

    assert response.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_prospect_page_shows_extractions_jobs_and_the_conversation(staff):
    job = completed_job()

    page = staff.get(f"/admin/prospects/prospect/{job.prospect_id}/change/").content.decode()

    assert "Juan Pérez" in page
    assert job.session_id in page  # the jobs inline
    assert OFFLINE_VERSION in page  # the extractions inline: prompt version
    # The conversation block (a superuser may see contacts); the jobs inline still has none.
    assert page.count("oportunidades de inversión") == 1


@pytest.mark.django_db(transaction=True)
def test_job_and_extraction_pages_show_the_details(staff):
    job = completed_job()
    extraction = Extraction.objects.get(job=job)

    job_page = staff.get(f"/admin/ingestion/job/{job.id}/change/").content.decode()
    extraction_page = staff.get(f"/admin/ingestion/extraction/{extraction.id}/change/").content.decode()

    assert "oportunidades de inversión" in job_page  # staff can read the transcript here
    assert OFFLINE_VERSION in extraction_page
    assert 'name="_save"' not in extraction_page  # read-only


@pytest.mark.django_db
def test_job_search_finds_a_pasted_queue_id(staff):
    job = failed_job("s-search")
    failed_job("s-other")

    page = staff.get("/admin/ingestion/job/", {"q": str(job.id)}).content.decode()

    assert "s-search" in page and "s-other" not in page


@pytest.mark.django_db
def test_anonymous_users_are_sent_to_login(client):
    for url in [
        "/admin/prospects/prospect/",
        "/admin/prospects/prospect/export.csv",
        "/admin/ingestion/job/",
    ]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_staff_without_permissions_cannot_export(client):
    user = get_user_model().objects.create_user("intern", password="pw", is_staff=True)
    client.force_login(user)

    assert client.get("/admin/prospects/prospect/export.csv").status_code == 403


def read_csv(response) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.mark.django_db
def test_csv_export_escapes_formula_cells(staff):
    make_prospect(
        "fp:evil", nombre='=HYPERLINK("http://x.test","click")', ocupacion="@SUM(A1)",
        telefono="+573001234567", email="-x@example.test", nivel_interes=5,
    )  # fmt: skip

    response = staff.get("/admin/prospects/prospect/export.csv")

    assert response["Content-Type"].startswith("text/csv")
    (row,) = read_csv(response)
    assert row["nombre"] == '\'=HYPERLINK("http://x.test","click")'
    assert row["ocupacion"] == "'@SUM(A1)"
    assert row["telefono"] == "'+573001234567"
    assert row["email"] == "'-x@example.test"
    assert row["nivel_interes"] == "5"


@pytest.mark.django_db
def test_csv_export_is_the_filtered_list_ordered_by_interest(staff):
    make_prospect("fp:a", nombre="Ana", stage="activar", nivel_interes=8)
    make_prospect("fp:b", nombre="Beto", stage="iniciar", nivel_interes=3)
    make_prospect("fp:c", nombre="Carla", stage="activar", nivel_interes=9)
    make_prospect("fp:d", nombre="Dora", stage="activar", nivel_interes=None)

    rows = read_csv(staff.get("/admin/prospects/prospect/export.csv?stage__exact=activar"))

    assert [r["nombre"] for r in rows] == ["Carla", "Ana", "Dora"]


@pytest.mark.django_db
def test_prospect_list_orders_by_interest_with_unrated_last(staff):
    make_prospect("fp:a", nombre="Ana", nivel_interes=4)
    make_prospect("fp:d", nombre="Dora", nivel_interes=None)
    make_prospect("fp:c", nombre="Carla", nivel_interes=9)

    page = staff.get("/admin/prospects/prospect/").content.decode()

    assert page.index("Carla") < page.index("Ana") < page.index("Dora")


@pytest.mark.django_db
def test_export_selected_action_returns_csv(staff):
    chosen = make_prospect("fp:x", nombre="Xime")
    make_prospect("fp:y", nombre="Yago")

    response = staff.post(
        "/admin/prospects/prospect/", {"action": "export_selected_csv", "_selected_action": [chosen.pk]}
    )

    assert [r["nombre"] for r in read_csv(response)] == ["Xime"]


@pytest.mark.redis
def test_requeue_action_sends_a_failed_job_back_through_the_worker(celery_worker, staff):
    job = failed_job("s-dead")

    response = staff.post(
        "/admin/ingestion/job/", {"action": "requeue", "_selected_action": [job.id]}, follow=True
    )

    assert "Re-queued 1 job(s)." in response.content.decode()
    done = wait_for(lambda: Job.objects.filter(id=job.id, status=JobStatus.COMPLETED).first())
    assert (done.attempts, done.last_error) == (0, "")


@pytest.mark.redis
def test_reextract_action_records_a_new_extraction(celery_worker, staff):
    job = completed_job("s-again")
    purged = failed_job("s-purged")
    Job.objects.filter(id=purged.id).update(purged_at=timezone.now() - timedelta(days=1), messages=[])

    response = staff.post(
        "/admin/ingestion/job/", {"action": "reextract", "_selected_action": [job.id, purged.id]}, follow=True
    )

    page = response.content.decode()
    assert "Re-extraction queued for 1 job(s)." in page
    assert "Skipped 1 job(s)" in page
    wait_for(lambda: Extraction.objects.filter(job=job, outcome="ok").count() == 2)
    assert Job.objects.get(id=purged.id).status == JobStatus.FAILED


@pytest.mark.django_db(transaction=True)
def test_extractions_list_names_the_session_not_the_jobs_current_revision(staff):
    job = completed_job("s-rev")
    job_accept(
        session_id="s-rev",
        fingerprint="fp-admin",
        messages=[*SEED_MESSAGES, *transcript("y más")],
        metadata={},
    )

    page = staff.get("/admin/ingestion/extraction/").content.decode()

    assert Job.objects.get(id=job.id).revision == 2
    assert "s-rev r2" not in page  # the revision-1 row used to be labelled with the job's r2
    assert "s-rev</a> r1" in page
    assert ">live<" in page
    assert "Juan Pérez" not in page  # the outcome column, not the result's JSON


@pytest.mark.django_db
def test_objections_read_as_the_vocabularys_labels(staff):
    prospect = make_prospect("fp:obj", nombre="Olga", objeciones=["mlm", "precio"])

    page = staff.get(f"/admin/prospects/prospect/{prospect.id}/change/").content.decode()

    assert "Precio, Multinivel (MLM)" in page
    assert "[&quot;mlm&quot;" not in page and '["mlm"' not in page


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("url", "most"), [("/admin/prospects/prospect/", 9), ("/admin/ingestion/extraction/", 8)]
)
def test_lists_keep_to_a_few_columns(staff, url, most):
    """Both lists overflowed at 1,440-1,920 px with ten and fifteen columns."""
    completed_job()
    page = staff.get(url).content.decode()
    header = page[page.index("<thead>") : page.index("</thead>")]
    assert header.count("<th") <= most  # the checkbox column included


@pytest.mark.django_db(transaction=True)
def test_csv_first_seen_is_never_after_last_seen(staff):
    completed_job("s-seen")

    rows = list(
        csv.DictReader(
            io.StringIO(
                b"".join(staff.get("/admin/prospects/prospect/export.csv").streaming_content).decode()
            )
        )
    )

    assert rows and all(row["first_seen_at"] <= row["last_seen_at"] for row in rows)


@pytest.mark.django_db(transaction=True)
def test_job_list_says_failed_calls_where_it_said_attempts(staff):
    completed_job()
    page = staff.get("/admin/ingestion/job/").content.decode()
    assert "Failed calls" in page
