"""export_person: everything held on one person as JSON, found by fingerprint, e-mail or
phone (in any form, normalised to E.164), with an access-log entry that names no one."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import AccessLogEntry
from audit.services import fingerprint_of
from ingestion.models import Extraction, Job
from tenants.models import Tenant
from tests.privacy.test_access import job, prospect

pytestmark = pytest.mark.django_db


@pytest.fixture
def ana():
    shop = Tenant.objects.create(slug="shop-a")
    p = prospect("fp:fp-ana", shop, fingerprint="fp-ana", nombre="Ana Alfa",
                 email="ana@example.test", telefono="+573001234567")  # fmt: skip
    session = job("s-ana", shop, p)
    Job.objects.filter(pk=session.pk).update(fingerprint="fp-ana")
    Extraction.objects.create(job=session, prospect=p, revision=1, outcome="ok", extractor="offline")
    other = prospect("fp:fp-beto", shop, fingerprint="fp-beto", nombre="Beto Beta")
    job("s-beto", shop, other)
    return p


def export(*args: str) -> dict:
    out = io.StringIO()
    call_command("export_person", *args, stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.parametrize(
    "args",
    [("--fingerprint", "fp-ana"), ("--email", "ANA@example.test"), ("--phone", "300 123 4567"),
     ("--phone", "+57 300-123-4567")],
)  # fmt: skip
def test_export_person_prints_the_prospect_its_jobs_with_transcripts_and_extractions(ana, args):
    data = export(*args)

    assert [p["nombre"] for p in data["prospects"]] == ["Ana Alfa"]
    assert [j["session_id"] for j in data["jobs"]] == ["s-ana"]
    assert data["jobs"][0]["messages"]  # the transcript, not yet purged
    assert len(data["extractions"]) == 1

    (entry,) = AccessLogEntry.objects.filter(action="export_person")
    assert entry.row_count == 3
    assert "ana@example.test" not in json.dumps(entry.filters) and "fp-ana" not in json.dumps(entry.filters)
    assert set(entry.filters.values()) <= {
        fingerprint_of("fp-ana"),
        fingerprint_of("ana@example.test"),
        fingerprint_of("+573001234567"),
    }


def test_nobody_found_prints_empty_lists(ana):
    assert export("--fingerprint", "fp-nadie") == {"prospects": [], "jobs": [], "extractions": []}
    assert AccessLogEntry.objects.get(action="export_person").row_count == 0


def test_an_unreadable_phone_or_email_is_refused(ana):
    with pytest.raises(CommandError):
        export("--phone", "12")
    with pytest.raises(CommandError):
        export("--email", "not-an-address")
    assert not AccessLogEntry.objects.exists()


def test_a_purged_transcript_is_exported_as_purged(ana):
    Job.objects.filter(session_id="s-ana").update(messages=[], purged_at=timezone.now())
    data = export("--fingerprint", "fp-ana")
    assert data["jobs"][0]["messages"] == [] and data["jobs"][0]["purged_at"]
