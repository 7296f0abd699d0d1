"""Attribution from the POSTs to the Prospect, the admin and the CSV (issue 12 item 5)."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model

from ingestion import selectors
from ingestion.models import Job
from ingestion.services import Attribution, job_accept
from ingestion.worker import pipeline
from prospects.models import Prospect
from prospects.services import prospect_refold
from tests.conftest import transcript

pytestmark = pytest.mark.django_db(transaction=True)

FP = "b" * 64


def visit(session_id: str, *contents: str, fingerprint: str = FP, **attribution) -> Job:
    accepted = job_accept(
        session_id=session_id,
        fingerprint=fingerprint,
        messages=transcript(*contents),
        metadata={},
        attribution=Attribution(**attribution),
    )
    assert pipeline.job_process(job_id=accepted.job_id) == "completed"
    return Job.objects.get(id=accepted.job_id)


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("ops", "ops@example.test", "pw")
    client.force_login(user)
    return client


def test_the_first_referrer_keeps_the_credit_and_a_later_one_stays_on_its_job():
    visit("s-1", "Hola, me llamo Juan Pérez", constructor_id="maria-lopez", page_context="default")
    later = visit(
        "s-2",
        "Hola otra vez, mi teléfono es 612 345 678",
        constructor_id="pedro-gil",
        page_context="catalogo_productos",
        channel="whatsapp",
        is_returning=True,
        consent_given=True,
    )

    prospect = Prospect.objects.get()
    assert (prospect.constructor_id, later.constructor_id) == ("maria-lopez", "pedro-gil")
    assert (prospect.page_context, prospect.channels, prospect.is_returning) == (
        "catalogo_productos",
        "web,whatsapp",
        True,
    )
    assert prospect.consent_given is True and prospect.consent_at == later.consent_at
    assert prospect.nombre == "Juan Pérez"


def test_a_replayed_fold_converges():
    visit("s-1", "Hola, soy Ana", constructor_id="ref-1", consent_given=True)
    visit("s-2", "Sigo aquí", constructor_id="ref-2", page_context="12_niveles")
    prospect = Prospect.objects.get()
    before = Prospect.objects.filter(pk=prospect.pk).values(
        "constructor_id", "page_context", "channels", "is_returning", "consent_given", "consent_at"
    )[0]

    prospect_refold(prospect_id=prospect.pk, sessions=selectors.prospect_sessions(prospect_id=prospect.pk))
    prospect_refold(
        prospect_id=prospect.pk, sessions=list(reversed(selectors.prospect_sessions(prospect_id=prospect.pk)))
    )
    prospect_refold(prospect_id=prospect.pk, sessions=selectors.prospect_sessions(prospect_id=prospect.pk))

    after = Prospect.objects.filter(pk=prospect.pk).values(*before)[0]
    assert after == before


def test_admin_filters_and_csv_show_the_attribution(staff):
    visit("s-1", "Hola, me llamo Juan Pérez", fingerprint="fp-1", constructor_id="maria-lopez")
    visit("s-2", "Hola", fingerprint="fp-2", channel="whatsapp", page_context="whatsapp_inbound")

    def keys(url: str) -> set[str]:
        response = staff.get(url)
        assert response.status_code == 200, url
        return {p.fingerprint for p in response.context["cl"].result_list}

    assert keys("/admin/prospects/prospect/?referred=yes") == {"fp-1"}
    assert keys("/admin/prospects/prospect/?referred=no") == {"fp-2"}
    assert keys("/admin/prospects/prospect/?constructor_id=maria-lopez") == {"fp-1"}
    assert keys("/admin/prospects/prospect/?channel=whatsapp") == {"fp-2"}
    assert keys("/admin/prospects/prospect/?channel=web") == {"fp-1"}
    assert keys("/admin/prospects/prospect/?q=maria-lopez") == {"fp-1"}
    assert keys("/admin/prospects/prospect/?page_context=whatsapp_inbound") == {"fp-2"}
    assert staff.get("/admin/ingestion/job/?channel__exact=whatsapp").status_code == 200
    response = staff.get("/admin/prospects/prospect/export.csv?referred=yes")
    body = b"".join(response.streaming_content).decode()
    (row,) = list(csv.DictReader(io.StringIO(body)))
    assert (row["constructor_id"], row["channels"], row["consent_given"]) == ("maria-lopez", "web", "")


def test_the_prospect_page_shows_each_session_s_referrer(staff):
    visit("s-1", "Hola, me llamo Juan Pérez", constructor_id="maria-lopez")
    visit("s-2", "Hola otra vez", constructor_id="pedro-gil", channel="whatsapp")
    prospect = Prospect.objects.get()

    page = staff.get(f"/admin/prospects/prospect/{prospect.pk}/change/").content.decode()

    assert "maria-lopez" in page and "pedro-gil" in page and "whatsapp" in page.lower()
